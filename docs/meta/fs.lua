---@meta slipway.fs
-- Editor stubs (LuaLS) for require("slipway.fs") and the global `fs`.
-- Synchronous; failures return nil, "ENOENT: no such file or directory: /x", "ENOENT".
-- A path (or glob pattern) with a NUL byte raises: the system would stop
-- reading it at the NUL and name another file.

---@class slipway.fs
fs = {}

---@param path string
---@return string|nil data
---@return string? message
---@return string? code
function fs.read(path) end

---opts.sync: fsync before returning (and the directory, for a new file);
---opts.exclusive: create the file, or fail with EEXIST if it exists
---(atomic: of two processes, one creates it). Data that is a Secret, or
---holds a secret's value, makes the file 0600 (the writers below too).
---@param path string
---@param data string|slipway.Secret
---@param opts? {sync?: boolean, exclusive?: boolean}
---@return true|nil ok
---@return string? message
---@return string? code
function fs.write(path, data, opts) end

---Temp file in the same directory, fsync, rename over, fsync the directory.
---Keeps the permission bits of a file it replaces (0600 for a secret).
---@param path string
---@param data string|slipway.Secret
---@return true|nil ok
---@return string? message
---@return string? code
function fs.write_atomic(path, data) end

---opts.sync: fsync before returning (and the directory, for a new file).
---@param path string
---@param data string|slipway.Secret
---@param opts? {sync?: boolean}
---@return true|nil ok
---@return string? message
---@return string? code
function fs.append(path, data, opts) end

---mkdir -p
---@param path string
---@return true|nil ok
---@return string? message
---@return string? code
function fs.mkdir(path) end

---@param path string
---@param opts? {recursive?: boolean}
---@return true|nil ok
---@return string? message
---@return string? code
function fs.remove(path, opts) end

---Names in dir, sorted, without "." and "..".
---@param dir string
---@return string[]|nil names
---@return string? message
---@return string? code
function fs.list(dir) end

---@class slipway.Stat
---@field type "file"|"directory"|"link"|"fifo"|"socket"|"char"|"block"|"unknown"
---@field size integer
---@field mode integer permission bits (0644 = 420)
---@field mtime number seconds since the epoch

---Does not follow a final symlink unless opts.follow.
---@param path string
---@param opts? {follow?: boolean}
---@return slipway.Stat|nil stat
---@return string? message
---@return string? code
function fs.stat(path, opts) end

---@param path string
---@return boolean
function fs.exists(path) end

---`*`, `?`, `[...]` within a segment (no leading dot), `**` any depth. Sorted.
---@param pattern string
---@return string[]
function fs.glob(pattern) end

---@param path string
---@return string
function fs.basename(path) end

---@param path string
---@return string
function fs.dirname(path) end

---Joined by "/"; an absolute part starts over.
---@param ... string
---@return string
function fs.join(...) end

---A new private directory under $TMPDIR or /tmp.
---@param prefix? string default "slipway-"
---@return string|nil path
---@return string? message
---@return string? code
function fs.tempdir(prefix) end

---@param path string
---@return string|nil path
---@return string? message
---@return string? code
function fs.realpath(path) end

return fs
