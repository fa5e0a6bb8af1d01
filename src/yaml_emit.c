/*
 * yaml_emit.c: the writing half of slipway.yaml (the module is opened in
 * yaml.c): map key order (recorded document order, else go-yaml v3's
 * order: digit runs compared as numbers, other characters before letters)
 * and an encoder whose output is byte for byte what go-yaml v3 prints
 * with indent 2, as `docker stack config` does: block style, sequences
 * indented under their key, strings quoted when they would read back as
 * something else (including YAML 1.1 booleans like "yes"), multi-line
 * strings as |- literals, floats as Go's strconv 'g' shortest form.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"
#include "yaml_shared.h"

#define YAML_MAX_DEPTH SW_YAML_MAX_DEPTH
#define ARRAY_MT SW_YAML_ARRAY_MT
#define push_order sw_yaml_push_order
typedef sw_yaml_scalar resolved;

static const char buf_mt_key = 'b';  /* metatable of the encoder's buffer box */

/* ------------------------------------------------------- key ordering */

/* One key for sorting: go-yaml v3's keyList order. */
typedef struct {
  int rank;              /* 0 null, 1 number/bool, 2 string, 3 other */
  double num;
  int isint;
  lua_Integer i;
  const char *s;
  size_t n;
  lua_Integer slot;      /* index in the list being sorted */
} sort_key;

static int is_letter(unsigned r) {
  return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r >= 0x80;
}
static int is_digit(unsigned r) { return r >= '0' && r <= '9'; }

/* Decode s into runes (invalid bytes stand for themselves). */
static size_t to_runes(const char *s, size_t n, unsigned *out) {
  size_t k = 0;
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    size_t w = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (i + w > n) w = 1;
    unsigned r = w == 1 ? c : (c & (0xFF >> (w + 1)));
    for (size_t j = 1; j < w; j++) r = (r << 6) | (p[i + j] & 0x3F);
    out[k++] = r;
    i += w;
  }
  return k;
}

/* Strings: letters compare as runes, digit runs by their numeric value,
 * and other characters sort before letters ("_x" < "A9" < "a", "a9" <
 * "a10"), as go-yaml orders map keys. */
static int go_str_less(const char *as, size_t an_, const char *bs, size_t bn_) {
  unsigned abuf[128], bbuf[128];
  unsigned *ar = an_ <= 128 ? abuf : malloc(an_ * sizeof(unsigned));
  unsigned *br = bn_ <= 128 ? bbuf : malloc(bn_ * sizeof(unsigned));
  if (ar == NULL || br == NULL) {              /* out of memory: bytewise */
    if (ar != abuf) free(ar);
    if (br != bbuf) free(br);
    int c = memcmp(as, bs, an_ < bn_ ? an_ : bn_);
    return c < 0 || (c == 0 && an_ < bn_);
  }
  size_t al_ = to_runes(as, an_, ar), bl_ = to_runes(bs, bn_, br);
  int result = -1, digits = 0;
  for (size_t i = 0; i < al_ && i < bl_; i++) {
    if (ar[i] == br[i]) { digits = is_digit(ar[i]); continue; }
    int al = is_letter(ar[i]), bl = is_letter(br[i]);
    if (al && bl) { result = ar[i] < br[i]; break; }
    if (al || bl) { result = digits ? al : bl; break; }
    long long an = 0, bn = 0;
    size_t ai, bi;
    if (ar[i] == '0' || br[i] == '0') {
      for (size_t j = i; j-- > 0 && is_digit(ar[j]);)
        if (ar[j] != '0') { an = 1; bn = 1; break; }
    }
    /* Go's int64 wraps on overflow; unsigned arithmetic does the same here
     * without C's undefined behaviour (found by tests/fuzz). */
    for (ai = i; ai < al_ && is_digit(ar[ai]); ai++) an = (long long)((unsigned long long)an * 10 + (ar[ai] - '0'));
    for (bi = i; bi < bl_ && is_digit(br[bi]); bi++) bn = (long long)((unsigned long long)bn * 10 + (br[bi] - '0'));
    if (an != bn) result = an < bn;
    else if (ai != bi) result = ai < bi;
    else result = ar[i] < br[i];
    break;
  }
  if (result < 0) result = al_ < bl_;
  if (ar != abuf) free(ar);
  if (br != bbuf) free(br);
  return result;
}

