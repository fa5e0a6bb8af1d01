/*
 * array_rule.c: the one rule json and yaml encoders use to tell a Lua
 * list from a map. A table marked with the "json.array" metatable is a
 * list and one marked "json.object" a map (decoders mark what they return,
 * so empty [] and {} round-trip); otherwise a table whose keys are exactly
 * 1..n (n > 0) is a list and anything else, the empty table included, a map.
 */
#include "slipway.h"

int sw_table_is_array(lua_State *L, int idx, lua_Integer *len) {
  idx = lua_absindex(L, idx);
  if (lua_getmetatable(L, idx)) {                       /* [mt] */
    luaL_getmetatable(L, SW_ARRAY_MT);
    int arr = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    luaL_getmetatable(L, SW_OBJECT_MT);
    int obj = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (arr) { *len = (lua_Integer)lua_rawlen(L, idx); return 1; }
    if (obj) return 0;
  }
  lua_Integer n = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) { lua_pop(L, 1); return 0; }
    n++;
    if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
  }
  *len = n;
  return n > 0 && n == max;
}
