/*
 * json.c: the slipway.json module, decoder and encoder written here (RFC
 * 8259; a JSON string is any byte string, NUL included, so "a\u0000b"
 * decodes to three bytes and the Lua string "a\0b" encodes back to it).
 *
 * Numbers: an integer that fits in 64 bits decodes to a Lua integer ("3"
 * stays 3, 2^63-1 keeps every digit), any other number to a float ("3.0",
 * "1e2", 2^64). Integers encode exactly, floats as the shortest of
 * %.15g..%.17g that reads back as the same double, with ".0" added when
 * that looks like an integer, so a float stays a float.
 *
 * Arrays and objects: a table is encoded as an array when its metatable is
 * json.array_mt, as an object when it is json.object_mt; otherwise a table
 * whose keys are exactly 1..n (n >= 1) is an array and any other table,
 * including an empty one, is an object (array_rule.c). decode() marks every
 * array and object it returns with these metatables, so decode -> encode
 * round-trips `[]` and `{}`; json.array(t) / json.object(t) mark tables by
 * hand. JSON null is json.null, the lightuserdata NULL slipway.yaml shares.
 *
 * Text must be UTF-8 both ways. encode's invalid_utf8 = "replace" and
 * replace_invalid_utf8(s) turn each byte that is not part of valid UTF-8
 * into U+FFFD instead (what a program printed, in an error message).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

/* Arrays and objects nest at most this deep, both ways. */
#define JSON_MAX_DEPTH 1000
#define DEPTH_TEXT_(n) #n
#define DEPTH_TEXT(n) DEPTH_TEXT_(n)
#define TOO_DEEP "nesting deeper than " DEPTH_TEXT(JSON_MAX_DEPTH) " levels"

/* The two marker metatables live in the registry under these names, so
 * that slipway.yaml marks its sequences with the same one. */
#define ARRAY_MT SW_ARRAY_MT
#define OBJECT_MT SW_OBJECT_MT
static const char enc_gc_key = 'g';

#define REPLACEMENT_CHAR "\xEF\xBF\xBD"   /* U+FFFD in UTF-8 */

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

/* Write code point cp (< 0x110000, not a surrogate) as UTF-8 into out;
 * returns the number of bytes. */
static size_t utf8_put(unsigned cp, char *out) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---------------------------------------------------------------- decode */

/* The decoder reads text[pos..len) by recursive descent. A failure sets
 * err (NULL: "unexpected" whatever is at err_at) and unwinds by returning
 * 0, so that decode() can return it as a value. */
typedef struct {
  const char *text;
  size_t len, pos;
  int depth;
  int array_mt, object_mt;   /* stack indices of the marker metatables */
  const char *err;
  size_t err_at;
} dec_state;

static int dec_fail(dec_state *d, const char *err, size_t at) {
  d->err = err;
  d->err_at = at;
  return 0;
}

/* Whatever is at the current position was not expected there. */
static int dec_unexpected(dec_state *d) { return dec_fail(d, NULL, d->pos); }

static void dec_skip_space(dec_state *d) {
  const char *t = d->text;
  while (d->pos < d->len &&
         (t[d->pos] == ' ' || t[d->pos] == '\n' || t[d->pos] == '\r' || t[d->pos] == '\t'))
    d->pos++;
}

/* The next byte after white space, or -1 at the end of the text. */
static int dec_peek(dec_state *d) {
  dec_skip_space(d);
  return d->pos < d->len ? (unsigned char)d->text[d->pos] : -1;
}

