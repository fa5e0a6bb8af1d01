/*
 * yaml.c: the slipway.yaml module: YAML text <-> Lua values, read the way
 * docker/cli's compose loader reads it (go-yaml v3 over libyaml's grammar)
 * and written the way `docker stack config` prints (go-yaml v3, indent 2,
 * sequences indented under their key).
 *
 * Decoding drives libyaml's event parser and builds Lua values directly:
 * mappings are plain tables, sequences are tables marked with the shared
 * array metatable (json.array_mt, so empty ones stay lists), null is the
 * lightuserdata NULL (yaml.null == json.null). Plain scalars resolve like
 * go-yaml v3: only true/True/TRUE/false/False/FALSE are booleans, ~/null/
 * empty are null, Go integer syntax after dropping '_' (0755 octal, 0x1F,
 * 0b101, 0o17; one above 2^63-1 and up to 2^64-1 is a slipway.Uint64,
 * uint64.c, so that its digits survive), YAML-style floats; everything
 * else, quoted scalars and timestamps stay strings. Aliases are expanded
 * into copies (so changing one service never changes another) and `<<`
 * merge keys are applied with local keys winning, then earlier sources
 * over later ones. A text over max_bytes (16 MiB) is refused unparsed.
 *
 * Side tables, weak-keyed, in the registry:
 *   order[t] = list of t's keys in document order (yaml.keys(t) reads it)
 * With {positions = true}, decode also returns pos where pos[t] =
 * {line=, col=, keys = {[key or index] = {line=, col=}}} (1-based).
 *
 * Key order (yaml.keys/order/key_less) and encoding live in yaml_emit.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "slipway.h"
#include "yaml_shared.h"

#define YAML_MAX_DEPTH SW_YAML_MAX_DEPTH
#define ARRAY_MT SW_YAML_ARRAY_MT

static const char parser_mt_key = 'p';

/* ------------------------------------------------------------ helpers */

void sw_yaml_push_order(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, SW_YAML_ORDER);
}
#define push_order sw_yaml_push_order

/* ----------------------------------------------------- scalar resolution */

typedef sw_yaml_scalar resolved;

/* Go's strconv.ParseInt(s, 0, 64): optional sign, then 0x/0o/0b prefix,
 * a leading 0 (octal), or decimal. Returns 0 on success. *uns receives 1
 * when the value only fits unsigned (ParseUint), the value in *u. */
