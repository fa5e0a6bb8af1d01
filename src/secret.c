/*
 * secret.c: secret values (module slipway.secret).
 *
 *   secret.new(value [, name]) -> Secret   value: a string of 4 bytes or more
 *   secret.reveal(v) -> the string a Secret holds; a string as it is
 *   secret.is_secret(v) -> boolean
 *   secret.values() -> { value, ... } every secret made so far, in order
 *
 * A Secret prints as "***" (tostring, string.format's %s, error messages,
 * reporters), so passing it around cannot leak it; concatenating it (`"Bearer
 * " .. token`) gives the plain string, for the places that must send it.
 * Every value made is remembered for the output masker, which replaces it
 * wherever output, events, records or files slipway writes would show it.
 * A value shorter than 4 bytes is refused: masking it would blank out
 * ordinary text everywhere.
 */
#include <string.h>
#include "slipway.h"

#define SECRET_MT "slipway.Secret"
#define MIN_SECRET_LEN 4

/* user values of a Secret: 1 = the value, 2 = its name (or nil) */

static int values_ref = LUA_NOREF;     /* registry: list of every value */

static void push_values(lua_State *L) {
  if (values_ref == LUA_NOREF) {
    lua_newtable(L);
    values_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, values_ref);
}

/* The value at idx is known as a secret from now on (once per value). */
static void remember(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  push_values(L);                                       /* [.., list] */
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TNIL) {                  /* [.., list, seen?] */
    lua_Integer n = luaL_len(L, -2);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -3, n + 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -4);                                  /* list[value] = true */
  }
  lua_pop(L, 2);
}

int sw_is_secret(lua_State *L, int idx) {
  return luaL_testudata(L, idx, SECRET_MT) != NULL;
}

const char *sw_secret_value(lua_State *L, int idx, size_t *len) {
  if (!sw_is_secret(L, idx)) return NULL;
  lua_getiuservalue(L, idx, 1);
  const char *s = lua_tolstring(L, -1, len);
  lua_pop(L, 1);                   /* the userdata keeps the string alive */
  return s;
}

static int secret_new(lua_State *L) {
  size_t len;
  luaL_checktype(L, 1, LUA_TSTRING);
  sw_check_cstring(L, 1, "secret.new", "the value");
  lua_tolstring(L, 1, &len);
  if (len < MIN_SECRET_LEN) {
    lua_pushfstring(L, "secret.new: a secret must be %d characters or more, this one has %d "
                    "(masking so short a value would hide ordinary text everywhere)",
                    MIN_SECRET_LEN, (int)len);
    return sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  if (!lua_isnoneornil(L, 2)) luaL_checkstring(L, 2);
  lua_newuserdatauv(L, 0, 2);                           /* [v, name, s] */
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 2);
  luaL_setmetatable(L, SECRET_MT);
  remember(L, 1);
  return 1;
}

static int secret_reveal(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    lua_settop(L, 1);
    return 1;
  }
  if (!sw_is_secret(L, 1)) return luaL_typeerror(L, 1, "a secret or a string");
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int secret_is_secret(lua_State *L) {
  lua_pushboolean(L, sw_is_secret(L, 1));
  return 1;
}

static int secret_values(lua_State *L) {
  push_values(L);
  lua_Integer n = luaL_len(L, -1);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

static int secret_tostring(lua_State *L) {
  lua_pushliteral(L, "***");
  return 1;
}

/* "a" .. s, s .. "b", s .. s: the plain text (numbers as Lua writes them) */
static int secret_concat(lua_State *L) {
  for (int i = 1; i <= 2; i++) {
    if (sw_is_secret(L, i)) {
      lua_getiuservalue(L, i, 1);
      lua_replace(L, i);
    } else if (!lua_isstring(L, i)) {
      return luaL_error(L, "attempt to concatenate a %s value with a secret", luaL_typename(L, i));
    }
  }
  lua_concat(L, 2);
  return 1;
}

static int secret_len(lua_State *L) {
  size_t len;
  sw_secret_value(L, 1, &len);
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

static int secret_eq(lua_State *L) {
  size_t a, b;
  const char *x = sw_secret_value(L, 1, &a), *y = sw_secret_value(L, 2, &b);
  lua_pushboolean(L, x && y && a == b && memcmp(x, y, a) == 0);
  return 1;
}

static int secret_index(lua_State *L) {
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "name") == 0) {
    lua_getiuservalue(L, 1, 2);
    return 1;
  }
  if (strcmp(key, "reveal") == 0) {
    lua_pushcfunction(L, secret_reveal);
    return 1;
  }
  return 0;
}

static const luaL_Reg secret_meta[] = {
  {"__tostring", secret_tostring},
  {"__concat", secret_concat},
  {"__len", secret_len},
  {"__eq", secret_eq},
  {"__index", secret_index},
  {NULL, NULL}
};

static const luaL_Reg secret_funcs[] = {
  {"new", secret_new},
  {"reveal", secret_reveal},
  {"is_secret", secret_is_secret},
  {"values", secret_values},
  {NULL, NULL}
};

int luaopen_slipway_secret(lua_State *L) {
  if (luaL_newmetatable(L, SECRET_MT)) luaL_setfuncs(L, secret_meta, 0);
  lua_pop(L, 1);
  luaL_newlib(L, secret_funcs);
  return 1;
}