static int dec_literal(dec_state *d, const char *word, size_t n) {
  for (size_t i = 0; i < n; i++, d->pos++)
    if (d->pos >= d->len || d->text[d->pos] != word[i]) return dec_unexpected(d);
  return 1;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* A byte that may continue a number: after a complete number it makes the
 * token invalid (01, 1.2.3, 1-2) rather than starting the next one. */
static int is_number_byte(int c) {
  return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/* The number at pos, by the JSON grammar, pushed as a Lua number. */
static int dec_number(lua_State *L, dec_state *d) {
  const char *t = d->text;
  size_t start = d->pos, i = start, n = d->len;
  int integral = 1;
  if (t[i] == '-') i++;
  if (i < n && t[i] == '0') i++;
  else if (i < n && t[i] >= '1' && t[i] <= '9') { while (i < n && is_digit(t[i])) i++; }
  else return dec_fail(d, "invalid number", start);
  if (i < n && t[i] == '.') {
    integral = 0;
    if (++i >= n || !is_digit(t[i])) return dec_fail(d, "invalid number", start);
    while (i < n && is_digit(t[i])) i++;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    integral = 0;
    if (++i < n && (t[i] == '+' || t[i] == '-')) i++;
    if (i >= n || !is_digit(t[i])) return dec_fail(d, "invalid number", start);
    while (i < n && is_digit(t[i])) i++;
  }
  if (i < n && is_number_byte((unsigned char)t[i])) return dec_fail(d, "invalid number", start);
  d->pos = i;
  size_t digits = i - start - (t[start] == '-');
  if (integral && digits <= 18) {              /* < 10^18: fits, no overflow */
    lua_Integer v = 0;
    for (size_t k = i - digits; k < i; k++) v = v * 10 + (t[k] - '0');
    lua_pushinteger(L, t[start] == '-' ? -v : v);
    return 1;
  }
  /* Lua's reader: integers that overflow 64 bits become floats */
  char buf[64];
  size_t ok;
  if (i - start < sizeof buf) {
    memcpy(buf, t + start, i - start);
    buf[i - start] = '\0';
    ok = lua_stringtonumber(L, buf);
  } else {
    lua_pushlstring(L, t + start, i - start);
    ok = lua_stringtonumber(L, lua_tostring(L, -1));
    if (ok) lua_remove(L, -2);
  }
  return ok ? 1 : dec_fail(d, "invalid number", start);
}

static int hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0;
  }
  *out = v;
  return 1;
}

/* The \u escape at t[i] (the backslash): its code point, a surrogate pair
 * taken together, in *cp; returns the length of the escape, or 0. */