static int go_parse_int(const char *s, size_t n, lua_Integer *out, unsigned long long *u, int *uns) {
  size_t i = 0;
  int neg = 0, base = 10;
  *uns = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) { neg = s[i] == '-'; i++; }
  if (i >= n) return -1;
  if (s[i] == '0' && i + 1 < n) {
    char p = s[i + 1];
    if (p == 'x' || p == 'X') { base = 16; i += 2; }
    else if (p == 'o' || p == 'O') { base = 8; i += 2; }
    else if (p == 'b' || p == 'B') { base = 2; i += 2; }
    else { base = 8; i += 1; }
    if (i >= n) return -1;
  }
  unsigned long long v = 0;
  int overflow = 0;
  for (; i < n; i++) {
    int d;
    char c = s[i];
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    if (d >= base) return -1;
    if (v > (~0ULL - (unsigned)d) / (unsigned)base) overflow = 1;
    else v = v * (unsigned)base + (unsigned)d;
  }
  if (overflow) return -1;
  if (neg) {
    if (v > (1ULL << 63)) return -1;
    *out = (lua_Integer)(0 - v);
    return 0;
  }
  if (v > (unsigned long long)LUA_MAXINTEGER) {
    if (s[0] == '+') return -1;         /* ParseUint takes no sign */
    *uns = 1;
    *u = v;
    return 0;
  }
  *out = (lua_Integer)v;
  return 0;
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int yaml_style_float(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  if (i < n && s[i] == '.') {
    i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return 0;
  } else {
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return 0;
    if (i < n && s[i] == '.') {
      i++;
      while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return 0;
  }
  return i == n;
}

/* strtod on a regex-checked decimal; fails on overflow like Go's ParseFloat */
static int parse_float(const char *s, size_t n, double *f) {
  char buf[128];
  if (n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  errno = 0;
  *f = strtod(buf, NULL);
  if (isinf(*f)) return -1;
  return 0;
}

static int digits_at(const char *s, size_t n, size_t *i, int min, int max) {
  int k = 0;
  while (*i < n && k < max && s[*i] >= '0' && s[*i] <= '9') { (*i)++; k++; }
  return k >= min;
}

/* Go's time layouts go-yaml accepts: 2006-1-2, and with T/t/space then
 * 15:4:5(.frac), the T forms with Z or +07:00. Only the shape matters:
 * such strings are kept as text but must be quoted on output. */
static int looks_like_timestamp(const char *s, size_t n) {
  size_t i = 0;
  if (!digits_at(s, n, &i, 4, 4) || i >= n || s[i] != '-') return 0;
  i++;
  size_t m0 = i;
  if (!digits_at(s, n, &i, 1, 2)) return 0;
  int month = atoi(s + m0);
  if (i >= n || s[i] != '-') return 0;
  i++;
  size_t d0 = i;
  if (!digits_at(s, n, &i, 1, 2)) return 0;
  int day = atoi(s + d0);
  if (month < 1 || month > 12 || day < 1 || day > 31) return 0;
  if (i == n) return 1;
  char sep = s[i];
  if (sep != 'T' && sep != 't' && sep != ' ') return 0;
  i++;
  if (!digits_at(s, n, &i, 1, 2) || i >= n || s[i] != ':') return 0;
  i++;
  if (!digits_at(s, n, &i, 1, 2) || i >= n || s[i] != ':') return 0;
  i++;
  if (!digits_at(s, n, &i, 1, 2)) return 0;
  if (i < n && s[i] == '.') { i++; if (!digits_at(s, n, &i, 1, 9)) return 0; }
  if (sep == ' ') return i == n;
  if (i < n && s[i] == 'Z') return i + 1 == n;
  if (i < n && (s[i] == '+' || s[i] == '-')) {
    i++;
    if (!digits_at(s, n, &i, 2, 2) || i >= n || s[i] != ':') return 0;
    i++;
    return digits_at(s, n, &i, 2, 2) && i == n;
  }
  return 0;
}

/* Resolve a plain untagged scalar (or one tagged with a core tag) the way
 * go-yaml v3 does. */
void sw_yaml_resolve(const char *s, size_t n, sw_yaml_scalar *r) {
  r->kind = R_STR;
  if (n == 0) { r->kind = R_NULL; return; }
  char c = s[0];
  switch (c) {
  case 't': case 'T':
    if ((n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4))))
      { r->kind = R_BOOL; r->b = 1; }
    return;
  case 'f': case 'F':
    if ((n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5))))
      { r->kind = R_BOOL; r->b = 0; }
    return;
  case 'n': case 'N':
    if (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)))
      r->kind = R_NULL;
    return;
  case '~':
    if (n == 1) r->kind = R_NULL;
    return;
  case '<':
    if (n == 2 && s[1] == '<') r->kind = R_MERGE;
    return;
  case '.':
    if (n == 4 && (!memcmp(s, ".inf", 4) || !memcmp(s, ".Inf", 4) || !memcmp(s, ".INF", 4)))
      { r->kind = R_FLOAT; r->f = HUGE_VAL; return; }
    if (n == 4 && (!memcmp(s, ".nan", 4) || !memcmp(s, ".NaN", 4) || !memcmp(s, ".NAN", 4)))
      { r->kind = R_FLOAT; r->f = NAN; return; }
    if (yaml_style_float(s, n) && parse_float(s, n, &r->f) == 0) r->kind = R_FLOAT;
    return;
  case '+': case '-':
    if (n == 5 && (!memcmp(s + 1, ".inf", 4) || !memcmp(s + 1, ".Inf", 4) || !memcmp(s + 1, ".INF", 4)))
      { r->kind = R_FLOAT; r->f = c == '-' ? -HUGE_VAL : HUGE_VAL; return; }
    break;
  default:
    if (c < '0' || c > '9') return;
  }
  if (looks_like_timestamp(s, n)) { r->kind = R_TIME; return; }
  /* digits or a sign: Go integer syntax once '_' are dropped, then float */
  char buf[128];
  size_t m = 0;
  if (n >= sizeof buf) return;
  for (size_t i = 0; i < n; i++) if (s[i] != '_') buf[m++] = s[i];
  int uns;
  if (go_parse_int(buf, m, &r->i, &r->u, &uns) == 0) {
    r->kind = uns ? R_UINT : R_INT;
    return;
  }
  if (yaml_style_float(buf, m) && parse_float(buf, m, &r->f) == 0) r->kind = R_FLOAT;
}

