/*
 * fuzz_harness.h: the body shared by the libFuzzer targets in tests/fuzz/.
 * A target file defines FUZZ_TARGET ("yaml", "interpolate", "compose") and
 * includes this header; the property it checks is the Lua function of that
 * name in tests/fuzz/checks.lua (FUZZ_CHECKS, set by the Makefile).
 *
 * One Lua state per process, made by sw_host_new() like the slipway binary,
 * so the code under test is the embedded runtime itself. Per input the check
 * runs under pcall: it returns for anything the code handled (accepted, or
 * rejected with one of its ordinary errors) and raises for an internal
 * error, which is printed with its traceback before abort() so that
 * libFuzzer saves the input as a crash.
 *
 * libFuzzer only sees the coverage of instrumented C, and the compose loader
 * is Lua. A line hook therefore maps (chunk, previous line, line) to
 * libFuzzer's extra counters, so inputs that reach new Lua lines or new line
 * pairs count as new coverage and are kept in the corpus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include "host.h"

#ifndef FUZZ_CHECKS
#error "FUZZ_CHECKS (the path of tests/fuzz/checks.lua) must be defined"
#endif

#define FZ_COUNTERS (1 << 16)

/* libFuzzer reads every byte of this section after each input (Linux). */
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t fz_lua_cov[FZ_COUNTERS];

static lua_State *fz_L;
static uintptr_t fz_prev;                 /* hash of the previous line */
static char fz_tmpdir[256];

/* Chunk source strings live as long as their functions, and the runtime's
 * modules are loaded once, so the pointer identifies a chunk for the whole
 * run. */
static void fz_line_hook(lua_State *L, lua_Debug *ar) {
  if (!lua_getinfo(L, "S", ar)) return;
  uintptr_t h = ((uintptr_t)ar->source * 0x9E3779B97F4A7C15ull) ^ ((uintptr_t)ar->currentline * 0x85EBCA6Bu);
  fz_lua_cov[(h ^ fz_prev) % FZ_COUNTERS]++;
  fz_prev = h >> 1;                       /* A->B and B->A differ */
}

static int fz_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void fz_cleanup(void) {
  if (fz_tmpdir[0]) rmdir(fz_tmpdir);     /* checks remove their own files */
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fz_L = sw_host_new();
  if (fz_L == NULL) { fputs("fuzz: cannot create the Lua state\n", stderr); abort(); }
  const char *tmp = getenv("TMPDIR");
  snprintf(fz_tmpdir, sizeof fz_tmpdir, "%s/slipway-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(fz_tmpdir) == NULL) { perror("fuzz: mkdtemp"); abort(); }
  atexit(fz_cleanup);
  lua_State *L = fz_L;
  lua_pushstring(L, fz_tmpdir);
  lua_setglobal(L, "FUZZ_TMPDIR");
  lua_pushcfunction(L, fz_traceback);
  if (luaL_loadfile(L, FUZZ_CHECKS) != LUA_OK || lua_pcall(L, 0, 1, 1) != LUA_OK) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  if (lua_getfield(L, -1, FUZZ_TARGET) != LUA_TFUNCTION) {
    fprintf(stderr, "fuzz: %s has no function '%s'\n", FUZZ_CHECKS, FUZZ_TARGET);
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.check");
  lua_settop(L, 0);
  if (!getenv("FUZZ_NO_LUA_COV")) lua_sethook(L, fz_line_hook, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fz_L;
  fz_prev = 0;
  lua_pushcfunction(L, fz_traceback);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.check");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
    fprintf(stderr, "\nfuzz_%s: internal error: %s\n", FUZZ_TARGET, lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}