static int sort_key_less(const sort_key *a, const sort_key *b) {
  if (a->rank == 1 && b->rank == 1) {
    if (a->num != b->num) return a->num < b->num;
    if (a->isint && b->isint) return a->i < b->i;
    return 0;
  }
  if (a->rank != 2 || b->rank != 2) return a->rank < b->rank;
  return go_str_less(a->s, a->n, b->s, b->n);
}

static int sort_key_cmp(const void *x, const void *y) {
  const sort_key *a = x, *b = y;
  if (sort_key_less(a, b)) return -1;
  if (sort_key_less(b, a)) return 1;
  return (a->slot > b->slot) - (a->slot < b->slot);   /* stable */
}

static void fill_sort_key(lua_State *L, int idx, sort_key *k) {
  memset(k, 0, sizeof *k);
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER:
    k->rank = 1;
    k->num = lua_tonumber(L, idx);
    k->isint = lua_isinteger(L, idx);
    k->i = lua_tointeger(L, idx);
    break;
  case LUA_TBOOLEAN: k->rank = 1; k->num = lua_toboolean(L, idx); break;
  case LUA_TSTRING: k->rank = 2; k->s = lua_tolstring(L, idx, &k->n); break;
  case LUA_TLIGHTUSERDATA: k->rank = lua_touserdata(L, idx) == NULL ? 0 : 3; break;
  case LUA_TUSERDATA: {
    unsigned long long u;
    if (sw_uint64_test(L, idx, &u)) { k->rank = 1; k->num = (double)u; }
    else k->rank = 3;
    break;
  }
  default: k->rank = 3;
  }
}

/* Sort the list at idx (1..n) in go-yaml key order, in place. */
static void sort_list(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  if (n < 2) return;
  sort_key *ks = lua_newuserdatauv(L, (size_t)n * sizeof(sort_key), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);                 /* strings stay anchored in the list */
    fill_sort_key(L, -1, &ks[i - 1]);
    ks[i - 1].slot = i;
    lua_pop(L, 1);
  }
  qsort(ks, (size_t)n, sizeof(sort_key), sort_key_cmp);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, ks[i - 1].slot);
    lua_rawseti(L, -2, i);
  }
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, idx, i);
  }
  lua_pop(L, 2);
}

/* Push the keys of the table at idx: its recorded order (keys still
 * present), then the other keys in go-yaml order. */
/* The common case: the recorded order lists exactly the table's keys
 * (nothing added or removed since decode). Pushes a copy and returns 1,
 * or pushes nothing and returns 0. */
static int push_recorded_keys(lua_State *L, int idx) {
  push_order(L);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) != LUA_TTABLE) { lua_pop(L, 2); return 0; }
  lua_Integer on = (lua_Integer)lua_rawlen(L, -1);
  lua_Integer count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { lua_pop(L, 1); count++; }
  if (count != on) { lua_pop(L, 2); return 0; }
  lua_createtable(L, (int)on, 0);
  for (lua_Integer i = 1; i <= on; i++) {
    lua_rawgeti(L, -2, i);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, idx) == LUA_TNIL) { lua_pop(L, 5); return 0; }  /* stale entry */
    lua_pop(L, 1);
    lua_rawseti(L, -2, i);
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 1;
}

