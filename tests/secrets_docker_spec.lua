-- Secrets and Docker, against the tests' real engine, registry and swarm:
-- a build argument that is a Secret reaches the build (the image's label
-- says so) but never slipway's output, though the build prints it; a
-- stack's compose secrets from a file and from the environment become
-- Swarm secrets (named by their content's hash) and their values are
-- masked from then on. A grep over the plain and JSON runs' output and
-- records finds no value in any form.
local H = require("support.pipeline_helper")
local fx = require("support.docker_fixtures")
local forms = require("support.secret_forms")
local docker = require("slipway.docker")
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local hash = require("slipway.hash")

local REG = fx.registry

local PIPELINE = [=[
param.string("stack", "")
param.string("image", "", "the app image the stack runs")
param.string("tag", "", "the image to build")
param.secret("build_token", "a build argument")

task("build", function(p)
  local r = docker.build { context = "ctx", tag = p.tag, no_cache = true,
    build_args = { TOKEN = p.build_token, PLAIN = "visible" } }
  print("build output was: " .. r.output)
  return { output = r.output }
end)

task("deploy", { needs = "build" }, function(p)
  docker.stack.deploy(p.stack, {
    services = { app = { image = p.image, secrets = { "db_pw", "api_key" }, deploy = { replicas = 1 } } },
    secrets = { db_pw = { file = "./db_pw.txt" }, api_key = { environment = "LEAK_API_KEY" } },
  }, { timeout = "60s" })
  local pw = require("slipway.fs").read("db_pw.txt")
  print("the stack's secrets: " .. pw .. " and " .. os.getenv("LEAK_API_KEY"))
  io.stderr:write("to stderr: " .. pw .. "\n")
  return { pw = pw, api = os.getenv("LEAK_API_KEY") }
end)

task("fail", { needs = "deploy", continue_on_error = true }, function()
  error("cannot use " .. os.getenv("LEAK_API_KEY") .. " any more")
end)
]=]

local ECHOENV = [[
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  const char *t = getenv("TOKEN");
  printf("the build sees TOKEN=%s\n", t ? t : "(unset)");
  return 0;
}
]]

local DOCKERFILE = [[
FROM scratch
COPY echoenv /echoenv
ARG TOKEN
ARG PLAIN
RUN ["/echoenv"]
LABEL tok=$TOKEN plain=$PLAIN
]]

local function files_under(dir, out)
  out = out or {}
  for _, name in ipairs(fs.list(dir) or {}) do
    local path = dir .. "/" .. name
    if fs.stat(path).type == "directory" then files_under(path, out) else out[path] = assert(fs.read(path)) end
  end
  return out
end

local function assert_no_leak(texts, values)
  for where, text in pairs(texts) do
    local leak = forms.find(text, values, where)
    assert(leak == nil, leak)
  end
end

describe("secrets with Docker", function()
  local app = REG .. "/slipway-e2e-api:v1"
  setup(function()
    if not docker.exists(app) then
      fx.app_image(app, { VERSION = "api-v1" })
      docker.push(app)
    end
  end)
  after_each(H.cleanup)

  it("build args and Swarm secrets reach Docker and never the output", function()
    local stack, tag = fx.unique("sec"), REG .. "/slipway-secret-build:" .. fx.unique("t")
    local build_token = "build tok/" .. hash.random_hex(6) .. "+="
    local db_pw = "db-pw-" .. hash.random_hex(8)
    local api_key = "api key " .. hash.random_hex(8)
    local dir = H.project { ["deploy.lua"] = PIPELINE, ["db_pw.txt"] = db_pw }
    assert(fs.mkdir(dir .. "/ctx"))
    assert(fs.write(dir .. "/ctx/Dockerfile", DOCKERFILE))
    assert(fs.write(dir .. "/ctx/echoenv.c", ECHOENV))
    local cc = assert(proc.run({ "cc", "-static", "-O2", "-o", dir .. "/ctx/echoenv", dir .. "/ctx/echoenv.c" }))
    assert.same(0, cc.code, cc.stderr)
    local values = { build_token, db_pw, api_key }
    -- (the build argument through SLIPWAY_PARAM_*: -p would put it in slipway's argv)
    local env = { LEAK_API_KEY = api_key, SLIPWAY_PARAM_BUILD_TOKEN = build_token }
    local args = { "-p", "stack=" .. stack, "-p", "image=" .. app, "-p", "tag=" .. tag }

    local ok, err = pcall(function()
      local r = H.run(dir, { "run", "--reporter", "plain", table.unpack(args) },
        { env = env, timeout = "120s" })
      assert.same(0, r.code, r.stdout .. r.stderr)
      assert_no_leak({ stdout = r.stdout, stderr = r.stderr }, values)
      -- the build printed the argument; slipway showed it masked
      assert.truthy(r.stdout:find("[build] the build sees TOKEN=***\n", 1, true), r.stdout)
      assert.truthy(r.stdout:find("[deploy] the stack's secrets: *** and ***\n", 1, true), r.stdout)
      assert.truthy(r.stdout:find("[deploy] to stderr: ***\n", 1, true), r.stdout)
      assert.truthy(r.stdout:find("cannot use *** any more", 1, true), r.stdout)

      -- the value did reach the build, and the swarm has secrets made of the values
      local labels = docker.inspect(tag).Config.Labels
      assert.same({ build_token, "visible" }, { labels.tok, labels.plain })
      local listed = fx.cli({ "secret", "ls", "--format", "{{.Name}}" }, { stdout = "capture" }).stdout
      assert.truthy(listed:find(stack .. "_db_pw_" .. hash.sha256(db_pw):sub(1, 12), 1, true), listed)
      assert.truthy(listed:find(stack .. "_api_key_" .. hash.sha256(api_key):sub(1, 12), 1, true), listed)

      -- a second run, on the JSON reporter
      r = H.run_json(dir, args, { env = env, timeout = "120s" })
      assert.same(0, r.code, r.stderr)
      assert_no_leak({ stdout = r.stdout, stderr = r.stderr }, values)
      assert_no_leak(files_under(dir .. "/.slipway"), values)
      local outputs = {}
      for _, ev in ipairs(H.of(r.events, "output")) do outputs[#outputs + 1] = ev.line end
      assert.truthy(table.concat(outputs, "\n"):find("the build sees TOKEN=***", 1, true))
    end)
    fx.remove_stack(stack)
    pcall(docker.rm_image, tag)
    assert(ok, err)
  end)
end)