/* ------------------------------------------------------------- decoding */

typedef struct {
  yaml_parser_t parser;
  yaml_event_t ev;
  int has_parser, has_ev;
} parser_box;

static void parser_free(parser_box *b) {
  if (b->has_ev) yaml_event_delete(&b->ev);
  if (b->has_parser) yaml_parser_delete(&b->parser);
  b->has_ev = b->has_parser = 0;
}

static int parser_gc(lua_State *L) {
  parser_free(lua_touserdata(L, 1));
  return 0;
}

typedef struct {
  lua_State *L;
  parser_box *box;
  const char *filename;
  const char *text;
  size_t len;
  int anchors, pos, order, array_mt;   /* stack indexes; pos 0 = no positions */
  int depth;
  int failed;
  double decoded, aliased;   /* nodes decoded, of which from aliases */
} dec_t;

/* Record an error message "file:line:col: msg" (pushed later as a result). */
static int dec_fail(dec_t *d, size_t line, size_t col, const char *fmt, ...) {
  lua_State *L = d->L;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushfstring(L, "%s:%d:%d: %s", d->filename, (int)line, (int)col, msg);
  lua_setfield(L, LUA_REGISTRYINDEX, "slipway.yaml.error");
  d->failed = 1;
  return 0;
}

/* go-yaml v3 refuses a document whose aliases expand into most of what it
 * decodes (a "billion laughs" document would take all memory and minutes):
 * count nodes as its decoder does; `aliased` = inside an alias's value. */
static int count_node(dec_t *d, int aliased, const yaml_mark_t *m) {
  d->decoded++;
  if (aliased) d->aliased++;
  if (d->aliased > 100 && d->decoded > 1000) {
    double allowed = d->decoded <= 400000 ? 0.99 : d->decoded >= 4000000 ? 0.10
                   : 0.99 - 0.89 * ((d->decoded - 400000) / 3600000.0);
    if (d->aliased / d->decoded > allowed)
      return dec_fail(d, m->line + 1, m->column + 1, "document contains excessive aliasing");
  }
  return 1;
}

/* The parser's own error, with the context libyaml gives when it has one. */
static int parser_error(dec_t *d, yaml_parser_t *p) {
  size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
  if (p->error == YAML_READER_ERROR) {
    /* reader errors carry a byte offset only */
    line = 1; col = 1;
    for (size_t i = 0; i < p->problem_offset && i < d->len; i++) {
      if (d->text[i] == '\n') { line++; col = 1; } else col++;
    }
  }
  const char *problem = p->problem ? p->problem : "invalid YAML";
  if (p->context && p->error != YAML_READER_ERROR)
    return dec_fail(d, line, col, "%s (%s at line %d)", problem, p->context,
                    (int)p->context_mark.line + 1);
  return dec_fail(d, line, col, "%s", problem);
}

static int next_event(dec_t *d) {
  parser_box *b = d->box;
  if (b->has_ev) { yaml_event_delete(&b->ev); b->has_ev = 0; }
  if (!yaml_parser_parse(&b->parser, &b->ev)) return parser_error(d, &b->parser);
  b->has_ev = 1;
  return 1;
}

/* pos[t] = {line=, col=, keys={}}; leaves nothing on the stack */
static void pos_new(dec_t *d, int t, const yaml_mark_t *m) {
  lua_State *L = d->L;
  if (!d->pos) return;
  lua_pushvalue(L, t);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)m->line + 1);
  lua_setfield(L, -2, "line");
  lua_pushinteger(L, (lua_Integer)m->column + 1);
  lua_setfield(L, -2, "col");
  lua_newtable(L);
  lua_setfield(L, -2, "keys");
  lua_rawset(L, d->pos);
}

/* pos[t].keys[key at top] = {line=, col=}; leaves the key in place */
static void pos_key(dec_t *d, int t, const yaml_mark_t *m) {
  lua_State *L = d->L;
  if (!d->pos) return;
  lua_pushvalue(L, t);
  lua_rawget(L, d->pos);
  lua_getfield(L, -1, "keys");
  lua_pushvalue(L, -3);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)m->line + 1);
  lua_setfield(L, -2, "line");
  lua_pushinteger(L, (lua_Integer)m->column + 1);
  lua_setfield(L, -2, "col");
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