static void push_keys(lua_State *L, int idx, int use_order) {
  idx = lua_absindex(L, idx);
  if (use_order && push_recorded_keys(L, idx)) return;
  lua_newtable(L);
  int out = lua_gettop(L);
  lua_newtable(L);
  int seen = lua_gettop(L);
  lua_Integer n = 0;
  if (use_order) {
    push_order(L);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    if (lua_istable(L, -1)) {
      lua_Integer on = (lua_Integer)lua_rawlen(L, -1);
      for (lua_Integer i = 1; i <= on; i++) {
        lua_rawgeti(L, -1, i);
        lua_pushvalue(L, -1);
        int present = lua_rawget(L, idx) != LUA_TNIL;
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        int dup = lua_rawget(L, seen) != LUA_TNIL;
        lua_pop(L, 1);
        if (present && !dup) {
          lua_pushvalue(L, -1);
          lua_pushboolean(L, 1);
          lua_rawset(L, seen);
          lua_rawseti(L, out, ++n);
        } else lua_pop(L, 1);
      }
    }
    lua_pop(L, 2);
  }
  lua_newtable(L);
  int extra = lua_gettop(L);
  lua_Integer ne = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, seen) == LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_rawseti(L, extra, ++ne);
    }
    lua_pop(L, 1);
  }
  sort_list(L, extra);
  for (lua_Integer i = 1; i <= ne; i++) {
    lua_rawgeti(L, extra, i);
    lua_rawseti(L, out, ++n);
  }
  lua_settop(L, out);
}

/* keys(t) -> {key, ...} in document order (keys added later: sorted, after) */
int sw_yaml_keys(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  push_keys(L, 1, 1);
  return 1;
}

/* order(t, {key, ...}) -> t: record the order keys(t) and encode() use. */
int sw_yaml_order(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  push_order(L);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, -3);
  lua_settop(L, 1);
  return 1;
}

/* key_less(a, b) -> boolean: go-yaml's map key order (for table.sort) */
int sw_yaml_key_less(lua_State *L) {
  sort_key a, b;
  luaL_checkany(L, 1);
  luaL_checkany(L, 2);
  fill_sort_key(L, 1, &a);
  fill_sort_key(L, 2, &b);
  lua_pushboolean(L, sort_key_less(&a, &b));
  return 1;
}

/* ------------------------------------------------------------- encoding */

/* The output grows in C memory owned by a userdata box (freed by __gc if
 * an error unwinds), since a luaL_Buffer would pin the top of the stack. */
typedef struct {
  sw_outbuf out;           /* the output (outbuf.c) */
  int seen, path;          /* stack indexes: tables being written, key path */
  int sort_all;            /* ignore recorded key order */
  int docker_compat;       /* literals byte for byte as docker writes them */
} enc_t;

static int buf_gc(lua_State *L) {
  enc_t *e = lua_touserdata(L, 1);
  sw_outbuf_free(&e->out);
  return 0;
}

static void put(lua_State *L, enc_t *e, const char *s, size_t n) {
  sw_outbuf_add(L, &e->out, s, n);
}
#define PUTS(s) put(L, e, s, strlen(s))

static void put_spaces(lua_State *L, enc_t *e, int n) {
  static const char sp[] = "                                ";
  while (n > 0) {
    int k = n > 32 ? 32 : n;
    put(L, e, sp, (size_t)k);
    n -= k;
  }
}

/* Raise "yaml.encode: <msg> at $.a[2]" */
static int enc_error(lua_State *L, enc_t *e, const char *msg) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, e->path);
  lua_pushstring(L, msg);
  lua_pushliteral(L, "$");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, e->path, i);
    if (lua_isinteger(L, -1)) {
      lua_pushfstring(L, "[%d]", (int)lua_tointeger(L, -1));   /* [acc, elem, piece] */
    } else {
      lua_pushfstring(L, ".%s", luaL_tolstring(L, -1, NULL));  /* [acc, elem, str, piece] */
      lua_remove(L, -2);
    }
    lua_remove(L, -2);                                          /* [acc, piece] */
    lua_concat(L, 2);
  }
  return luaL_error(L, "yaml.encode: %s at %s", lua_tostring(L, -2), lua_tostring(L, -1));
}

/* Scalar facts behind the choice of style (the rules YAML emitters use to
 * decide whether a string may be written plain, quoted or as a block). */
typedef struct {
  int multiline, block_plain, single_ok, block_ok;
} scalar_facts;