static size_t dec_unicode_escape(const char *t, size_t i, size_t n, unsigned *cp) {
  unsigned hi, lo;
  if (i + 6 > n || !hex4(t + i + 2, &hi)) return 0;
  if (hi < 0xD800 || hi > 0xDFFF) { *cp = hi; return 6; }
  if (hi > 0xDBFF || i + 12 > n || t[i + 6] != '\\' || t[i + 7] != 'u' ||
      !hex4(t + i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
    return 0;                                  /* a surrogate without its pair */
  *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
  return 12;
}

/* The string at pos (its opening quote), pushed. Without escapes it is the
 * text's own bytes; with them it is built in a luaL_Buffer. */
static int dec_string(lua_State *L, dec_state *d) {
  const char *t = d->text;
  const unsigned char *u = (const unsigned char *)t;
  size_t n = d->len, start = d->pos + 1, i = start, run = start;
  luaL_Buffer b;
  int buffered = 0;
  for (;;) {
    if (i >= n) return dec_fail(d, NULL, n);
    unsigned c = u[i];
    if (c == '"') break;
    if (c < 0x20) return dec_fail(d, "unescaped control character in a string", i);
    if (c >= 0x80) {
      size_t l = utf8_seq(u + i, n - i);
      if (l == 0) return dec_fail(d, "invalid UTF-8", i);
      i += l;
      continue;
    }
    if (c != '\\') { i++; continue; }
    if (!buffered) { luaL_buffinit(L, &b); buffered = 1; }
    luaL_addlstring(&b, t + run, i - run);
    if (i + 1 >= n) return dec_fail(d, NULL, n);
    char ch = 0;
    switch (t[i + 1]) {
    case '"': ch = '"'; break;
    case '\\': ch = '\\'; break;
    case '/': ch = '/'; break;
    case 'b': ch = '\b'; break;
    case 'f': ch = '\f'; break;
    case 'n': ch = '\n'; break;
    case 'r': ch = '\r'; break;
    case 't': ch = '\t'; break;
    case 'u': {
      unsigned cp;
      size_t l = dec_unicode_escape(t, i, n, &cp);
      if (l == 0) return dec_fail(d, "invalid \\u escape", i);
      char utf8[4];
      luaL_addlstring(&b, utf8, utf8_put(cp, utf8));
      i += l;
      run = i;
      continue;
    }
    default: return dec_fail(d, "invalid escape", i);
    }
    luaL_addchar(&b, ch);
    i += 2;
    run = i;
  }
  if (buffered) {
    luaL_addlstring(&b, t + run, i - run);
    luaL_pushresult(&b);
  } else {
    lua_pushlstring(L, t + start, i - start);
  }
  d->pos = i + 1;
  return 1;
}

static int dec_value(lua_State *L, dec_state *d);

/* The array or object at pos: '[' or '{' there. */
static int dec_container(lua_State *L, dec_state *d) {
  int object = d->text[d->pos] == '{';
  int close = object ? '}' : ']';
  if (++d->depth > JSON_MAX_DEPTH) return dec_fail(d, TOO_DEEP, d->pos);
  luaL_checkstack(L, 4, "json.decode: nesting too deep");
  d->pos++;
  lua_createtable(L, 0, 0);
  lua_Integer count = 0;
  if (dec_peek(d) == close) {
    d->pos++;
  } else {
    for (;;) {
      if (object) {
        if (dec_peek(d) != '"') return dec_unexpected(d);
        if (!dec_string(L, d)) return 0;
        if (dec_peek(d) != ':') return dec_unexpected(d);
        d->pos++;
        if (!dec_value(L, d)) return 0;
        lua_rawset(L, -3);
      } else {
        if (!dec_value(L, d)) return 0;
        lua_rawseti(L, -2, ++count);
      }
      int c = dec_peek(d);
      if (c != ',' && c != close) return dec_unexpected(d);
      d->pos++;
      if (c == close) break;
    }
  }
  lua_pushvalue(L, object ? d->object_mt : d->array_mt);
  lua_setmetatable(L, -2);
  d->depth--;
  return 1;
}

/* Push the value at pos (after white space). Returns 0 on a failure. */
static int dec_value(lua_State *L, dec_state *d) {
  switch (dec_peek(d)) {
  case '{': case '[': return dec_container(L, d);
  case '"': return dec_string(L, d);
  case 't': if (!dec_literal(d, "true", 4)) return 0; lua_pushboolean(L, 1); return 1;
  case 'f': if (!dec_literal(d, "false", 5)) return 0; lua_pushboolean(L, 0); return 1;
  case 'n': if (!dec_literal(d, "null", 4)) return 0; lua_pushlightuserdata(L, NULL); return 1;
  default:
    if (d->pos < d->len && (d->text[d->pos] == '-' || is_digit(d->text[d->pos])))
      return dec_number(L, d);
    return dec_unexpected(d);
  }
}

/* decode(text) -> value | nil, "json: <what> at byte N", "EJSON".
 * N is 1-based (text:sub(N) starts at the offending byte). */
static int json_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  luaL_getmetatable(L, ARRAY_MT);                  /* 2 */
  luaL_getmetatable(L, OBJECT_MT);                 /* 3 */
  dec_state d = { text, len, 0, 0, 2, 3, NULL, 0 };
  if (dec_value(L, &d)) {
    if (dec_peek(&d) < 0) return 1;
    dec_fail(&d, "unexpected data after the value", d.pos);
  }
  char what[64];
  size_t at = d.err_at;
  unsigned char c = at < len ? (unsigned char)text[at] : 0;
  if (d.err != NULL) snprintf(what, sizeof what, "%s", d.err);
  else if (at >= len) snprintf(what, sizeof what, "unexpected end of input");
  else if (c >= 0x20 && c < 0x7F) snprintf(what, sizeof what, "unexpected character '%c'", c);
  else snprintf(what, sizeof what, "unexpected byte 0x%02X", c);
  lua_settop(L, 3);
  lua_pushnil(L);
  lua_pushfstring(L, "json: %s at byte %I", what, (lua_Integer)at + 1);
  lua_pushliteral(L, "EJSON");
  return 3;
}

/* replace_invalid_utf8(s) -> s with each byte that is not part of valid
 * UTF-8 replaced by U+FFFD (s itself when it is valid), as encode writes
 * strings with invalid_utf8 = "replace". */
static int json_replace_invalid_utf8(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  size_t run = 0;
  int replaced = 0;
  for (size_t i = 0; i < n;) {
    size_t l = s[i] < 0x80 ? 1 : utf8_seq(s + i, n - i);
    if (l > 0) { i += l; continue; }
    if (!replaced) { luaL_buffinit(L, &b); replaced = 1; }
    luaL_addlstring(&b, (const char *)s + run, i - run);
    luaL_addstring(&b, REPLACEMENT_CHAR);
    run = ++i;
  }
  if (!replaced) { lua_settop(L, 1); return 1; }
  luaL_addlstring(&b, (const char *)s + run, n - run);
  luaL_pushresult(&b);
  return 1;
}

/* ---------------------------------------------------------------- encode */

/* An object's key while the object is written: its text and where the key
 * and its value are anchored in the scratch table (slot, slot + 1). */
typedef struct { const char *s; size_t n; lua_Integer slot; } enc_key;

/* A table being written, at each depth: for the cycle check and for the
 * path in error messages ($.a[2].b). */
typedef struct {
  const void *table;
  lua_Integer index;   /* the element being written, for an array */
  size_t key;          /* the key being written (in keys), for an object */
} enc_frame;

#define NO_KEY ((size_t)-1)

typedef struct {
  sw_outbuf b;          /* the output (outbuf.c) */
  int pretty, sort_keys, replace_invalid;
  int scratch;          /* stack index of the scratch table */
  lua_Integer scratch_top;   /* slots in use in it */
  enc_key *keys;        /* the keys of the objects being written, a stack */
  size_t nkeys, keys_cap;
  enc_frame *frames;    /* [depth]: the tables being written */
  size_t frames_cap;
} enc_state;

static int enc_gc(lua_State *L) {
  enc_state *e = lua_touserdata(L, 1);
  sw_outbuf_free(&e->b);
  free(e->keys);
  free(e->frames);
  e->keys = NULL;
  e->frames = NULL;
  return 0;
}

/* Room for `need` elements of `size` bytes at *p (capacity *cap). */
static void enc_reserve(lua_State *L, void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return;
  size_t n = *cap ? *cap * 2 : 16;
  while (n < need) n *= 2;
  void *np = realloc(*p, n * size);
  if (np == NULL) luaL_error(L, "out of memory");
  *p = np;
  *cap = n;
}

static inline void put(lua_State *L, enc_state *e, const char *s, size_t n) {
  if (e->b.cap - e->b.len >= n) {
    memcpy(e->b.buf + e->b.len, s, n);
    e->b.len += n;
  } else {
    sw_outbuf_add(L, &e->b, s, n);
  }
}

static inline void put_char(lua_State *L, enc_state *e, char c) {
  if (e->b.len < e->b.cap) e->b.buf[e->b.len++] = c;
  else sw_outbuf_add(L, &e->b, &c, 1);
}

#define PUTS(L, e, lit) put(L, e, lit, sizeof(lit) - 1)

/* Raise "json.encode: <msg> at $.a[2].b", the path to the value at `depth`. */
static int enc_error(lua_State *L, enc_state *e, int depth, const char *msg) {
  luaL_Buffer pb;
  luaL_buffinit(L, &pb);
  luaL_addchar(&pb, '$');
  for (int d = 0; d < depth; d++) {
    const enc_frame *f = &e->frames[d];
    if (f->key == NO_KEY) {
      lua_pushfstring(L, "[%I]", f->index);
      luaL_addvalue(&pb);
    } else {
      luaL_addchar(&pb, '.');
      luaL_addlstring(&pb, e->keys[f->key].s, e->keys[f->key].n);
    }
  }
  luaL_pushresult(&pb);
  return luaL_error(L, "json.encode: %s at %s", msg, lua_tostring(L, -1));
}

/* What follows a byte in a string: 0 the byte itself, 1 a short escape or
 * \u00XX, 2 a UTF-8 sequence to check. */
static const unsigned char string_class[256] = {
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* '"' */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   /* '\\' */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,   /* DEL */
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Write s[0..n) as a JSON string; `depth` is where it is, for an error. */
static void enc_string(lua_State *L, enc_state *e, const char *s, size_t n, int depth) {
  const unsigned char *u = (const unsigned char *)s;
  size_t run = 0, i = 0;
  put_char(L, e, '"');
  while (i < n) {
    unsigned c = u[i];
    switch (string_class[c]) {
    case 0:
      i++;
      continue;
    case 2: {
      size_t l = utf8_seq(u + i, n - i);
      if (l > 0) { i += l; continue; }
      if (!e->replace_invalid) enc_error(L, e, depth, "invalid UTF-8 in a string");
      put(L, e, s + run, i - run);
      PUTS(L, e, REPLACEMENT_CHAR);
      break;
    }
    default: {
      char esc[6] = { '\\', 0 };
      size_t len = 2;
      switch (c) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      default:                                     /* \u00XX */
        memcpy(esc + 1, "u00", 3);
        esc[4] = "0123456789abcdef"[c >> 4];
        esc[5] = "0123456789abcdef"[c & 0xF];
        len = 6;
      }
      put(L, e, s + run, i - run);
      put(L, e, esc, len);
    }
    }
    run = ++i;
  }
  put(L, e, s + run, n - run);
  put_char(L, e, '"');
}

/* The decimal digits of u, written backwards ending at end; returns the
 * start. */
static char *digits_before(char *end, uint64_t u) {
  do { *--end = (char)('0' + u % 10); u /= 10; } while (u);
  return end;
}

/* A float that is a short decimal, the usual case (a time of 12.3 ms),
 * without printf: when d reads back from r / 10^k for an integer r < 10^15
 * and k <= 6, %.15g writes exactly that decimal, since a decimal of at most
 * 15 significant digits survives the round trip through a double (DBL_DIG).
 * Below 1e-4 %g would use an exponent, so those are left to printf. Zero
 * is 0.0 or -0.0. Writes
 * the text into out (32 bytes) and returns its length, or 0. */
static size_t format_short_float(double d, char *out) {
  static const double pow10[] = { 1, 10, 100, 1e3, 1e4, 1e5, 1e6 };
  double a = fabs(d);
  if (a == 0) {
    const char *zero = signbit(d) ? "-0.0" : "0.0";
    memcpy(out, zero, strlen(zero));
    return strlen(zero);
  }
  if (!(a >= 1e-4 && a < 1e15)) return 0;
  for (int k = 0; k <= 6; k++) {
    double m = a * pow10[k];
    if (m >= 1e15) return 0;
    uint64_t r = (uint64_t)(m + 0.5);
    if ((double)r / pow10[k] != a) continue;
    char tmp[24], *end = tmp + sizeof tmp;
    char *p = digits_before(end, r);
    int nd = (int)(end - p), frac = k;
    while (frac > 0 && end[-1] == '0') { end--; nd--; frac--; }   /* 12.50 -> 12.5 */
    size_t o = 0;
    if (d < 0) out[o++] = '-';
    if (nd > frac) { memcpy(out + o, p, (size_t)(nd - frac)); o += (size_t)(nd - frac); }
    else out[o++] = '0';
    out[o++] = '.';
    if (frac == 0) { out[o++] = '0'; return o; }    /* stays a float: 2.0 */
    for (int z = nd; z < frac; z++) out[o++] = '0';  /* 0.005 */
    int f = nd < frac ? nd : frac;
    memcpy(out + o, end - f, (size_t)f);
    return o + (size_t)f;
  }
  return 0;
}

static void enc_number(lua_State *L, enc_state *e, int idx, int depth) {
  char buf[64];
  if (lua_isinteger(L, idx)) {
    lua_Integer v = lua_tointeger(L, idx);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char *end = buf + sizeof buf, *p = digits_before(end, u);
    if (v < 0) *--p = '-';
    put(L, e, p, (size_t)(end - p));
    return;
  }
  double d = lua_tonumber(L, idx);
  if (isnan(d) || isinf(d)) enc_error(L, e, depth, "cannot encode NaN or infinity");
  size_t n = format_short_float(d, buf);
  if (n == 0) {
    /* the shortest of %.15g..%.17g that reads back as the same double */
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, d);
      if (strtod(buf, NULL) == d) break;
    }
    if (strpbrk(buf, ".eEn") == NULL) strcat(buf, ".0");   /* stays a float */
    n = strlen(buf);
  }
  put(L, e, buf, n);
}

