---@meta slipway.hash
local hash = {}
---@param data string
---@param opts? {binary?: boolean}
---@return string hex (or raw bytes with binary = true)
function hash.sha256(data, opts) end
---@param data string
---@param opts? {binary?: boolean}
---@return string
function hash.sha1(data, opts) end
---@param path string
---@return string|nil hex
---@return string? err
---@return string? code
function hash.sha256_file(path) end
---@param path string
---@return string|nil hex
---@return string? err
---@return string? code
function hash.sha1_file(path) end

---2 * nbytes hex digits from the kernel's random source (getrandom): ids
---that do not repeat even when address randomisation is off.
---@param nbytes integer 1 to 64
---@return string hex
function hash.random_hex(nbytes) end

return hash