static int is_printable_at(const unsigned char *b, size_t i, size_t n) {
  unsigned c = b[i];
  unsigned c1 = i + 1 < n ? b[i + 1] : 0, c2 = i + 2 < n ? b[i + 2] : 0;
  return c == 0x0A || (c >= 0x20 && c <= 0x7E) || (c == 0xC2 && c1 >= 0xA0) ||
         (c > 0xC2 && c < 0xED) || (c == 0xED && c1 < 0xA0) || c == 0xEE ||
         (c == 0xEF && !(c1 == 0xBB && c2 == 0xBF) && !(c1 == 0xBF && (c2 == 0xBE || c2 == 0xBF)));
}

static size_t char_width(unsigned c) {
  return (c & 0x80) == 0 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
}

static int is_break_at(const unsigned char *b, size_t i, size_t n) {
  return b[i] == '\r' || b[i] == '\n' ||
         (b[i] == 0xC2 && i + 1 < n && b[i + 1] == 0x85) ||
         (b[i] == 0xE2 && i + 2 < n && b[i + 1] == 0x80 && (b[i + 2] == 0xA8 || b[i + 2] == 0xA9));
}

static void analyze(const char *s, size_t n, scalar_facts *f) {
  const unsigned char *v = (const unsigned char *)s;
  int block_ind = 0, breaks = 0, special = 0, tabs = 0;
  int lead_space = 0, lead_break = 0, trail_space = 0, trail_break = 0;
  int break_space = 0, space_break = 0, prev_space = 0, prev_break = 0;
  int preceded_ws = 1;
  if (n == 0) { f->multiline = 0; f->block_plain = 1; f->single_ok = 1; f->block_ok = 0; return; }
  if (n >= 3 && ((v[0] == '-' && v[1] == '-' && v[2] == '-') || (v[0] == '.' && v[1] == '.' && v[2] == '.')))
    block_ind = 1;
  for (size_t i = 0, w; i < n; i += w) {
    w = char_width(v[i]);
    int followed_ws = i + w >= n || v[i + w] == ' ' || v[i + w] == '\t' || is_break_at(v, i + w, n);
    if (i == 0) {
      switch (v[i]) {
      case '#': case ',': case '[': case ']': case '{': case '}': case '&': case '*':
      case '!': case '|': case '>': case '\'': case '"': case '%': case '@': case '`':
        block_ind = 1; break;
      case '?': case ':': case '-':
        if (followed_ws) block_ind = 1;
        break;
      }
    } else {
      /* only block context is written, so flow indicators do not matter */
      if (v[i] == ':' && followed_ws) block_ind = 1;
      if (v[i] == '#' && preceded_ws) block_ind = 1;
    }
    if (v[i] == '\t') tabs = 1;
    else if (!is_printable_at(v, i, n)) special = 1;
    if (v[i] == ' ') {
      if (i == 0) lead_space = 1;
      if (i + w == n) trail_space = 1;
      if (prev_break) break_space = 1;
      prev_space = 1; prev_break = 0;
    } else if (is_break_at(v, i, n)) {
      breaks = 1;
      if (i == 0) lead_break = 1;
      if (i + w == n) trail_break = 1;
      if (prev_space) space_break = 1;
      prev_space = 0; prev_break = 1;
    } else {
      prev_space = prev_break = 0;
    }
    preceded_ws = v[i] == ' ' || v[i] == '\t' || is_break_at(v, i, n);
  }
  f->multiline = breaks;
  f->block_plain = 1; f->single_ok = 1; f->block_ok = 1;
  if (lead_space || lead_break || trail_space || trail_break) f->block_plain = 0;
  if (trail_space) f->block_ok = 0;
  if (break_space) { f->block_plain = 0; f->single_ok = 0; }
  if (space_break || tabs || special) { f->block_plain = 0; f->single_ok = 0; }
  if (space_break || special) f->block_ok = 0;
  if (breaks) f->block_plain = 0;
  if (block_ind) f->block_plain = 0;
}