/* Pretty output: a new line indented by two spaces per level. */
static void enc_newline(lua_State *L, enc_state *e, int depth) {
  static const char spaces[] = "                                ";
  put_char(L, e, '\n');
  for (size_t n = 2 * (size_t)depth, k; n > 0; n -= k) {
    k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
    put(L, e, spaces, k);
  }
}

static void enc_value(lua_State *L, enc_state *e, int idx, int depth);

static int key_less(const enc_key *x, const enc_key *y) {
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  return c < 0 || (c == 0 && x->n < y->n);
}

static int key_cmp(const void *a, const void *b) {
  return key_less(a, b) ? -1 : key_less(b, a);
}

/* Bytewise, for stable output: insertion sort for the usual few keys. */
static void sort_keys(enc_key *k, size_t n) {
  if (n > 16) { qsort(k, n, sizeof *k, key_cmp); return; }
  for (size_t i = 1; i < n; i++) {
    enc_key x = k[i];
    size_t j = i;
    for (; j > 0 && key_less(&x, &k[j - 1]); j--) k[j] = k[j - 1];
    k[j] = x;
  }
}

/* Write the table at idx as an object. Keys must be strings or numbers
 * (numbers are written as their decimal text, the way a sparse array comes
 * out). Each key and its value go to the scratch table first, which keeps
 * the key text alive and hands the values back in key order. */
