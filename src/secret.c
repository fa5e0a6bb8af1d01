/*
 * secret.c: secret values and the masking of output (module slipway.secret).
 *
 *   secret.new(value [, name]) -> Secret   value: a string of 4 bytes or more
 *   secret.reveal(v) -> the string a Secret holds; a string as it is
 *   secret.is_secret(v) -> boolean
 *   secret.values() -> { value, ... } every secret made so far, in order
 *   secret.mask(v) -> a string with every secret value (in any of its forms:
 *       src/mask.c) and every password in a URL replaced by "***"; a Secret
 *       gives "***"; anything else is returned as it is
 *   secret.mask_deep(v) -> v with every string value masked and every
 *       Secret "***" (keys are left alone), tables copied where something
 *       changed (the original stays)
 *   secret.redact_urls(text) -> text with URL passwords as "***" only
 *   secret.contains(text) -> whether text holds a secret value (any form)
 *   secret.active() -> whether any secret was made (masking costs nothing
 *       until then)
 *   secret.MIN_LENGTH: 4, the shortest value a secret may have
 *
 * A Secret prints as "***" (tostring, string.format's %s, error messages,
 * reporters), so passing it around cannot leak it; concatenating it (`"Bearer
 * " .. token`) gives the plain string, for the places that must send it.
 * Every value made is registered with the output masker (mask.c), which
 * slipway applies to everything it prints or writes. On GitHub Actions
 * (GITHUB_ACTIONS=true) each new value is also announced to the runner at
 * once with `::add-mask::` on slipway's stdout (stderr after
 * secret._announce_to("stderr"), when stdout carries NDJSON), and each line
 * of a multi-line value too, so the runner masks it in its logs as well.
 * A value shorter than 4 bytes is refused: masking it would blank out
 * ordinary text everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

#define SECRET_MT "slipway.Secret"
#define MIN_SECRET_LEN SW_MASK_MIN
#define MAX_DEPTH 100             /* mask_deep: deeper tables are left as they are */

static int announce_to_stderr = 0;

/* user values of a Secret: 1 = the value, 2 = its name (or nil) */

static int values_ref = LUA_NOREF;     /* registry: list of every value */

static void push_values(lua_State *L) {
  if (values_ref == LUA_NOREF) {
    lua_newtable(L);
    values_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, values_ref);
}

/* One workflow command: the value escaped as command data (% CR LF). */
static void announce_one(FILE *f, const char *s, size_t n) {
  fputs("::add-mask::", f);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') fputs("%25", f);
    else if (s[i] == '\r') fputs("%0D", f);
    else if (s[i] == '\n') fputs("%0A", f);
    else putc(s[i], f);
  }
  putc('\n', f);
}

/* Tell the GitHub Actions runner to mask s (and each line of it) in its
 * logs, before anything can print it. */
static void announce(const char *s, size_t n) {
  const char *gha = getenv("GITHUB_ACTIONS");
  if (gha == NULL || strcmp(gha, "true") != 0) return;
  FILE *f = announce_to_stderr ? stderr : stdout;
  announce_one(f, s, n);
  if (memchr(s, '\n', n)) {
    const char *p = s, *end = s + n;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      size_t len = (size_t)((nl ? nl : end) - p);
      if (len && p[len - 1] == '\r') len--;
      if (len >= MIN_SECRET_LEN) announce_one(f, p, len);
      p = nl ? nl + 1 : end;
    }
  }
  fflush(f);
}

/* The value at idx is known as a secret from now on (once per value):
 * listed, registered with the masker, announced. */
static void remember(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  push_values(L);                                       /* [.., list] */
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TNIL) {                  /* [.., list, seen?] */
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (sw_mask_add(s, len) != 0) luaL_error(L, "secret.new: out of memory");
    announce(s, len);
    lua_Integer n = luaL_len(L, -2);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -3, n + 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -4);                                  /* list[value] = true */
  }
  lua_pop(L, 2);
}

/* Push the string at idx with secret values and URL passwords masked (the
 * same string when there was nothing to mask); returns whether it changed. */