/* Strings YAML 1.1 readers would take for something else get quoted. */
static int is_old_bool(const char *s, size_t n) {
  static const char *const words[] = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
    "n", "N", "no", "No", "NO", "off", "Off", "OFF", NULL};
  for (int i = 0; words[i]; i++)
    if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0) return 1;
  return 0;
}

/* ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$ */
static int is_base60_float(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return 0;
  while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_')) i++;
  int groups = 0;
  while (i < n && s[i] == ':') {
    i++;
    if (i < n && s[i] >= '0' && s[i] <= '5' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') i += 2;
    else if (i < n && s[i] >= '0' && s[i] <= '9') i++;
    else return 0;
    groups++;
  }
  if (!groups) return 0;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_')) i++;
  }
  return i == n;
}

enum { ST_PLAIN, ST_SINGLE, ST_DOUBLE, ST_LITERAL };

static int choose_style(const char *s, size_t n, int key) {
  resolved r;
  sw_yaml_resolve(s, n, &r);
  int plain_ok = r.kind == R_STR && !is_base60_float(s, n) && !is_old_bool(s, n);
  int style = memchr(s, '\n', n) ? ST_LITERAL : plain_ok ? ST_PLAIN : ST_DOUBLE;
  scalar_facts f;
  analyze(s, n, &f);
  if (key && f.multiline) style = ST_DOUBLE;
  if (style == ST_PLAIN) {
    if (!f.block_plain) style = ST_SINGLE;
    if (n == 0 && key) style = ST_SINGLE;
  }
  if (style == ST_SINGLE && !f.single_ok) style = ST_DOUBLE;
  if (style == ST_LITERAL && (!f.block_ok || key)) style = ST_DOUBLE;
  return style;
}

static void put_double_quoted(lua_State *L, enc_t *e, const char *s, size_t n) {
  const unsigned char *v = (const unsigned char *)s;
  put(L, e, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n;) {
    size_t w = char_width(v[i]);
    if (i + w > n) w = 1;
    int bom = w == 3 && v[i] == 0xEF && v[i + 1] == 0xBB && v[i + 2] == 0xBF;
    if (!is_printable_at(v, i, n) || bom || is_break_at(v, i, n) || v[i] == '"' || v[i] == '\\') {
      put(L, e, s + run, i - run);
      unsigned r = w == 1 ? v[i] : (v[i] & (0xFF >> (w + 1)));
      for (size_t j = 1; j < w; j++) r = (r << 6) | (v[i + j] & 0x3F);
      char esc[16];
      switch (r) {
      case 0x00: strcpy(esc, "\\0"); break;
      case 0x07: strcpy(esc, "\\a"); break;
      case 0x08: strcpy(esc, "\\b"); break;
      case 0x09: strcpy(esc, "\\t"); break;
      case 0x0A: strcpy(esc, "\\n"); break;
      case 0x0B: strcpy(esc, "\\v"); break;
      case 0x0C: strcpy(esc, "\\f"); break;
      case 0x0D: strcpy(esc, "\\r"); break;
      case 0x1B: strcpy(esc, "\\e"); break;
      case 0x22: strcpy(esc, "\\\""); break;
      case 0x5C: strcpy(esc, "\\\\"); break;
      case 0x85: strcpy(esc, "\\N"); break;
      case 0xA0: strcpy(esc, "\\_"); break;
      case 0x2028: strcpy(esc, "\\L"); break;
      case 0x2029: strcpy(esc, "\\P"); break;
      default:
        if (r <= 0xFF) snprintf(esc, sizeof esc, "\\x%02X", r);
        else if (r <= 0xFFFF) snprintf(esc, sizeof esc, "\\u%04X", r);
        else snprintf(esc, sizeof esc, "\\U%08X", r);
      }
      PUTS(esc);
      i += w;
      run = i;
    } else {
      i += w;
    }
  }
  put(L, e, s + run, n - run);
  put(L, e, "\"", 1);
}

static void put_single_quoted(lua_State *L, enc_t *e, const char *s, size_t n) {
  put(L, e, "'", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\'') { put(L, e, s + run, i + 1 - run); put(L, e, "'", 1); run = i + 1; }
  put(L, e, s + run, n - run);
  put(L, e, "'", 1);
}

