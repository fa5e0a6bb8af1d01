/*
 * json.c: the slipway.json module. Decoding uses cJSON for the structure;
 * numbers and errors need more than cJSON keeps (it stores every number as
 * a double and reports no reason for a failure), so a small scanner walks
 * the text alongside and hands each number token to Lua's own number
 * reader: "3" stays the integer 3, "3.0" the float 3.0, and 2^63-1 keeps
 * every digit. Encoding is done here directly with a luaL_Buffer, so that
 * integers are printed exactly and floats with the shortest form that reads
 * back the same.
 *
 * Arrays and objects: a table is encoded as an array when its metatable is
 * json.array_mt, as an object when it is json.object_mt; otherwise a table
 * whose keys are exactly 1..n (n >= 1) is an array and any other table,
 * including an empty one, is an object. decode() marks every array and
 * object it returns with these metatables, so decode -> encode round-trips
 * `[]` and `{}`; json.array(t) / json.object(t) mark tables by hand.
 * JSON null is json.null, the lightuserdata NULL that slipway.yaml shares.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "slipway.h"

#define JSON_MAX_DEPTH 1000

/* The two marker metatables live in the registry under these names, so
 * that slipway.yaml marks its sequences with the same one. */
#define ARRAY_MT SW_ARRAY_MT
#define OBJECT_MT SW_OBJECT_MT
static const char enc_gc_key = 'g';

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* Offset of the first invalid UTF-8 byte in s, or (size_t)-1 if valid. */
static size_t utf8_invalid_at(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) { i++; continue; }
    size_t l = utf8_seq(p + i, n - i);
    if (l == 0) return i;
    i += l;
  }
  return (size_t)-1;
}

/* ---------------------------------------------------------------- decode */

typedef struct {
  const char *text;
  size_t len;
  size_t pos;          /* scanner position: where to look for the next number */
  size_t err_at;       /* byte offset of a scanner error */
  const char *err;     /* scanner error, NULL if none */
} scan_state;

/* Is text[0..n) a number by the JSON grammar? */
static int json_number_ok(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-') i++;
  if (i >= n) return 0;
  if (s[i] == '0') i++;
  else if (s[i] >= '1' && s[i] <= '9') { while (i < n && s[i] >= '0' && s[i] <= '9') i++; }
  else return 0;
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  return i == n;
}

/* Find the next number token after st->pos, outside strings, and push it as
 * a Lua number. cJSON has already accepted the whole text, so numbers appear
 * in the same order as in its tree. Returns 0 and sets st->err on a number
 * cJSON is lax about (01, 1., -) that JSON forbids. */
static int scan_number(lua_State *L, scan_state *st) {
  const char *t = st->text;
  size_t i = st->pos;
  while (i < st->len) {
    char c = t[i];
    if (c == '"') {                        /* skip a string */
      i++;
      while (i < st->len && t[i] != '"') i += (t[i] == '\\') ? 2 : 1;
      i++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      break;
    } else {
      i++;
    }
  }
  size_t start = i;
  while (i < st->len && strchr("0123456789+-.eE", t[i]) != NULL) i++;
  st->pos = i;
  size_t n = i - start;
  char buf[512];
  if (n == 0 || n >= sizeof buf || !json_number_ok(t + start, n)) {
    st->err = "invalid number";
    st->err_at = start;
    return 0;
  }
  memcpy(buf, t + start, n);
  buf[n] = '\0';
  if (lua_stringtonumber(L, buf) == 0) {   /* cannot happen for valid JSON */
    st->err = "invalid number";
    st->err_at = start;
    return 0;
  }
  /* integers too large for 64 bits come back as floats: fine */
  return 1;
}

static void set_marker(lua_State *L, const char *name) {
  luaL_getmetatable(L, name);
  lua_setmetatable(L, -2);
}

/* Push the Lua value of item. Returns 0 (with st->err set) on failure. */
static int push_item(lua_State *L, const cJSON *item, scan_state *st) {
  luaL_checkstack(L, 4, "json.decode: nesting too deep");
  switch (item->type & 0xFF) {
  case cJSON_NULL:   lua_pushlightuserdata(L, NULL); return 1;
  case cJSON_False:  lua_pushboolean(L, 0); return 1;
  case cJSON_True:   lua_pushboolean(L, 1); return 1;
  case cJSON_Number: return scan_number(L, st);
  case cJSON_String: lua_pushstring(L, item->valuestring); return 1;
  case cJSON_Array: {
    lua_Integer i = 0;
    lua_createtable(L, cJSON_GetArraySize(item), 0);
    for (const cJSON *c = item->child; c; c = c->next) {
      if (!push_item(L, c, st)) return 0;
      lua_rawseti(L, -2, ++i);
    }
    set_marker(L, ARRAY_MT);
    return 1;
  }
  case cJSON_Object: {
    lua_createtable(L, 0, 4);
    for (const cJSON *c = item->child; c; c = c->next) {
      lua_pushstring(L, c->string);
      if (!push_item(L, c, st)) return 0;
      lua_rawset(L, -3);
    }
    set_marker(L, OBJECT_MT);
    return 1;
  }
  default:
    st->err = "unsupported value";
    st->err_at = st->pos;
    return 0;
  }
}

