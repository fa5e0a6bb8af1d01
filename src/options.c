/*
 * options.c: checking the options tables and arguments natives take, and
 * turning system errors into the nil, "message", "CODE" triple.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "slipway.h"

int sw_push_uverror(lua_State *L, int err, const char *context) {
  lua_pushnil(L);
  if (context)
    lua_pushfstring(L, "%s: %s: %s", uv_err_name(err), uv_strerror(err), context);
  else
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

int sw_push_errno(lua_State *L, int err, const char *context) {
  return sw_push_uverror(L, uv_translate_sys_error(err), context);
}

/* Push what the string s looks like around byte `at`, for an error
 * message: at most 40 bytes, control bytes (the NUL among them) as \ddd,
 * "..." where it is cut. */
static void push_preview(lua_State *L, const char *s, size_t len, size_t at) {
  size_t start = at > 30 ? at - 30 : 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (start > 0) luaL_addstring(&b, "...");
  luaL_addchar(&b, '"');
  for (size_t i = start; i < len && i < start + 40; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 32 || c == 127 || c == '"' || c == '\\') {
      char esc[8];
      snprintf(esc, sizeof esc, c == '"' || c == '\\' ? "\\%c" : "\\%d", c);
      luaL_addstring(&b, esc);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  luaL_addstring(&b, len > start + 40 ? "\"..." : "\"");
  luaL_pushresult(&b);
}

const char *sw_check_cstring(lua_State *L, int idx, const char *fname,
                             const char *what) {
  int t = lua_type(L, idx);
  if (t == LUA_TUSERDATA && sw_is_secret(L, idx)) {
    /* a Secret stands for its plain text here: the slot takes the string
     * (the Secret keeps it alive wherever the caller found it) */
    idx = lua_absindex(L, idx);
    lua_getiuservalue(L, idx, 1);
    lua_replace(L, idx);
    t = LUA_TSTRING;
  }
  if (t != LUA_TSTRING && t != LUA_TNUMBER) {
    lua_pushfstring(L, "%s: %s must be a string, got %s", fname, what,
                    luaL_typename(L, idx));
    sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  const char *nul = memchr(s, '\0', len);
  if (nul != NULL) {
    push_preview(L, s, len, (size_t)(nul - s));
    lua_pushfstring(L, "%s: %s contains a NUL byte: %s", fname, what,
                    lua_tostring(L, -1));
    sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  return s;
}

int sw_unknown_option(lua_State *L, int idx, const char *const allowed[]) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int known = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; allowed[i] && !known; i++) known = strcmp(allowed[i], k) == 0;
    }
    if (!known) return 1;
  }
  return 0;
}

void sw_check_options(lua_State *L, int idx, const char *fname,
                      const char *const allowed[]) {
  if (lua_isnoneornil(L, idx)) return;
  if (lua_type(L, idx) != LUA_TTABLE) {
    lua_pushfstring(L, "%s: options must be a table, got %s", fname,
                    luaL_typename(L, idx));
    sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  if (!sw_unknown_option(L, idx, allowed)) return;
  const char *key = luaL_tolstring(L, -1, NULL);      /* [.., k, ks] */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "%s: unknown option '%s' (valid: ", fname, key);
  luaL_addvalue(&b);
  for (int i = 0; allowed[i]; i++) {
    if (i) luaL_addstring(&b, ", ");
    luaL_addstring(&b, allowed[i]);
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  sw_raise_at_caller(L, lua_tostring(L, -1));
}

static int get_field(lua_State *L, int idx, const char *key) {
  if (lua_isnoneornil(L, idx)) return LUA_TNIL;
  return lua_getfield(L, idx, key);
}

static void wrong_type(lua_State *L, const char *fname, const char *key,
                       const char *expected) {
  lua_pushfstring(L, "%s: option '%s' must be %s, got %s", fname, key,
                  expected, luaL_typename(L, -1));
  sw_raise_at_caller(L, lua_tostring(L, -1));
}

const char *sw_opt_string(lua_State *L, int idx, const char *key,
                          const char *def, const char *fname) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return def;
  }
  /* Not a number either: its conversion would be a string nothing keeps
   * alive once the copy is popped, and the pointer would dangle. A Secret
   * is its text (which the Secret in the options table keeps alive). */
  if (t != LUA_TSTRING && !sw_is_secret(L, -1)) wrong_type(L, fname, key, "a string");
  lua_pushfstring(L, "option '%s'", key);
  /* the string stays alive in the options table */
  const char *s = sw_check_cstring(L, -2, fname, lua_tostring(L, -1));
  lua_pop(L, 2);
  return s;
}

lua_Integer sw_opt_integer(lua_State *L, int idx, const char *key,
                           lua_Integer def, const char *fname) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return def;
  }
  if (!lua_isinteger(L, -1)) wrong_type(L, fname, key, "an integer");
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

int sw_opt_boolean(lua_State *L, int idx, const char *key, int def,
                   const char *fname) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return def;
  }
  if (t != LUA_TBOOLEAN) wrong_type(L, fname, key, "a boolean");
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

int sw_opt_choice(lua_State *L, int idx, const char *key,
                  const char *const choices[], int def, const char *fname) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return def;
  }
  if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    for (int i = 0; choices[i]; i++)
      if (strcmp(choices[i], s) == 0) { lua_pop(L, 1); return i; }
  }
  luaL_Buffer b;
  const char *got = luaL_tolstring(L, -1, NULL);     /* [.., v, got] */
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "%s: option '%s' must be ", fname, key);
  luaL_addvalue(&b);
  for (int i = 0; choices[i]; i++) {
    if (i) luaL_addstring(&b, choices[i + 1] ? ", " : " or ");
    lua_pushfstring(L, "\"%s\"", choices[i]);
    luaL_addvalue(&b);
  }
  lua_pushfstring(L, ", got %s", got);
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  return sw_raise_at_caller(L, lua_tostring(L, -1));
}

size_t sw_opt_size(lua_State *L, int idx, const char *key, size_t def,
                   const char *fname) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return def;
  }
  int exact = 0;
  lua_Integer v = lua_tointegerx(L, -1, &exact);   /* 1e6 is a size too */
  if (t != LUA_TNUMBER || !exact || v < 0) {
    lua_pushfstring(L, "%s: option '%s' must be a size in bytes (a whole number >= 0), got %s",
                    fname, key, t == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  return (size_t)v;
}

void sw_format_size(size_t bytes, char *buf, size_t len) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
    snprintf(buf, len, "%zu MiB", bytes >> 20);
  else if (bytes >= 1024 && bytes % 1024 == 0)
    snprintf(buf, len, "%zu KiB", bytes >> 10);
  else
    snprintf(buf, len, "%zu bytes", bytes);
}

double sw_opt_duration(lua_State *L, int idx, const char *key, double def_ms,
                       const char *fname) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return def_ms;
  }
  double ms;
  size_t len;
  const char *s = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (t == LUA_TNUMBER) {
    ms = lua_tonumber(L, -1) * 1000.0;
  } else if (s == NULL || strlen(s) != len || sw_parse_duration(s, &ms) != 0) {
    lua_pushfstring(L, "%s: option '%s': bad duration '%s' (expected e.g. 250ms, 5s, 1h30m)",
                    fname, key, luaL_tolstring(L, -1, NULL));
    sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  const char *why = sw_duration_problem(ms);
  if (why) {
    lua_pushfstring(L, "%s: option '%s': duration '%s' %s", fname, key,
                    luaL_tolstring(L, -1, NULL), why);
    sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  return ms;
}
