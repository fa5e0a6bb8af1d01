-- slipway.compose.input: reading the files compose loads (compose files,
-- `--env-file` files, a service's env_file), with a size limit so that a
-- huge or endless file is refused instead of filling memory, and errors
-- that name the path the way docker words them ("open x.yml: no such file
-- or directory", "read dir: is a directory").
local M = {}

-- The default limit of one input file (compose.load's max_bytes option).
M.MAX_BYTES = 16 * 1024 * 1024

local CODES = { [2] = "ENOENT", [13] = "EACCES", [20] = "ENOTDIR", [21] = "EISDIR" }

local function size_text(n)
  if n % (1024 * 1024) == 0 then return ("%d MiB"):format(n // (1024 * 1024)) end
  return ("%d bytes"):format(n)
end

-- Go's wording of an OS error: "No such file or directory" -> lower case,
-- without Lua's "path: " prefix.
local function reason(msg)
  return ((msg or ""):match(": ([^:]+)$") or msg or "cannot open"):lower()
end

-- read(path, max_bytes) -> text | nil, message, code. path "-" reads
-- standard input. Codes: ENOENT, EACCES, EISDIR, ... from the system, EFBIG
-- for a file over max_bytes (default M.MAX_BYTES).
function M.read(path, max_bytes)
  max_bytes = max_bytes or M.MAX_BYTES
  local f, text, err, errno
  if path == "-" then
    f = io.stdin
  else
    f, err, errno = io.open(path, "rb")
    if not f then return nil, ("open %s: %s"):format(path, reason(err)), CODES[errno] or "ENOENT" end
  end
  -- one byte past the limit tells a file at the limit from a larger one,
  -- also where the size is not known before (a pipe, a growing file)
  text, err, errno = f:read(max_bytes + 1)
  if f ~= io.stdin then f:close() end
  if text == nil and err then return nil, ("read %s: %s"):format(path, reason(err)), CODES[errno] or "EIO" end
  text = text or ""                           -- an empty file reads as nil
  if #text > max_bytes then
    return nil, ("read %s: file too large (over %s, the limit of a compose input file)")
      :format(path, size_text(max_bytes)), "EFBIG"
  end
  return text
end

return M