/* The start of the character before position i (i > 0) */
static size_t char_before(const unsigned char *v, size_t i) {
  do i--; while (i > 0 && (v[i] & 0xC0) == 0x80);
  return i;
}

/* A block literal, as go-yaml v3 writes one; its lines go at column
 * `indent`. The header has an indentation indicator when the value starts
 * with a space or a line break, and '-' (no final line break) or '+' (two)
 * for chomping. Line breaks other than "\n" (U+2028, U+2029) are written
 * as they are, the next line's indentation following on the same output
 * line (YAML 1.1 readers take them for line breaks).
 * With e->docker_compat the bytes are docker's, though two kinds of value
 * do not read back: a "\n" that starts the value ends the header's line,
 * so that break is lost, and a value that starts with a tab gets no
 * indentation indicator, so a reader takes the tab for indentation and
 * fails. Without, the header has a line end of its own and an indicator
 * before a tab. Returns 1 if it ended at the start of a line, else 0 (the
 * caller ends the line). */
static int put_literal(lua_State *L, enc_t *e, const char *s, size_t n, int indent) {
  const unsigned char *v = (const unsigned char *)s;
  put(L, e, "|", 1);
  if (n > 0 && (v[0] == ' ' || is_break_at(v, 0, n) || (v[0] == '\t' && !e->docker_compat)))
    put(L, e, "2", 1);
  if (n == 0) put(L, e, "-", 1);
  else {
    size_t last = char_before(v, n);
    if (!is_break_at(v, last, n)) put(L, e, "-", 1);
    else if (last == 0 || is_break_at(v, char_before(v, last), n)) put(L, e, "+", 1);
  }
  int line_start = 0, after_break = 1;
  if (!e->docker_compat) { put(L, e, "\n", 1); line_start = 1; }
  for (size_t i = 0; i < n;) {
    if (is_break_at(v, i, n)) {
      size_t w = char_width(v[i]);
      put(L, e, s + i, w);
      i += w;
      line_start = after_break = 1;
      continue;
    }
    if (after_break) {
      if (!line_start) put(L, e, "\n", 1);
      put_spaces(L, e, indent);
    }
    size_t j = i;
    while (j < n && !is_break_at(v, j, n)) j += char_width(v[j]);
    if (j > n) j = n;
    put(L, e, s + i, j - i);
    i = j;
    line_start = after_break = 0;
  }
  return line_start;
}

/* Go's strconv.FormatFloat(f, 'g', -1, 64), with YAML's .inf/.nan. */
static void format_float(double f, char *out, size_t len) {
  if (isnan(f)) { snprintf(out, len, ".nan"); return; }
  if (isinf(f)) { snprintf(out, len, f > 0 ? ".inf" : "-.inf"); return; }
  if (f == 0) { snprintf(out, len, signbit(f) ? "-0" : "0"); return; }
  char buf[40];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
    if (strtod(buf, NULL) == f) break;
  }
  /* buf = [-]d[.ddd]e[+-]xx: collect the digits and the exponent */
  char digs[32];
  int nd = 0, neg = buf[0] == '-';
  const char *p = buf + neg;
  for (; *p && *p != 'e'; p++) if (*p != '.') digs[nd++] = *p;
  digs[nd] = '\0';
  int exp = atoi(p + 1);
  while (nd > 1 && digs[nd - 1] == '0') digs[--nd] = '\0';
  char *o = out;
  size_t room = len;
#define EMIT(...) do { int k_ = snprintf(o, room, __VA_ARGS__); o += k_; room -= (size_t)k_; } while (0)
  if (neg) EMIT("-");
  if (exp < -4 || exp >= 6) {     /* Go's threshold for shortest 'g' */
    EMIT("%c", digs[0]);
    if (nd > 1) EMIT(".%s", digs + 1);
    EMIT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  } else if (exp < 0) {
    EMIT("0.");
    for (int i = -1; i > exp; i--) EMIT("0");
    EMIT("%s", digs);
  } else {
    for (int i = 0; i <= exp; i++) EMIT("%c", i < nd ? digs[i] : '0');
    if (nd > exp + 1) EMIT(".%s", digs + exp + 1);
  }
