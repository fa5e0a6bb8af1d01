-- The compose corpus: every file `docker stack config` accepted must give
-- the same configuration (compared as YAML data, types included; how many
-- are byte-identical is printed), every file and case it rejected must be
-- rejected with exit code 1 and the same class of error, and the 18 cases
-- (variable variants, multi-file merges) must do what docker did.
local corpus = require("support.compose_corpus")
local yaml = require("slipway.yaml")

local SLIPWAY = assert(os.getenv("SLIPWAY"), "run through tests/run (SLIPWAY unset)")

local function expected_data(path)
  return assert(yaml.decode(assert(corpus.read(path))))
end

local function check_accepted(r, expected_path)
  assert.same({ 0, "" }, { r.code, (r.stderr:gsub("warning: [^\n]*\n", "")) })
  local got, err = yaml.decode(r.normalized)
  assert.is_not_nil(got, err)
  assert.is_true(corpus.same_data(got, expected_data(expected_path)),
    "output differs from the expectation (as data):\n" .. r.normalized)
  return r.normalized == corpus.read(expected_path)
end

local function check_rejected(r, messages)
  assert.same(1, r.code, "expected a rejection, got exit " .. tostring(r.code) .. ": " .. r.stderr)
  assert.same("", r.stdout)
  local classes = {}
  for _, m in ipairs(messages) do classes[corpus.class(m)] = true end
  local ours = corpus.class(r.stderr)
  assert.is_true(classes[ours] ~= nil, ("class %q not among docker's: %s"):format(ours, table.concat(messages, " | ")))
  -- the message names the file, line and column (or the file) it is about
  assert.matches("^[%w_.%-]+%.yml:", r.stderr)
end

describe("compose corpus", function()
  local byte_identical, accepted = 0, 0

  describe("accepted files", function()
    for _, name in ipairs(corpus.accepted()) do
      it(name, function()
        local r = corpus.config(SLIPWAY, { name }, corpus.vars(name))
        local identical = check_accepted(r, corpus.DIR .. "/" .. name .. ".expected.yml")
        accepted = accepted + 1
        if identical then byte_identical = byte_identical + 1 end
        corpus.cleanup(r.dir)
      end)
    end
    it("(summary)", function()
      io.stderr:write(("\ncompose corpus: %d/60 data-equal, %d/60 byte-identical\n"):format(accepted, byte_identical))
      assert.same(60, #corpus.accepted())
    end)
  end)

  describe("rejected files", function()
    for _, name in ipairs(corpus.rejected()) do
      it(name, function()
        local r = corpus.config(SLIPWAY, { name }, corpus.vars(name))
        check_rejected(r, corpus.expected_messages(name))
        corpus.cleanup(r.dir)
      end)
    end
  end)

  describe("cases", function()
    for _, case in ipairs(corpus.cases()) do
      it(case.name, function()
        local r = corpus.config(SLIPWAY, case.files, corpus.vars(case.name, true))
        if case.exit_code == 0 then
          check_accepted(r, corpus.DIR .. "/cases/" .. case.name .. ".expected.yml")
        else
          check_rejected(r, corpus.expected_messages(case.name, true))
        end
        corpus.cleanup(r.dir)
      end)
    end
  end)

  describe("extra fixtures checked against docker", function()
    local FIX = "tests/support/compose_oracle"
    local sets = {
      odd = { "odd" }, interpolation = { "interpolation" }, ports = { "ports" },
      merge1 = { "merge1-base", "merge1-override" }, merge2 = { "merge2-base", "merge2-override" },
      merge3 = { "merge3-base", "merge3-override" }, merge4 = { "merge4-base", "merge4-override" },
      literals = { "literals" }, numbers = { "numbers" },
    }
    for _, name in ipairs({ "odd", "interpolation", "ports", "merge1", "merge2", "merge3", "merge4",
      "literals", "numbers" }) do
      it(name, function()
        local dir = ("/tmp/compose-oracle-%s"):format(require("support.leaks").pid())
        assert(os.execute(("rm -rf %s && mkdir -p %s && cp %s/*.yml %s/web.env %s/"):format(dir, dir, FIX, FIX, dir)))
        local vars = {}
        for line in io.lines(FIX .. "/" .. name .. ".vars.env") do vars[#vars + 1] = line end
        local argv = { SLIPWAY, "compose", "config" }
        for _, f in ipairs(sets[name]) do
          argv[#argv + 1] = "-c"
          argv[#argv + 1] = f .. ".yml"
        end
        local r = corpus.run_in(dir, vars, argv)
        os.execute("rm -rf " .. dir)
        assert.same(0, r.code, r.stderr)
        assert.same(corpus.read(FIX .. "/" .. name .. ".expected.yml"),
          (r.stdout:gsub(dir:gsub("%p", "%%%0"), "/tmp/compose-oracle")))
        local docker_warnings, ours = {}, {}
        for msg in corpus.read(FIX .. "/" .. name .. ".stderr.txt"):gmatch('msg="([^"]*)"') do
          docker_warnings[#docker_warnings + 1] = msg
        end
        for msg in r.stderr:gmatch("warning: [^\n]-:%d+:%d+: (ignoring IP%-address[^\n]*)") do ours[#ours + 1] = msg end
        assert.same(docker_warnings, ours)
      end)
    end
  end)
end)
