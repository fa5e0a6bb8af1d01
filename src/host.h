/*
 * host.h: creating the runtime's Lua state: standard libraries, the
 * embedded Lua modules and the native modules, all in package.preload.
 */
#ifndef SLIPWAY_HOST_H
#define SLIPWAY_HOST_H

#include <lua.h>

/* One Lua source file compiled into the binary (build/gen/embedded.c). */
struct sw_embedded {
  const char *module;     /* "slipway.cli" */
  const char *path;       /* "lua/cli.lua": the chunk name and, in
                             development mode, the file read instead */
  const unsigned char *data;
  unsigned long size;
};

/* One native module (build/gen/cmodules.c). */
struct sw_cmodule {
  const char *module;     /* "slipway.task" */
  lua_CFunction open;     /* luaopen_slipway_task */
};

extern const struct sw_embedded sw_embedded[];
extern const struct sw_cmodule sw_cmodules[];

/* A new state with everything registered. When the environment variable
 * SLIPWAY_SRC names a source tree, embedded modules are read from it. */
lua_State *sw_host_new(void);

#endif