#undef EMIT
}

/* Write the scalar at idx (string, number, boolean, null). For a block
 * literal, lines go at `indent`. Returns 1 if it wrote its own line end. */
static int put_scalar(lua_State *L, enc_t *e, int idx, int indent, int key) {
  char buf[64];
  switch (lua_type(L, idx)) {
  case LUA_TNIL: PUTS("null"); return 0;
  case LUA_TBOOLEAN: PUTS(lua_toboolean(L, idx) ? "true" : "false"); return 0;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    else format_float(lua_tonumber(L, idx), buf, sizeof buf);
    PUTS(buf);
    return 0;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) { PUTS("null"); return 0; }
    break;
  case LUA_TUSERDATA: {
    unsigned long long u;
    if (!sw_uint64_test(L, idx, &u)) break;
    sw_uint64_format(u, buf, sizeof buf);
    PUTS(buf);
    return 0;
  }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    for (size_t i = 0; i < n;) {            /* YAML text must be UTF-8 */
      unsigned c = (unsigned char)s[i];
      size_t w = char_width(c);
      if ((c >= 0x80 && w == 1) || i + w > n) enc_error(L, e, "invalid UTF-8 in a string");
      for (size_t j = 1; j < w; j++)
        if (((unsigned char)s[i + j] & 0xC0) != 0x80) enc_error(L, e, "invalid UTF-8 in a string");
      i += w;
    }
    switch (choose_style(s, n, key)) {
    case ST_PLAIN: put(L, e, s, n); return 0;
    case ST_SINGLE: put_single_quoted(L, e, s, n); return 0;
    case ST_DOUBLE: put_double_quoted(L, e, s, n); return 0;
    default: return put_literal(L, e, s, n, indent);
    }
  }
  default: break;
  }
  if (sw_is_secret(L, idx))           /* "***" would be written silently instead */
    return enc_error(L, e, "cannot encode a secret (pass secret.reveal(value) where its plain "
                     "text must be written)");
  lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx));
  return enc_error(L, e, lua_tostring(L, -1));
}

enum { CTX_ROOT, CTX_MAPVAL, CTX_SEQITEM };

/* A table with a recorded key order is a map; otherwise the encoders'
 * shared rule decides (array_rule.c). */
static int is_sequence(lua_State *L, int idx, lua_Integer *len) {
  push_order(L);
  lua_pushvalue(L, idx);
  int ordered = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  if (ordered) return 0;
  return sw_table_is_array(L, idx, len);
}

static void emit_node(lua_State *L, enc_t *e, int idx, int col, int ctx);

static void path_push(lua_State *L, enc_t *e, int kidx) {
  lua_pushvalue(L, kidx);
  lua_rawseti(L, e->path, (lua_Integer)lua_rawlen(L, e->path) + 1);
}
static void path_pop(lua_State *L, enc_t *e) {
  lua_pushnil(L);
  lua_rawseti(L, e->path, (lua_Integer)lua_rawlen(L, e->path));
}

