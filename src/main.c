/*
 * main.c: the slipway executable. Everything past creating the state is the
 * Lua command-line module (lua/cli.lua), called with the arguments; its
 * return value is the exit status.
 */
#include <stdio.h>
#include <stdlib.h>
#include "slipway.h"
#include "host.h"

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L = sw_host_new();
  if (L == NULL) {
    fputs("slipway: cannot create the Lua state (out of memory)\n", stderr);
    return 1;
  }
  lua_pushcfunction(L, traceback);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "slipway.cli");
  int status = lua_pcall(L, 1, 1, 1);
  if (status == LUA_OK) {
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i);
    }
    status = lua_pcall(L, 1, 1, 1);
  }
  int code;
  if (status != LUA_OK) {
    fprintf(stderr, "slipway: internal error: %s\n", lua_tostring(L, -1));
    code = 70;
  } else {
    code = (int)luaL_optinteger(L, -1, 0);
  }
  fflush(stdout);
  lua_close(L);
  uv_loop_close(sw_loop());
  return code;
}