static int is_map(dec_t *d, int idx);

/* Copy the table at idx deeply (an alias's value), sharing its order and
 * position records, so that each use of an anchor is its own value.
 * Returns 0 with the error recorded when the aliases expand too much. */
static int deep_copy(dec_t *d, int idx, const yaml_mark_t *m) {
  lua_State *L = d->L;
  luaL_checkstack(L, 6, "yaml: nesting too deep");
  idx = lua_absindex(L, idx);
  if (!count_node(d, 1, m)) return 0;
  int map = is_map(d, idx);
  lua_newtable(L);
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (map && !count_node(d, 1, m)) return 0;       /* the key */
    if (lua_type(L, -1) == LUA_TTABLE) {
      if (!deep_copy(d, -1, m)) return 0;
      lua_remove(L, -2);
    } else if (!count_node(d, 1, m)) return 0;
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, t);
  }
  if (lua_getmetatable(L, idx)) lua_setmetatable(L, t);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, d->order) != LUA_TNIL) {
    lua_pushvalue(L, t);
    lua_insert(L, -2);
    lua_rawset(L, d->order);
  } else lua_pop(L, 1);
  if (d->pos) {
    lua_pushvalue(L, idx);
    if (lua_rawget(L, d->pos) != LUA_TNIL) {
      lua_pushvalue(L, t);
      lua_insert(L, -2);
      lua_rawset(L, d->pos);
    } else lua_pop(L, 1);
  }
  return 1;
}

static int is_map(dec_t *d, int idx) {
  lua_State *L = d->L;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  if (!lua_getmetatable(L, idx)) return 1;
  int arr = lua_rawequal(L, -1, d->array_mt);
  lua_pop(L, 1);
  return !arr;
}

static int parse_node(dec_t *d);

/* Push a scalar event's value. */
static int push_scalar(dec_t *d, yaml_event_t *ev, int *is_merge) {
  lua_State *L = d->L;
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  const char *core = NULL;
  if (is_merge) *is_merge = 0;
  if (tag && strncmp(tag, "tag:yaml.org,2002:", 18) == 0) core = tag + 18;
  if (tag && !core) {                      /* "!" or a local tag: text */
    lua_pushlstring(L, s, n);
    return 1;
  }
  if (core && (!strcmp(core, "str") || !strcmp(core, "binary"))) {
    lua_pushlstring(L, s, n);
    return 1;
  }
  if (!core && !plain) {                   /* quoted and block scalars */
    lua_pushlstring(L, s, n);
    return 1;
  }
  if (core && strcmp(core, "int") && strcmp(core, "float") && strcmp(core, "bool") &&
      strcmp(core, "null") && strcmp(core, "timestamp")) {
    lua_pushlstring(L, s, n);                /* !!map on a scalar etc.: text */
    return 1;
  }
  resolved r;
  sw_yaml_resolve(s, n, &r);
  if (core) {
    int want = !strcmp(core, "int") ? R_INT : !strcmp(core, "float") ? R_FLOAT
             : !strcmp(core, "bool") ? R_BOOL : !strcmp(core, "null") ? R_NULL : R_TIME;
    if (want == R_FLOAT && r.kind == R_INT) { r.kind = R_FLOAT; r.f = (double)r.i; }
    if (want == R_FLOAT && r.kind == R_UINT) { r.kind = R_FLOAT; r.f = (double)r.u; }
    if (want == R_INT && r.kind == R_UINT) want = R_UINT;
    if (r.kind == R_MERGE) r.kind = R_STR;
    if (r.kind != want) {
      static const char *const names[] = {"str", "null", "bool", "int", "float", "str", "timestamp", "int"};
      return dec_fail(d, ev->start_mark.line + 1, ev->start_mark.column + 1,
                      "cannot decode !!%s `%.*s` as a !!%s", names[r.kind], (int)(n > 60 ? 60 : n), s,
                      core);
    }
  }
  switch (r.kind) {
  case R_NULL: lua_pushlightuserdata(L, NULL); break;
  case R_BOOL: lua_pushboolean(L, r.b); break;
  case R_INT: lua_pushinteger(L, r.i); break;
  case R_FLOAT: lua_pushnumber(L, r.f); break;
  case R_UINT: sw_uint64_push(L, r.u); break;
  case R_MERGE:
    if (is_merge) *is_merge = 1;
    lua_pushlstring(L, s, n);
    break;
  default: lua_pushlstring(L, s, n);
  }
  return 1;
}