static void emit_table(lua_State *L, enc_t *e, int idx, int col, int ctx) {
  luaL_checkstack(L, 10, "yaml.encode: nesting too deep");
  if (lua_rawlen(L, e->path) >= YAML_MAX_DEPTH) enc_error(L, e, "nesting too deep");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) != LUA_TNIL) enc_error(L, e, "cycle (a table contains itself)");
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->seen);
  int child = ctx == CTX_ROOT ? 0 : col + 2;
  lua_Integer len;
  if (is_sequence(L, idx, &len)) {
    if (len == 0) PUTS(ctx == CTX_ROOT ? "[]\n" : " []\n");
    else {
      if (ctx == CTX_MAPVAL) PUTS("\n");
      else if (ctx == CTX_SEQITEM) PUTS(" ");
      for (lua_Integer i = 1; i <= len; i++) {
        if (i > 1 || ctx != CTX_SEQITEM) put_spaces(L, e, child);
        PUTS("-");
        lua_pushinteger(L, i);
        path_push(L, e, lua_gettop(L));
        lua_pop(L, 1);
        lua_rawgeti(L, idx, i);
        emit_node(L, e, lua_gettop(L), child, CTX_SEQITEM);
        lua_pop(L, 1);
        path_pop(L, e);
      }
    }
  } else {
    push_keys(L, idx, !e->sort_all);
    int keys = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, keys);
    if (n == 0) PUTS(ctx == CTX_ROOT ? "{}\n" : " {}\n");
    else {
      if (ctx == CTX_MAPVAL) PUTS("\n");
      else if (ctx == CTX_SEQITEM) PUTS(" ");
      for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1 || ctx != CTX_SEQITEM) put_spaces(L, e, child);
        lua_rawgeti(L, keys, i);
        int k = lua_gettop(L);
        path_push(L, e, k);
        if (lua_type(L, k) == LUA_TTABLE) enc_error(L, e, "a table as a mapping key");
        size_t kl = 0;
        if (lua_type(L, k) == LUA_TSTRING) lua_tolstring(L, k, &kl);
        if (kl > 128) {                      /* too long for a simple key */
          PUTS("? ");
          put_scalar(L, e, k, child + 2, 1);
          PUTS("\n");
          put_spaces(L, e, child);
        } else {
          put_scalar(L, e, k, child + 2, 1);
        }
        PUTS(":");
        lua_pushvalue(L, k);
        lua_rawget(L, idx);
        emit_node(L, e, lua_gettop(L), child, CTX_MAPVAL);
        lua_pop(L, 2);
        path_pop(L, e);
      }
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, e->seen);
}

/* Write the value at idx. col: the column of the key or dash it follows. */
static void emit_node(lua_State *L, enc_t *e, int idx, int col, int ctx) {
  if (lua_type(L, idx) == LUA_TTABLE) { emit_table(L, e, idx, col, ctx); return; }
  if (ctx != CTX_ROOT) PUTS(" ");
  int block_indent = ctx == CTX_ROOT ? 2 : col + 2;
  if (!put_scalar(L, e, idx, block_indent, 0)) PUTS("\n");
}

/* format_float(x) -> text as go-yaml (and Go's %g) write a float64 */
int sw_yaml_format_float(lua_State *L) {
  char buf[64];
  format_float((double)luaL_checknumber(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

/* encode(value, {sort_keys = false, docker_compat = false}) -> YAML text.
 * Maps come out in their recorded key order (decode, yaml.order), other
 * keys in go-yaml order; sort_keys ignores recorded orders; docker_compat
 * writes block literals byte for byte as docker's go-yaml does, even the
 * two kinds that do not read back the same (put_literal). Raises on values
 * YAML cannot hold. */
int sw_yaml_encode(lua_State *L) {
  static const char *const allowed[] = {"sort_keys", "docker_compat", NULL};
  luaL_checkany(L, 1);
  sw_check_options(L, 2, "yaml.encode", allowed);
  int sort_all = sw_opt_boolean(L, 2, "sort_keys", 0, "yaml.encode");
  int docker_compat = sw_opt_boolean(L, 2, "docker_compat", 0, "yaml.encode");
  lua_settop(L, 1);
  lua_newtable(L);                                     /* 2 seen */
  lua_newtable(L);                                     /* 3 path */
  enc_t *e = lua_newuserdatauv(L, sizeof(enc_t), 0);   /* 4 */
  memset(e, 0, sizeof *e);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &buf_mt_key);
  lua_setmetatable(L, 4);
  e->seen = 2;
  e->path = 3;
  e->sort_all = sort_all;
  e->docker_compat = docker_compat;
  emit_node(L, e, 1, 0, CTX_ROOT);
  sw_outbuf_push(L, &e->out);
  return 1;
}


void sw_yaml_emit_init(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, buf_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &buf_mt_key);
}
