/*
 * caller.c: the user's call site, and the checks made in the caller's name
 * (module slipway.caller). One rule for every message that names "where
 * you called it": the innermost Lua frame that is not slipway's own Lua
 * (chunks named "@lua/..." and "@stdlib/...", compiled in or read with
 * SLIPWAY_SRC) and not C. The natives' argument errors (sw_raise_at_caller)
 * and the Lua modules' (caller.where) both use it.
 *
 *   caller.where([source]) -> "file:line: " | ""
 *   caller.location([source]) -> file, line | nil
 *       source ("@deploy.lua"): the innermost frame running that chunk
 *       instead, if there is one
 *   caller.unknown_option(opts, allowed) -> the first key of opts (in the
 *       table's order) that allowed does not list, or nil
 *   caller.check_options(fname, opts, allowed)  -- raises at the call site:
 *       "fname: options must be a table, got x" or
 *       "fname: unknown option 'k' (valid: a, b, c)"
 */
#include <string.h>
#include "slipway.h"

static int runtime_source(const char *src) {
  return strncmp(src, "@lua/", 5) == 0 || strncmp(src, "@stdlib/", 8) == 0;
}

int sw_caller_frame(lua_State *L, const char *source, lua_Debug *out) {
  lua_Debug ar;
  int found = 0;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline <= 0) continue;
    if (source ? strcmp(ar.source, source) == 0 : !runtime_source(ar.source)) {
      *out = ar;
      return 1;
    }
    if (source && !found && !runtime_source(ar.source)) {
      *out = ar;                       /* the fallback when source never runs */
      found = 1;
    }
  }
  return found;
}

/* The file of a frame as messages name it: the path without the "@". */
static const char *frame_file(const lua_Debug *ar) {
  return ar->source[0] == '@' ? ar->source + 1 : ar->short_src;
}

int sw_raise_at_caller(lua_State *L, const char *msg) {
  lua_Debug ar;
  if (sw_caller_frame(L, NULL, &ar))
    lua_pushfstring(L, "%s:%d: %s", frame_file(&ar), ar.currentline, msg);
  else
    lua_pushstring(L, msg);
  return lua_error(L);
}

static const char *opt_source(lua_State *L) {
  return luaL_optstring(L, 1, NULL);
}

static int caller_where(lua_State *L) {
  lua_Debug ar;
  if (sw_caller_frame(L, opt_source(L), &ar))
    lua_pushfstring(L, "%s:%d: ", frame_file(&ar), ar.currentline);
  else
    lua_pushliteral(L, "");
  return 1;
}

static int caller_location(lua_State *L) {
  lua_Debug ar;
  if (!sw_caller_frame(L, opt_source(L), &ar)) return 0;
  lua_pushstring(L, frame_file(&ar));
  lua_pushinteger(L, ar.currentline);
  return 2;
}

/* The strings of the list at lidx as a NULL-terminated C array (memory
 * owned by a userdata left on the stack; the strings by the list). */
static const char *const *allowed_list(lua_State *L, int lidx) {
  lua_Integer n = luaL_len(L, lidx);
  const char **list = (const char **)lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *list, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, lidx, i);
    list[i - 1] = lua_tostring(L, -1);
    if (list[i - 1] == NULL) return luaL_error(L, "caller: the allowed options must be strings"), NULL;
    lua_pop(L, 1);
  }
  list[n] = NULL;
  return list;
}

static int caller_unknown_option(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  return sw_unknown_option(L, 1, allowed_list(L, 2));
}

static int caller_check_options(lua_State *L) {
  const char *fname = luaL_checkstring(L, 1);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  sw_check_options(L, 2, fname, allowed_list(L, 3));
  return 0;
}

static const luaL_Reg caller_funcs[] = {
  {"where", caller_where},
  {"location", caller_location},
  {"unknown_option", caller_unknown_option},
  {"check_options", caller_check_options},
  {NULL, NULL}
};

int luaopen_slipway_caller(lua_State *L) {
  luaL_newlib(L, caller_funcs);
  return 1;
}
