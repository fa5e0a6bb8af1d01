-- slipway.words: the wording rules every message shares, so that they read
-- the same everywhere: "did you mean" suggestions for a mistyped name, and
-- counts with the noun in the right number ("1 task", "3 tasks").
-- Depends on nothing, so the runtime core (lua/) and the modules scripts
-- use (stdlib/) can both require it.
local M = {}

-- s as one word for a POSIX shell: as it is when it has nothing the shell
-- would act on, else in single quotes.
function M.shell_quote(s)
  if s ~= "" and not s:find("[^%w%-_./=:,@+%%]") then return s end
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

-- Edit distance with adjacent transpositions (optimal string alignment).
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

-- closest(name, candidates) -> the candidate name most likely meant, or nil:
-- a small edit away (one edit per three letters, and less than half the
-- name: "-j" suggests nothing), or a prefix of it or one it is a prefix of
-- (3 letters at least: "hist" -> "history", "boolean" -> "bool"). Ties go
-- to the earlier candidate.
function M.closest(name, candidates)
  if type(name) ~= "string" then return nil end
  local best, bestd, bestraw
  for _, c in ipairs(candidates) do
    if c ~= name then
      local raw = distance(name, c)
      local d = raw
      if #name >= 3 and c:sub(1, #name) == name or #c >= 3 and name:sub(1, #c) == c then d = math.min(d, 1) end
      -- (a prefix counts as one edit, but loses a tie to a real one)
      if d <= math.max(1, #name // 3) and 2 * d < #name
          and (bestd == nil or d < bestd or d == bestd and raw < bestraw) then
        best, bestd, bestraw = c, d, raw
      end
    end
  end
  return best
end

-- did_you_mean(name, candidates) -> " (did you mean 'x'?)", or "" when no
-- candidate is close: for appending to an "unknown ..." message.
function M.did_you_mean(name, candidates)
  local best = M.closest(name, candidates)
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

-- count(n, noun, [plural]) -> "1 task", "0 tasks", "3 tasks"; plural
-- defaults to noun .. "s" ("1 entry", count(2, "entry", "entries")).
function M.count(n, noun, plural)
  return ("%d %s"):format(n, n == 1 and noun or (plural or noun .. "s"))
end

return M
