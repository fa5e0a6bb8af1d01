/*
 * uint64.c: the Lua value of an unsigned 64-bit integer too large for a
 * Lua integer (above 2^63 - 1). go-yaml reads a plain scalar such as
 * 12345678901234567890 as a uint64 and docker prints all its digits, so
 * slipway.yaml decodes one into this value rather than a float that would
 * lose them. It is a full userdata "slipway.Uint64": tostring() gives the
 * decimal digits, == compares two of them by value, < and <= compare with
 * other Uint64s and with Lua numbers; the yaml and json encoders write it
 * as a plain integer. Values are interned (one userdata per value while it
 * is alive), so that one works as a table key like a number does.
 */
#include <math.h>
#include <stdio.h>
#include "slipway.h"

#define UINT64_MT "slipway.Uint64"
#define UINT64_INTERNED "slipway.Uint64.interned"  /* registry: weak bits -> userdata */

int sw_uint64_test(lua_State *L, int idx, unsigned long long *v) {
  unsigned long long *p = luaL_testudata(L, idx, UINT64_MT);
  if (p == NULL) return 0;
  if (v) *v = *p;
  return 1;
}

void sw_uint64_format(unsigned long long v, char *buf, size_t len) {
  snprintf(buf, len, "%llu", v);
}

/* -1, 0 or 1 as the Uint64 a is below, equal to or above the number at idx;
 * 2 when they do not compare (NaN). */
static int compare_number(lua_State *L, unsigned long long a, int idx) {
  if (lua_isinteger(L, idx)) {
    lua_Integer b = lua_tointeger(L, idx);
    if (b < 0 || a > (unsigned long long)b) return 1;
    return a < (unsigned long long)b ? -1 : 0;
  }
  double b = lua_tonumber(L, idx);
  if (isnan(b)) return 2;
  if (b < 0) return 1;
  if (b >= 18446744073709551616.0) return -1;
  double whole = floor(b);                 /* exact, and below 2^64 */
  unsigned long long w = (unsigned long long)whole;
  if (a != w) return a < w ? -1 : 1;
  return b > whole ? -1 : 0;
}

/* The order of the values at 1 and 2 (at least one a Uint64), as above;
 * raises for a value that is neither a Uint64 nor a number. */
static int compare_args(lua_State *L) {
  unsigned long long a = 0, b = 0;
  int ua = sw_uint64_test(L, 1, &a), ub = sw_uint64_test(L, 2, &b);
  if (ua && ub) return a < b ? -1 : a > b;
  if (ua) {
    luaL_checktype(L, 2, LUA_TNUMBER);
    return compare_number(L, a, 2);
  }
  luaL_checktype(L, 1, LUA_TNUMBER);
  int c = compare_number(L, b, 1);
  return c == 2 ? 2 : -c;
}

static int uint64_tostring(lua_State *L) {
  char buf[32];
  sw_uint64_format(*(unsigned long long *)luaL_checkudata(L, 1, UINT64_MT), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

static int uint64_eq(lua_State *L) {
  unsigned long long a, b;
  lua_pushboolean(L, sw_uint64_test(L, 1, &a) && sw_uint64_test(L, 2, &b) && a == b);
  return 1;
}

static int uint64_lt(lua_State *L) {
  lua_pushboolean(L, compare_args(L) == -1);
  return 1;
}

static int uint64_le(lua_State *L) {
  int c = compare_args(L);
  lua_pushboolean(L, c == -1 || c == 0);
  return 1;
}

static const luaL_Reg uint64_meta[] = {
  {"__tostring", uint64_tostring},
  {"__eq", uint64_eq},
  {"__lt", uint64_lt},
  {"__le", uint64_le},
  {NULL, NULL}
};

void sw_uint64_push_metatable(lua_State *L) {
  if (luaL_newmetatable(L, UINT64_MT)) luaL_setfuncs(L, uint64_meta, 0);
}

void sw_uint64_push(lua_State *L, unsigned long long v) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, UINT64_INTERNED) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);                                   /* [interned] */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, UINT64_INTERNED);
  }
  if (lua_rawgeti(L, -1, (lua_Integer)v) == LUA_TUSERDATA) {   /* [interned, u] */
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  unsigned long long *p = lua_newuserdatauv(L, sizeof v, 0);  /* [interned, u] */
  *p = v;
  sw_uint64_push_metatable(L);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, (lua_Integer)v);
  lua_remove(L, -2);
}