/* Apply the merge sources (list at idx `merges`) to the map t: keys the map
 * lacks are added in source order, earlier sources winning. Returns the
 * list of added keys on the stack top. */
static int apply_merges(dec_t *d, int t, int merges, const yaml_mark_t *m) {
  lua_State *L = d->L;
  lua_newtable(L);
  int added = lua_gettop(L);
  lua_Integer na = 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, merges);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, merges, i);
    int src = lua_gettop(L);
    /* walk the source in its own key order when known */
    lua_pushvalue(L, src);
    lua_rawget(L, d->order);
    int olist = lua_gettop(L);
    lua_Integer on = lua_istable(L, olist) ? (lua_Integer)lua_rawlen(L, olist) : 0;
    for (lua_Integer j = 1; j <= on; j++) {
      lua_rawgeti(L, olist, j);                      /* key */
      lua_pushvalue(L, -1);
      if (lua_rawget(L, t) != LUA_TNIL) { lua_pop(L, 2); continue; }
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawget(L, src);
      if (lua_isnil(L, -1)) { lua_pop(L, 2); continue; }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, t);                              /* t[key] = src[key] */
      if (d->pos) {                                  /* key position from the source */
        lua_pushvalue(L, src);
        lua_rawget(L, d->pos);
        if (lua_istable(L, -1)) {
          lua_getfield(L, -1, "keys");
          lua_pushvalue(L, -3);
          lua_rawget(L, -2);                         /* [key, srcpos, keys, kp] */
          lua_pushvalue(L, t);
          lua_rawget(L, d->pos);
          lua_getfield(L, -1, "keys");
          lua_pushvalue(L, -6);
          lua_pushvalue(L, -4);
          lua_rawset(L, -3);
          lua_pop(L, 5);
        } else lua_pop(L, 1);
      }
      lua_rawseti(L, added, ++na);
    }
    lua_settop(L, src - 1);
  }
  (void)m;
  return 1;
}