static int push_masked(lua_State *L, int idx) {
  size_t n, n1 = 0, n2 = 0;
  const char *s = lua_tolstring(L, idx, &n);
  char *m1 = NULL, *m2 = NULL;
  int r1 = sw_mask_text(s, n, &m1, &n1);
  if (r1 < 0) return luaL_error(L, "secret.mask: out of memory");
  int r2 = sw_redact_urls(r1 ? m1 : s, r1 ? n1 : n, &m2, &n2);
  if (r2 < 0) {
    free(m1);
    return luaL_error(L, "secret.mask: out of memory");
  }
  if (r2) lua_pushlstring(L, m2, n2);
  else if (r1) lua_pushlstring(L, m1, n1);
  else lua_pushvalue(L, idx);
  free(m1);
  free(m2);
  return r1 || r2;
}

static int push_masked_deep(lua_State *L, int idx, int depth);

/* The table at t, masked deep: a copy (same metatable) made at the first
 * change, or t itself; returns whether it changed. Values are masked, not
 * keys: keys are names (fields, parameters), and masking them would double
 * the cost of every event. */
static int push_masked_table(lua_State *L, int t, int depth) {
  luaL_checkstack(L, 8, "secret.mask_deep");
  int slot = lua_gettop(L) + 1;
  lua_pushnil(L);                               /* [.., copy or nil] */
  lua_pushnil(L);
  while (lua_next(L, t)) {                      /* [.., copy, k, v] */
    if (!push_masked_deep(L, -1, depth + 1)) {  /* [.., copy, k, v, mv] */
      lua_pop(L, 2);
      continue;
    }
    if (lua_isnil(L, slot)) {
      lua_createtable(L, (int)lua_rawlen(L, t), 0);
      lua_pushnil(L);
      while (lua_next(L, t)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
      }
      if (lua_getmetatable(L, t)) lua_setmetatable(L, -2);
      lua_replace(L, slot);
    }
    lua_pushvalue(L, -3);
    lua_insert(L, -2);                          /* [.., copy, k, v, k, mv] */
    lua_rawset(L, slot);                        /* [.., copy, k, v] */
    lua_pop(L, 1);
  }
  if (lua_isnil(L, slot)) {
    lua_pushvalue(L, t);
    lua_replace(L, slot);
    return 0;
  }
  return 1;
}

static int push_masked_deep(lua_State *L, int idx, int depth) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    return push_masked(L, idx);
  case LUA_TUSERDATA:
    if (sw_is_secret(L, idx)) {
      lua_pushliteral(L, "***");
      return 1;
    }
    break;
  case LUA_TTABLE:
    if (depth < MAX_DEPTH) return push_masked_table(L, idx, depth);
    break;
  }
  lua_pushvalue(L, idx);
  return 0;
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

static int secret_mask(lua_State *L) {
  luaL_checkany(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING) push_masked(L, 1);
  else if (sw_is_secret(L, 1)) lua_pushliteral(L, "***");
  else lua_settop(L, 1);
  return 1;
}

static int secret_mask_deep(lua_State *L) {
  luaL_checkany(L, 1);
  push_masked_deep(L, 1, 0);
  return 1;
}

/* _mask_event(ev) -> ev as reporters may see it: mask_deep(ev); but while
 * no secret exists, an output event (most of a run's events) only has its
 * line looked at for a URL password, which costs a memchr instead of a
 * walk over every field. */
static int secret_mask_event(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!sw_mask_active() && lua_getfield(L, 1, "type") == LUA_TSTRING &&
      strcmp(lua_tostring(L, -1), "output") == 0) {
    if (lua_getfield(L, 1, "line") != LUA_TSTRING) {
      lua_settop(L, 1);
      return 1;
    }
    size_t n, len;
    const char *line = lua_tolstring(L, -1, &n);
    char *out;
    int r = sw_redact_urls(line, n, &out, &len);
    if (r < 0) return luaL_error(L, "secret: out of memory");
    if (r == 0) {
      lua_settop(L, 1);
      return 1;
    }
    lua_createtable(L, 0, 6);                   /* a copy with the line redacted */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
    lua_pushlstring(L, out, len);
    free(out);
    lua_setfield(L, -2, "line");
    return 1;
  }
  lua_settop(L, 1);
  push_masked_deep(L, 1, 0);
  return 1;
}