/* Why cJSON stopped at p: a reason a person can act on. */
static void describe_error(lua_State *L, const char *text, size_t len, const char *p) {
  size_t at = (p && p >= text && p <= text + len) ? (size_t)(p - text) : len;
  while (at < len && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r'))
    at++;
  if (at >= len)
    lua_pushfstring(L, "json: unexpected end of input at byte %d", (int)at + 1);
  else if ((unsigned char)text[at] >= 0x20 && (unsigned char)text[at] < 0x7F)
    lua_pushfstring(L, "json: unexpected character '%c' at byte %d", text[at], (int)at + 1);
  else
    lua_pushfstring(L, "json: unexpected byte 0x%02X at byte %d",
                    (unsigned)(unsigned char)text[at], (int)at + 1);
}

/* A string escape cJSON cannot represent (it keeps C strings). */
static size_t find_nul_escape(const char *t, size_t n) {
  for (size_t i = 0; i + 5 < n; i++)
    if (t[i] == '\\') {
      if (strncmp(t + i + 1, "u0000", 5) == 0) return i;
      i++;                                 /* skip the escaped char */
    }
  return (size_t)-1;
}

/* decode(text) -> value | nil, "json: <what> at byte N", "EJSON".
 * N is 1-based (text:sub(N) starts at the offending byte). */
static int json_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  size_t bad = utf8_invalid_at(text, len);
  if (bad != (size_t)-1) {
    lua_pushnil(L);
    lua_pushfstring(L, "json: invalid UTF-8 at byte %d", (int)bad + 1);
    lua_pushliteral(L, "EJSON");
    return 3;
  }
  bad = find_nul_escape(text, len);
  if (bad != (size_t)-1) {
    lua_pushnil(L);
    lua_pushfstring(L, "json: \\u0000 in a string is not supported at byte %d", (int)bad + 1);
    lua_pushliteral(L, "EJSON");
    return 3;
  }
  /* The length includes Lua's terminating NUL: cJSON clamps an error
   * position to the last byte it was given, and this way "past the end"
   * stays distinguishable from "at the last character". */
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 0);
  if (root == NULL) {
    lua_pushnil(L);
    describe_error(L, text, len, end ? end : cJSON_GetErrorPtr());
    lua_pushliteral(L, "EJSON");
    return 3;
  }
  /* cJSON stops after the first value; only whitespace may follow */
  size_t at = (size_t)(end - text);
  while (at < len && strchr(" \t\r\n", text[at]) != NULL) at++;
  if (at < len) {
    cJSON_Delete(root);
    lua_pushnil(L);
    lua_pushfstring(L, "json: unexpected data after the value at byte %d", (int)at + 1);
    lua_pushliteral(L, "EJSON");
    return 3;
  }
  scan_state st = { text, len, 0, 0, NULL };
  int top = lua_gettop(L);
  int ok = push_item(L, root, &st);
  cJSON_Delete(root);
  if (!ok) {
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushfstring(L, "json: %s at byte %d", st.err, (int)st.err_at + 1);
    lua_pushliteral(L, "EJSON");
    return 3;
  }
  return 1;
}

/* ---------------------------------------------------------------- encode */

typedef struct {
  sw_outbuf b;          /* the output (outbuf.c) */
  int pretty;
  int sort_keys;
  int seen;            /* stack index of the table of tables being encoded */
  int path;            /* stack index of the path table (for error messages) */
} enc_state;

#define sb_add sw_outbuf_add

#define ADDS(L, e, s) sb_add(L, &(e)->b, s, strlen(s))
#define ADDC(L, e, c) do { char c_ = (c); sb_add(L, &(e)->b, &c_, 1); } while (0)

static int enc_gc(lua_State *L) {
  enc_state *e = lua_touserdata(L, 1);
  sw_outbuf_free(&e->b);
  return 0;
}