static int parse_mapping(dec_t *d) {
  lua_State *L = d->L;
  yaml_mark_t start = d->box->ev.start_mark;
  const char *anchor = (const char *)d->box->ev.data.mapping_start.anchor;
  lua_pushstring(L, anchor);                 /* the name, whole (or nil) */
  int name = lua_gettop(L);
  lua_newtable(L);
  int t = lua_gettop(L);
  lua_newtable(L);
  int olist = lua_gettop(L);
  lua_Integer on = 0;
  int merges = 0;
  lua_Integer merge_at = 0;
  yaml_mark_t merge_mark = start;
  pos_new(d, t, &start);
  for (;;) {
    if (!next_event(d)) return 0;
    if (d->box->ev.type == YAML_MAPPING_END_EVENT) break;
    yaml_mark_t km = d->box->ev.start_mark;
    int is_merge = 0;
    if (d->box->ev.type == YAML_SCALAR_EVENT) {
      if (!push_scalar(d, &d->box->ev, &is_merge)) return 0;
      if (!is_merge && !count_node(d, 0, &km)) return 0;
    } else if (d->box->ev.type == YAML_ALIAS_EVENT) {
      if (!parse_node(d)) return 0;
      if (lua_type(L, -1) == LUA_TTABLE)
        return dec_fail(d, km.line + 1, km.column + 1, "a mapping key must be a scalar");
    } else {
      return dec_fail(d, km.line + 1, km.column + 1, "a mapping key must be a scalar");
    }
    int kt = lua_type(L, -1);
    if (kt == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))
      return dec_fail(d, km.line + 1, km.column + 1, "a mapping key cannot be NaN");
    if (is_merge) {
      if (merges)
        return dec_fail(d, km.line + 1, km.column + 1, "mapping key \"<<\" already defined");
      lua_pop(L, 1);
      merge_mark = km;
      if (!next_event(d) || !parse_node(d)) return 0;
      lua_newtable(L);
      merges = lua_gettop(L);
      if (is_map(d, -2)) {
        lua_pushvalue(L, -2);
        lua_rawseti(L, merges, 1);
      } else if (lua_type(L, -2) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -2);
        for (lua_Integer i = 1; i <= n; i++) {
          lua_rawgeti(L, -2, i);
          if (!is_map(d, -1))
            return dec_fail(d, km.line + 1, km.column + 1,
                            "map merge requires map or sequence of maps as the value");
          lua_rawseti(L, merges, i);
        }
      } else {
        return dec_fail(d, km.line + 1, km.column + 1,
                        "map merge requires map or sequence of maps as the value");
      }
      lua_remove(L, -2);                   /* the parsed value; merges stays */
      merges = lua_gettop(L);
      merge_at = on + 1;
      continue;
    }
    /* duplicate keys are an error, as in go-yaml v3 */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) != LUA_TNIL) {
      lua_pop(L, 1);
      const char *ks = luaL_tolstring(L, -1, NULL);
      int prev = 0;
      if (d->pos) {
        lua_pushvalue(L, t);
        lua_rawget(L, d->pos);
        lua_getfield(L, -1, "keys");
        lua_pushvalue(L, -4);
        if (lua_rawget(L, -2) == LUA_TTABLE) {
          lua_getfield(L, -1, "line");
          prev = (int)lua_tointeger(L, -1);
        }
      }
      if (prev)
        return dec_fail(d, km.line + 1, km.column + 1,
                        "mapping key \"%s\" already defined at line %d", ks, prev);
      return dec_fail(d, km.line + 1, km.column + 1, "mapping key \"%s\" already defined", ks);
    }
    lua_pop(L, 1);
    pos_key(d, t, &km);
    lua_pushvalue(L, -1);
    lua_rawseti(L, olist, ++on);
    if (!next_event(d) || !parse_node(d)) return 0;
    lua_rawset(L, t);
  }
  if (merges) {
    apply_merges(d, t, merges, &merge_mark);
    int added = lua_gettop(L);
    lua_Integer na = (lua_Integer)lua_rawlen(L, added);
    if (na > 0) {                          /* merged keys go where `<<` was */
      lua_createtable(L, (int)(on + na), 0);
      lua_Integer k = 0;
      for (lua_Integer i = 1; i < merge_at; i++) { lua_rawgeti(L, olist, i); lua_rawseti(L, -2, ++k); }
      for (lua_Integer i = 1; i <= na; i++) { lua_rawgeti(L, added, i); lua_rawseti(L, -2, ++k); }
      for (lua_Integer i = merge_at; i <= on; i++) { lua_rawgeti(L, olist, i); lua_rawseti(L, -2, ++k); }
      lua_replace(L, olist);
    }
    lua_settop(L, merges - 1);
  }
  lua_pushvalue(L, t);
  lua_pushvalue(L, olist);
  lua_rawset(L, d->order);
  lua_settop(L, t);
  if (!lua_isnil(L, name)) {
    lua_pushvalue(L, name);
    lua_pushvalue(L, t);
    lua_rawset(L, d->anchors);
  }
  lua_remove(L, name);
  return 1;
}

static int parse_sequence(dec_t *d) {
  lua_State *L = d->L;
  yaml_mark_t start = d->box->ev.start_mark;
  const char *anchor = (const char *)d->box->ev.data.sequence_start.anchor;
  lua_pushstring(L, anchor);                 /* the name, whole (or nil) */
  int name = lua_gettop(L);
  lua_newtable(L);
  int t = lua_gettop(L);
  lua_pushvalue(L, d->array_mt);
  lua_setmetatable(L, t);
  pos_new(d, t, &start);
  lua_Integer n = 0;
  for (;;) {
    if (!next_event(d)) return 0;
    if (d->box->ev.type == YAML_SEQUENCE_END_EVENT) break;
    yaml_mark_t m = d->box->ev.start_mark;
    if (d->pos) {
      lua_pushinteger(L, n + 1);
      pos_key(d, t, &m);
      lua_pop(L, 1);
    }
    if (!parse_node(d)) return 0;
    lua_rawseti(L, t, ++n);
  }
  if (!lua_isnil(L, name)) {
    lua_pushvalue(L, name);
    lua_pushvalue(L, t);
    lua_rawset(L, d->anchors);
  }
  lua_remove(L, name);
  return 1;
}