static int secret_redact_urls(lua_State *L) {
  size_t n, len;
  const char *s = luaL_checklstring(L, 1, &n);
  char *out;
  int r = sw_redact_urls(s, n, &out, &len);
  if (r < 0) return luaL_error(L, "secret.redact_urls: out of memory");
  if (r == 0) {
    lua_settop(L, 1);
    return 1;
  }
  lua_pushlstring(L, out, len);
  free(out);
  return 1;
}

static int secret_contains(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, sw_mask_contains(s, n));
  return 1;
}

static int secret_active(lua_State *L) {
  lua_pushboolean(L, sw_mask_active());
  return 1;
}

#define WINDOW 512      /* boundary checks on the stack up to this long a form */

/* Whether the text that args first..n make together holds a secret across
 * the boundary between args first - 1 and first: the (longest - 1) bytes
 * before it and after it, checked as one window. -1 when the forms are
 * too long for the window (the caller then checks the concatenation). */
static int spans_boundary(lua_State *L, int first, int n) {
  size_t k = sw_mask_longest() - 1, len = 0;
  if (k > WINDOW) return -1;
  char window[2 * WINDOW];
  char *back = window + k;                       /* bytes before, right to left */
  for (int i = first - 1; i >= 1 && len < k; i--) {
    size_t l;
    const char *s = lua_tolstring(L, i, &l);
    size_t take = l < k - len ? l : k - len;
    memcpy(back - len - take, s + l - take, take);
    len += take;
  }
  const char *start = back - len;
  size_t after = 0;
  for (int i = first; i <= n && after < k; i++) {
    size_t l;
    const char *s = lua_tolstring(L, i, &l);
    size_t take = l < k - after ? l : k - after;
    memcpy(back + after, s, take);
    after += take;
  }
  return sw_mask_contains(start, len + after);
}

/* _mask_args(...) -> the arguments as they are when their text holds no
 * secret (always while no secret exists, and when one is neither a string
 * nor a number: the writer reports it); else their concatenation, masked.
 * For writers given a line in pieces: the pieces are checked one by one
 * and across their boundaries, so the usual line costs no copy. */
static int secret_mask_args(lua_State *L) {
  int n = lua_gettop(L), hit = 0;
  if (!sw_mask_active()) return n;
  for (int i = 1; i <= n; i++)
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER) return n;
  for (int i = 1; i <= n && !hit; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);   /* (a number becomes its text here) */
    hit = sw_mask_contains(s, len) || (i > 1 && spans_boundary(L, i, n) != 0);
  }
  if (!hit) return n;
  if (n > 1) lua_concat(L, n);
  size_t len, out_len;
  const char *s = lua_tolstring(L, 1, &len);
  char *out;
  int r = sw_mask_text(s, len, &out, &out_len);
  if (r < 0) return luaL_error(L, "secret: out of memory");
  if (r == 0) return 1;
  lua_pushlstring(L, out, out_len);
  free(out);
  return 1;
}

/* _announce_to("stdout" | "stderr"): where ::add-mask:: lines go. */
static int secret_announce_to(lua_State *L) {
  static const char *const streams[] = {"stdout", "stderr", NULL};
  announce_to_stderr = luaL_checkoption(L, 1, NULL, streams);
  return 0;
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
  {"mask", secret_mask},
  {"mask_deep", secret_mask_deep},
  {"redact_urls", secret_redact_urls},
  {"contains", secret_contains},
  {"active", secret_active},
  {"_mask_args", secret_mask_args},
  {"_mask_event", secret_mask_event},
  {"_announce_to", secret_announce_to},
  {NULL, NULL}
};

int luaopen_slipway_secret(lua_State *L) {
  if (luaL_newmetatable(L, SECRET_MT)) luaL_setfuncs(L, secret_meta, 0);
  lua_pop(L, 1);
  luaL_newlib(L, secret_funcs);
  lua_pushinteger(L, MIN_SECRET_LEN);
  lua_setfield(L, -2, "MIN_LENGTH");
  return 1;
}