static void enc_object(lua_State *L, enc_state *e, int idx, int depth) {
  size_t base = e->nkeys;
  lua_Integer slot0 = e->scratch_top, slot = slot0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {                       /* [key, value] */
    lua_rawseti(L, e->scratch, slot + 2);
    int kt = lua_type(L, -1);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
      lua_pushfstring(L, "object key of type %s (keys must be strings)", luaL_typename(L, -1));
      enc_error(L, e, depth, lua_tostring(L, -1));
    }
    lua_pushvalue(L, -1);
    enc_reserve(L, (void **)&e->keys, &e->keys_cap, e->nkeys + 1, sizeof(enc_key));
    enc_key *k = &e->keys[e->nkeys++];
    k->s = lua_tolstring(L, -1, &k->n);            /* a number key: its copy becomes text */
    k->slot = slot + 1;
    lua_rawseti(L, e->scratch, slot + 1);
    slot += 2;
  }
  e->scratch_top = slot;
  size_t n = e->nkeys - base;
  if (e->sort_keys && n > 1) sort_keys(e->keys + base, n);
  put_char(L, e, '{');
  for (size_t j = 0; j < n; j++) {
    if (j > 0) put_char(L, e, ',');
    if (e->pretty) enc_newline(L, e, depth + 1);
    e->frames[depth].key = base + j;
    const enc_key *k = &e->keys[base + j];
    enc_string(L, e, k->s, k->n, depth + 1);
    if (e->pretty) PUTS(L, e, ": ");
    else put_char(L, e, ':');
    lua_rawgeti(L, e->scratch, e->keys[base + j].slot + 1);
    enc_value(L, e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  if (n > 0 && e->pretty) enc_newline(L, e, depth);
  put_char(L, e, '}');
  e->nkeys = base;
  e->scratch_top = slot0;
}

static void enc_table(lua_State *L, enc_state *e, int idx, int depth) {
  if (depth >= JSON_MAX_DEPTH) enc_error(L, e, depth, TOO_DEEP);
  luaL_checkstack(L, 6, "json.encode: nesting too deep");
  const void *self = lua_topointer(L, idx);
  for (int d = 0; d < depth; d++)
    if (e->frames[d].table == self) enc_error(L, e, depth, "cycle (a table contains itself)");
  enc_reserve(L, (void **)&e->frames, &e->frames_cap, (size_t)depth + 1, sizeof(enc_frame));
  e->frames[depth] = (enc_frame){ self, 0, NO_KEY };
  lua_Integer len;
  if (!sw_table_is_array(L, idx, &len)) {          /* the rule: array_rule.c */
    enc_object(L, e, idx, depth);
    return;
  }
  put_char(L, e, '[');
  for (lua_Integer i = 1; i <= len; i++) {
    if (i > 1) put_char(L, e, ',');
    if (e->pretty) enc_newline(L, e, depth + 1);
    e->frames[depth].index = i;
    lua_rawgeti(L, idx, i);
    enc_value(L, e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  if (len > 0 && e->pretty) enc_newline(L, e, depth);
  put_char(L, e, ']');
}

static void enc_value(lua_State *L, enc_state *e, int idx, int depth) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: PUTS(L, e, "null"); return;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) PUTS(L, e, "true");
    else PUTS(L, e, "false");
    return;
  case LUA_TNUMBER: enc_number(L, e, idx, depth); return;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    enc_string(L, e, s, n, depth);
    return;
  }
  case LUA_TTABLE: enc_table(L, e, idx, depth); return;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) { PUTS(L, e, "null"); return; }
    break;
  case LUA_TUSERDATA: {
    unsigned long long u;
    char digits[32];
    if (sw_uint64_test(L, idx, &u)) {            /* a uint64 read from YAML */
      sw_uint64_format(u, digits, sizeof digits);
      put(L, e, digits, strlen(digits));
      return;
    }
    if (sw_is_secret(L, idx))       /* "***" would be sent silently instead */
      enc_error(L, e, depth, "cannot encode a secret (pass secret.reveal(value) where "
                "its plain text must be sent)");
    break;
  }
  }
  lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx));
  enc_error(L, e, depth, lua_tostring(L, -1));
}