/* Parse the node whose first event is current; push its value. */
static int parse_node(dec_t *d) {
  lua_State *L = d->L;
  yaml_event_t *ev = &d->box->ev;
  if (++d->depth > YAML_MAX_DEPTH)
    return dec_fail(d, ev->start_mark.line + 1, ev->start_mark.column + 1, "nesting too deep");
  luaL_checkstack(L, 10, "yaml: nesting too deep");
  if (!count_node(d, 0, &ev->start_mark)) return 0;
  int ok;
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    ok = push_scalar(d, ev, NULL);
    if (ok && ev->data.scalar.anchor) {
      lua_pushvalue(L, -1);
      lua_setfield(L, d->anchors, (const char *)ev->data.scalar.anchor);
    }
    break;
  case YAML_ALIAS_EVENT: {
    const char *name = (const char *)ev->data.alias.anchor;
    if (lua_getfield(L, d->anchors, name) == LUA_TNIL) {
      lua_pop(L, 1);
      ok = dec_fail(d, ev->start_mark.line + 1, ev->start_mark.column + 1,
                    "unknown anchor '%s' referenced", name);
      break;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
      if (!deep_copy(d, -1, &ev->start_mark)) { ok = 0; break; }
      lua_remove(L, -2);
    } else if (!count_node(d, 1, &ev->start_mark)) { ok = 0; break; }
    ok = 1;
    break;
  }
  case YAML_MAPPING_START_EVENT: ok = parse_mapping(d); break;
  case YAML_SEQUENCE_START_EVENT: ok = parse_sequence(d); break;
  default:
    ok = dec_fail(d, ev->start_mark.line + 1, ev->start_mark.column + 1, "unexpected event");
  }
  d->depth--;
  return ok;
}

/* Parse documents; push up to `max` values into a list at the top.
 * Returns 1, or 0 with the error recorded. */
/* go-yaml v3 decodes the first document only, but its scanner keeps two
 * tokens of lookahead (for comments), so in docker a syntax error just
 * after the first document ("--- x: y", "---\n@") fails the whole file.
 * Scan the same way: the token that ends the first document and the two
 * after it. d->box->ev is the first document's DOCUMENT_END event. */
static int scan_past_first_document(dec_t *d) {
  size_t at = d->box->ev.start_mark.index;
  while (at < d->len) {                  /* only blanks and comments left? */
    char c = d->text[at];
    if (c == '#') while (at < d->len && d->text[at] != '\n' && d->text[at] != '\r') at++;
    else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') at++;
    else break;
  }
  if (at >= d->len) return 1;
  yaml_parser_t p;
  yaml_token_t tok;
  if (!yaml_parser_initialize(&p)) return dec_fail(d, 1, 1, "out of memory");
  yaml_parser_set_input_string(&p, (const unsigned char *)d->text, d->len);
  int ok = 1, content = 0, after = -1;   /* after: tokens past the end */
  for (;;) {
    if (!yaml_parser_scan(&p, &tok)) { ok = parser_error(d, &p); break; }
    yaml_token_type_t type = tok.type;
    yaml_token_delete(&tok);
    if (type == YAML_STREAM_END_TOKEN || (after >= 0 && ++after == 2)) break;
    if (after >= 0 || type == YAML_STREAM_START_TOKEN || type == YAML_VERSION_DIRECTIVE_TOKEN ||
        type == YAML_TAG_DIRECTIVE_TOKEN) continue;
    int boundary = type == YAML_DOCUMENT_START_TOKEN || type == YAML_DOCUMENT_END_TOKEN;
    if (!content++ && type == YAML_DOCUMENT_START_TOKEN) continue;   /* its own "---" */
    if (boundary) after = 0;
  }
  yaml_parser_delete(&p);
  return ok;
}

static int parse_documents(dec_t *d, int max, int list) {
  lua_State *L = d->L;
  lua_Integer n = 0;
  if (!next_event(d)) return 0;                      /* STREAM_START */
  for (;;) {
    if (!next_event(d)) return 0;
    if (d->box->ev.type == YAML_STREAM_END_EVENT) break;
    /* DOCUMENT_START: a fresh set of anchors per document */
    lua_newtable(L);
    lua_replace(L, d->anchors);
    if (!next_event(d)) return 0;
    if (!parse_node(d)) return 0;
    lua_rawseti(L, list, ++n);
    if (!next_event(d)) return 0;                    /* DOCUMENT_END */
    if (n >= max) return scan_past_first_document(d);
  }
  return 1;
}