/* Raise "json.encode: <msg> at $.a[2].b" (path elements on the path table). */
static int enc_error(lua_State *L, enc_state *e, const char *msg) {
  luaL_Buffer pb;
  lua_Integer n = luaL_len(L, e->path);
  luaL_buffinit(L, &pb);
  luaL_addchar(&pb, '$');
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, e->path, i);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushfstring(L, "[%d]", (int)lua_tointeger(L, -1));
      lua_remove(L, -2);
    } else {
      lua_pushfstring(L, ".%s", lua_tostring(L, -1));
      lua_remove(L, -2);
    }
    luaL_addvalue(&pb);
  }
  luaL_pushresult(&pb);
  return luaL_error(L, "json.encode: %s at %s", msg, lua_tostring(L, -1));
}

static void enc_string(lua_State *L, enc_state *e, int idx) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (utf8_invalid_at(s, n) != (size_t)-1) enc_error(L, e, "invalid UTF-8 in a string");
  ADDC(L, e, '"');
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char ubuf[8];
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    default:
      if (c < 0x20 || c == 0x7F) { snprintf(ubuf, sizeof ubuf, "\\u%04x", c); esc = ubuf; }
    }
    if (esc) {
      sb_add(L, &e->b, s + run, i - run);
      ADDS(L, e, esc);
      run = i + 1;
    }
  }
  sb_add(L, &e->b, s + run, n - run);
  ADDC(L, e, '"');
}

static void enc_number(lua_State *L, enc_state *e, int idx) {
  char buf[64];
  if (lua_isinteger(L, idx)) {
    snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
  } else {
    double d = lua_tonumber(L, idx);
    if (isnan(d) || isinf(d)) enc_error(L, e, "cannot encode NaN or infinity");
    /* the shortest of %.15g..%.17g that reads back as the same double */
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, d);
      if (strtod(buf, NULL) == d) break;
    }
    if (strpbrk(buf, ".eEn") == NULL) strcat(buf, ".0");   /* stays a float */
  }
  ADDS(L, e, buf);
}

static void enc_newline(lua_State *L, enc_state *e, int depth) {
  if (!e->pretty) return;
  ADDC(L, e, '\n');
  for (int i = 0; i < depth; i++) sb_add(L, &e->b, "  ", 2);
}

static void enc_value(lua_State *L, enc_state *e, int idx, int depth);

typedef struct { const char *s; size_t n; lua_Integer i; } key_ent;

static int key_cmp(const void *a, const void *b) {
  const key_ent *x = a, *y = b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  if (c != 0) return c;
  return (x->n > y->n) - (x->n < y->n);
}

/* Write the table at idx as an object. Keys must be strings or numbers
 * (numbers are written as their decimal text, the way a sparse array comes
 * out); with sort_keys they are ordered bytewise, for stable output. */
static void enc_object(lua_State *L, enc_state *e, int idx, int depth) {
  lua_newtable(L);        /* keys: [i] = text of key i, [-i] = the key itself */
  int keys = lua_gettop(L);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int kt = lua_type(L, -1);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
      lua_pushfstring(L, "object key of type %s (keys must be strings)", luaL_typename(L, -1));
      enc_error(L, e, lua_tostring(L, -1));
    }
    n++;
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, -n);
    lua_pushvalue(L, -1);
    if (kt == LUA_TNUMBER) lua_tostring(L, -1);   /* converts the copy, not the key */
    lua_rawseti(L, keys, n);
  }
  key_ent *ents = NULL;
  if (n > 0) {
    ents = lua_newuserdatauv(L, (size_t)n * sizeof(key_ent), 0);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, keys, i);
      ents[i - 1].s = lua_tolstring(L, -1, &ents[i - 1].n);   /* anchored in keys */
      ents[i - 1].i = i;
      lua_pop(L, 1);
    }
    if (e->sort_keys) qsort(ents, (size_t)n, sizeof(key_ent), key_cmp);
  }
  ADDC(L, e, '{');
  for (lua_Integer j = 0; j < n; j++) {
    if (j > 0) ADDC(L, e, ',');
    enc_newline(L, e, depth + 1);
    lua_rawgeti(L, keys, ents[j].i);
    lua_rawseti(L, e->path, luaL_len(L, e->path) + 1);
    lua_rawgeti(L, keys, ents[j].i);
    enc_string(L, e, lua_gettop(L));
    lua_pop(L, 1);
    ADDS(L, e, e->pretty ? ": " : ":");
    lua_rawgeti(L, keys, -ents[j].i);
    lua_rawget(L, idx);
    enc_value(L, e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawseti(L, e->path, luaL_len(L, e->path));
  }
  if (n > 0) { enc_newline(L, e, depth); lua_pop(L, 1); }   /* ents */
  ADDC(L, e, '}');
  lua_pop(L, 1);                                   /* keys */
}

