/*
 * host.c: the runtime's Lua state. Lua modules under lua/ and stdlib/ are
 * compiled into the binary and registered in package.preload under their
 * module names with chunk names that are their source paths, so tracebacks
 * read "lua/cli.lua:12:". Nothing is loaded until it is required.
 *
 * SLIPWAY_SRC=/path/to/checkout makes the loaders read the files from that
 * tree instead, so the runtime's Lua can be edited without a rebuild.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "slipway.h"
#include "host.h"

int luaopen_slipway_task(lua_State *L);

/* package.preload loader for an embedded module; upvalue 1 is its index. */
static int load_embedded(lua_State *L) {
  const struct sw_embedded *m = &sw_embedded[lua_tointeger(L, lua_upvalueindex(1))];
  const char *src = getenv("SLIPWAY_SRC");
  int status;
  lua_pushfstring(L, "@%s", m->path);
  const char *chunkname = lua_tostring(L, -1);
  if (src && *src) {
    const char *file = lua_pushfstring(L, "%s/%s", src, m->path);
    FILE *f = fopen(file, "rb");
    if (f == NULL) return luaL_error(L, "SLIPWAY_SRC: cannot read %s", file);
    luaL_Buffer b;
    char *p;
    size_t n;
    luaL_buffinit(L, &b);
    do {
      p = luaL_prepbuffer(&b);
      n = fread(p, 1, LUAL_BUFFERSIZE, f);
      luaL_addsize(&b, n);
    } while (n == LUAL_BUFFERSIZE);
    fclose(f);
    luaL_pushresult(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    status = luaL_loadbufferx(L, text, len, chunkname, "t");
  } else {
    status = luaL_loadbufferx(L, (const char *)m->data, m->size, chunkname, "b");
  }
  if (status != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);                       /* module name */
  lua_pushstring(L, m->path);                /* like searchers pass the file */
  lua_call(L, 2, 1);
  return 1;
}

lua_State *sw_host_new(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  /* Lua leaves the main thread's extra space uninitialised, and new threads
   * copy it: zero means "not a task" (see sw_current). */
  memset(lua_getextraspace(L), 0, LUA_EXTRASPACE);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);   /* [preload] */
  for (int i = 0; sw_cmodules[i].module; i++) {
    lua_pushcfunction(L, sw_cmodules[i].open);
    lua_setfield(L, -2, sw_cmodules[i].module);
  }
  for (int i = 0; sw_embedded[i].module; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, sw_embedded[i].module);
  }
  lua_pop(L, 1);
  /* The bridge must know the main thread before any task exists. */
  luaL_requiref(L, "slipway.task", luaopen_slipway_task, 0);
  lua_pop(L, 1);
  return L;
}