static const char *const decode_opts[] = {"filename", "positions", "max_bytes", NULL};

/* Shared body of decode and decode_all. */
static int decode_common(lua_State *L, const char *fname, int all) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  sw_check_options(L, 2, fname, decode_opts);
  const char *filename = sw_opt_string(L, 2, "filename", "<string>", fname);
  int positions = sw_opt_boolean(L, 2, "positions", 0, fname);
  lua_Integer max_bytes = sw_opt_integer(L, 2, "max_bytes", SW_YAML_MAX_BYTES, fname);
  luaL_argcheck(L, max_bytes >= 0, 2, "max_bytes must not be negative");
  /* The values built from a text take many times its size: refuse a text
   * over the limit before building any. */
  if ((unsigned long long)len > (unsigned long long)max_bytes) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: document too large (%I bytes, the limit is %I)", filename,
                    (lua_Integer)len, max_bytes);
    lua_pushliteral(L, "EFBIG");
    return 3;
  }
  lua_settop(L, 2);
  parser_box *box = lua_newuserdatauv(L, sizeof(parser_box), 0);     /* 3 */
  memset(box, 0, sizeof *box);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &parser_mt_key);
  lua_setmetatable(L, 3);
  if (!yaml_parser_initialize(&box->parser)) return luaL_error(L, "%s: out of memory", fname);
  box->has_parser = 1;
  yaml_parser_set_input_string(&box->parser, (const unsigned char *)text, len);
  lua_newtable(L);                                                   /* 4 anchors */
  if (positions) lua_newtable(L); else lua_pushnil(L);               /* 5 pos */
  push_order(L);                                                     /* 6 order */
  luaL_getmetatable(L, ARRAY_MT);                                    /* 7 array mt */
  lua_newtable(L);                                                   /* 8 list */
  dec_t d = { L, box, filename, text, len, 4, positions ? 5 : 0, 6, 7, 0, 0, 0, 0 };
  int ok = parse_documents(&d, all ? 1 << 30 : 1, 8);
  lua_settop(L, 8);
  parser_free(box);          /* free libyaml's memory now, not at the next GC */
  if (!ok) {
    lua_pushnil(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "slipway.yaml.error");
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "slipway.yaml.error");
    lua_pushliteral(L, "EYAML");
    return 3;
  }
  if (all) {
    lua_pushvalue(L, 7);
    lua_setmetatable(L, 8);
  } else if (lua_rawgeti(L, 8, 1) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushlightuserdata(L, NULL);          /* an empty stream is null */
  }
  if (!positions) return 1;
  lua_pushvalue(L, 5);
  return 2;
}

/* decode(text, {filename=, positions=, max_bytes = 16 MiB}) -> value[, pos]
 *   | nil, "file:line:col: message", "EYAML". The first document only.
 * A text longer than max_bytes: nil, "file: document too large (...)",
 * "EFBIG". */
static int yaml_decode(lua_State *L) { return decode_common(L, "yaml.decode", 0); }

/* decode_all(text, opts) -> {doc, ...}[, pos] | nil, msg, "EYAML"/"EFBIG" */
static int yaml_decode_all(lua_State *L) { return decode_common(L, "yaml.decode_all", 1); }

static const luaL_Reg yaml_funcs[] = {
  {"decode", yaml_decode},
  {"decode_all", yaml_decode_all},
  {"encode", sw_yaml_encode},
  {"keys", sw_yaml_keys},
  {"order", sw_yaml_order},
  {"key_less", sw_yaml_key_less},
  {"format_float", sw_yaml_format_float},
  {NULL, NULL}
};

int luaopen_slipway_yaml(lua_State *L) {
  luaL_newlib(L, yaml_funcs);
  luaL_newmetatable(L, ARRAY_MT);                  /* shared with slipway.json */
  lua_setfield(L, -2, "array_mt");
  sw_uint64_push_metatable(L);
  lua_setfield(L, -2, "uint64_mt");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  if (lua_getfield(L, LUA_REGISTRYINDEX, SW_YAML_ORDER) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, SW_YAML_ORDER);
  } else lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, parser_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &parser_mt_key);
  sw_yaml_emit_init(L);
  return 1;
}