/* encode(value, {pretty = false, sort_keys = true, invalid_utf8 = "error"})
 * -> text. Raises on a value JSON cannot hold (function, cycle, NaN,
 * nesting deeper than 1000, invalid UTF-8 unless invalid_utf8 = "replace"). */
static int json_encode(lua_State *L) {
  static const char *const allowed[] = {"pretty", "sort_keys", "invalid_utf8", NULL};
  static const char *const invalid_utf8[] = {"error", "replace", NULL};
  luaL_checkany(L, 1);
  sw_check_options(L, 2, "json.encode", allowed);
  int pretty = sw_opt_boolean(L, 2, "pretty", 0, "json.encode");
  int sort = sw_opt_boolean(L, 2, "sort_keys", 1, "json.encode");
  int replace = sw_opt_choice(L, 2, "invalid_utf8", invalid_utf8, 0, "json.encode");
  lua_settop(L, 1);
  lua_newtable(L);                                 /* 2: scratch */
  enc_state *e = lua_newuserdatauv(L, sizeof(enc_state), 0);   /* 3 */
  memset(e, 0, sizeof *e);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &enc_gc_key);
  lua_setmetatable(L, 3);
  e->b.buf = malloc(256);                          /* put() writes into it directly */
  if (e->b.buf == NULL) return luaL_error(L, "out of memory");
  e->b.cap = 256;
  e->pretty = pretty;
  e->sort_keys = sort;
  e->replace_invalid = replace;
  e->scratch = 2;
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
  {"replace_invalid_utf8", json_replace_invalid_utf8},
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