static void enc_table(lua_State *L, enc_state *e, int idx, int depth) {
  if (depth >= JSON_MAX_DEPTH) enc_error(L, e, "nesting too deep");
  luaL_checkstack(L, 8, "json.encode: nesting too deep");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) != LUA_TNIL) enc_error(L, e, "cycle (a table contains itself)");
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->seen);
  lua_Integer len;
  if (sw_table_is_array(L, idx, &len)) {   /* the rule: array_rule.c */
    ADDC(L, e, '[');
    for (lua_Integer i = 1; i <= len; i++) {
      if (i > 1) ADDC(L, e, ',');
      enc_newline(L, e, depth + 1);
      lua_pushinteger(L, i);
      lua_rawseti(L, e->path, luaL_len(L, e->path) + 1);
      lua_rawgeti(L, idx, i);
      enc_value(L, e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawseti(L, e->path, luaL_len(L, e->path));
    }
    if (len > 0) enc_newline(L, e, depth);
    ADDC(L, e, ']');
  } else {
    enc_object(L, e, idx, depth);
  }
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, e->seen);
}

static void enc_value(lua_State *L, enc_state *e, int idx, int depth) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: ADDS(L, e, "null"); break;
  case LUA_TBOOLEAN: ADDS(L, e, lua_toboolean(L, idx) ? "true" : "false"); break;
  case LUA_TNUMBER: enc_number(L, e, idx); break;
  case LUA_TSTRING: enc_string(L, e, idx); break;
  case LUA_TTABLE: enc_table(L, e, idx, depth); break;
  case LUA_TLIGHTUSERDATA: case LUA_TUSERDATA: {
    unsigned long long u;
    char digits[32];
    if (lua_touserdata(L, idx) == NULL) { ADDS(L, e, "null"); break; }
    if (sw_uint64_test(L, idx, &u)) {          /* a uint64 read from YAML */
      sw_uint64_format(u, digits, sizeof digits);
      ADDS(L, e, digits);
      break;
    }
  }
    /* fall through */
  default: {
    lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx));
    enc_error(L, e, lua_tostring(L, -1));
  }
  }
}

/* encode(value, {pretty = false, sort_keys = true}) -> text. Raises on a
 * value JSON cannot hold (function, cycle, invalid UTF-8, NaN). */
static int json_encode(lua_State *L) {
  static const char *const allowed[] = {"pretty", "sort_keys", NULL};
  luaL_checkany(L, 1);
  sw_check_options(L, 2, "json.encode", allowed);
  int pretty = sw_opt_boolean(L, 2, "pretty", 0, "json.encode");
  int sort_keys = sw_opt_boolean(L, 2, "sort_keys", 1, "json.encode");
  lua_settop(L, 1);
  lua_newtable(L);                                 /* 2: seen */
  lua_newtable(L);                                 /* 3: path */
  enc_state *e = lua_newuserdatauv(L, sizeof(enc_state), 0);   /* 4 */
  memset(e, 0, sizeof *e);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &enc_gc_key);
  lua_setmetatable(L, 4);
  e->pretty = pretty;
  e->sort_keys = sort_keys;
  e->seen = 2;
  e->path = 3;
  enc_value(L, e, 1, 0);
  sw_outbuf_push(L, &e->b);
  return 1;
}

static int mark(lua_State *L, const char *name) {
  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_getmetatable(L, name);
  lua_setmetatable(L, 1);
  return 1;
}

/* array([t]) -> t marked to encode as a JSON array (even when empty) */
static int json_array(lua_State *L) { return mark(L, ARRAY_MT); }

/* object([t]) -> t marked to encode as a JSON object */
static int json_object(lua_State *L) { return mark(L, OBJECT_MT); }

static const luaL_Reg json_funcs[] = {
  {"decode", json_decode},
  {"encode", json_encode},
  {"array", json_array},
  {"object", json_object},
  {NULL, NULL}
};

int luaopen_slipway_json(lua_State *L) {
  luaL_newlib(L, json_funcs);
  luaL_newmetatable(L, ARRAY_MT);      /* or the one slipway.yaml made */
  lua_setfield(L, -2, "array_mt");
  luaL_newmetatable(L, OBJECT_MT);
  lua_setfield(L, -2, "object_mt");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_newtable(L);                     /* metatable of the encoder's state */
  lua_pushcfunction(L, enc_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &enc_gc_key);
  return 1;
}
