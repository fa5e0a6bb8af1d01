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
 * 0b101, 0o17), YAML-style floats; everything else, quoted scalars and
 * timestamps stay strings. Aliases are expanded into copies (so changing
 * one service never changes another) and `<<` merge keys are applied with
 * local keys winning, then earlier sources over later ones.
 *
 * Side tables, weak-keyed, in the registry:
 *   order[t] = list of t's keys in document order (yaml.keys(t) reads it)
 * With {positions = true}, decode also returns pos where pos[t] =
 * {line=, col=, keys = {[key or index] = {line=, col=}}} (1-based).
 */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "slipway.h"

#define YAML_MAX_DEPTH 1000
#define ARRAY_MT "json.array"     /* shared with json.c (luaL_newmetatable) */

static const char order_key = 'o';   /* registry key of the order side table */
static const char buf_mt_key = 'b';  /* metatable of the encoder's buffer box */
static const char parser_mt_key = 'p';

/* ------------------------------------------------------------ helpers */

/* Push the weak-keyed order table. */
static void push_order(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &order_key);
}

/* ----------------------------------------------------- scalar resolution */

enum { R_STR, R_NULL, R_BOOL, R_INT, R_FLOAT, R_MERGE, R_TIME };

typedef struct {
  int kind;
  int b;
  lua_Integer i;
  double f;
} resolved;

/* Go's strconv.ParseInt(s, 0, 64): optional sign, then 0x/0o/0b prefix,
 * a leading 0 (octal), or decimal. Returns 0 on success. *uns receives 1
 * when the value only fits unsigned (ParseUint), as a double in *f. */
static int go_parse_int(const char *s, size_t n, lua_Integer *out, double *f, int *uns) {
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
    *f = (double)v;
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
static void resolve_plain(const char *s, size_t n, resolved *r) {
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
  if (go_parse_int(buf, m, &r->i, &r->f, &uns) == 0) {
    r->kind = uns ? R_FLOAT : R_INT;
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

/* The parser's own error, with the context libyaml gives when it has one. */
static int dec_parser_error(dec_t *d) {
  yaml_parser_t *p = &d->box->parser;
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
  if (!yaml_parser_parse(&b->parser, &b->ev)) return dec_parser_error(d);
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

/* Copy the table at idx deeply (an alias's value), sharing its order and
 * position records, so that each use of an anchor is its own value. */
static void deep_copy(dec_t *d, int idx) {
  lua_State *L = d->L;
  luaL_checkstack(L, 6, "yaml: nesting too deep");
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      deep_copy(d, -1);
      lua_remove(L, -2);
    }
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
  resolve_plain(s, n, &r);
  if (core) {
    int want = !strcmp(core, "int") ? R_INT : !strcmp(core, "float") ? R_FLOAT
             : !strcmp(core, "bool") ? R_BOOL : !strcmp(core, "null") ? R_NULL : R_TIME;
    if (want == R_FLOAT && r.kind == R_INT) { r.kind = R_FLOAT; r.f = (double)r.i; }
    if (r.kind == R_MERGE) r.kind = R_STR;
    if (r.kind != want) {
      static const char *const names[] = {"str", "null", "bool", "int", "float", "str", "timestamp"};
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
  const char *anchor = d->box->ev.data.mapping_start.anchor
                     ? (const char *)d->box->ev.data.mapping_start.anchor : NULL;
  char anchor_buf[256];
  if (anchor) snprintf(anchor_buf, sizeof anchor_buf, "%s", anchor);
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
  if (anchor) {
    lua_pushvalue(L, t);
    lua_setfield(L, d->anchors, anchor_buf);
  }
  return 1;
}

static int parse_sequence(dec_t *d) {
  lua_State *L = d->L;
  yaml_mark_t start = d->box->ev.start_mark;
  const char *anchor = d->box->ev.data.sequence_start.anchor
                     ? (const char *)d->box->ev.data.sequence_start.anchor : NULL;
  char anchor_buf[256];
  if (anchor) snprintf(anchor_buf, sizeof anchor_buf, "%s", anchor);
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
  if (anchor) {
    lua_pushvalue(L, t);
    lua_setfield(L, d->anchors, anchor_buf);
  }
  return 1;
}

/* Parse the node whose first event is current; push its value. */
static int parse_node(dec_t *d) {
  lua_State *L = d->L;
  yaml_event_t *ev = &d->box->ev;
  if (++d->depth > YAML_MAX_DEPTH)
    return dec_fail(d, ev->start_mark.line + 1, ev->start_mark.column + 1, "nesting too deep");
  luaL_checkstack(L, 10, "yaml: nesting too deep");
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
      deep_copy(d, -1);
      lua_remove(L, -2);
    }
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
    if (n >= max) break;
  }
  return 1;
}

static const char *const decode_opts[] = {"filename", "positions", NULL};

/* Shared body of decode and decode_all. */
static int decode_common(lua_State *L, const char *fname, int all) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  sw_check_options(L, 2, fname, decode_opts);
  const char *filename = sw_opt_string(L, 2, "filename", "<string>", fname);
  int positions = sw_opt_boolean(L, 2, "positions", 0, fname);
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
  dec_t d = { L, box, filename, text, len, 4, positions ? 5 : 0, 6, 7, 0, 0 };
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

/* decode(text, {filename=, positions=}) -> value[, pos]
 *   | nil, "file:line:col: message", "EYAML". The first document only. */
static int yaml_decode(lua_State *L) { return decode_common(L, "yaml.decode", 0); }

/* decode_all(text, opts) -> {doc, ...}[, pos] | nil, msg, "EYAML" */
static int yaml_decode_all(lua_State *L) { return decode_common(L, "yaml.decode_all", 1); }

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
    for (ai = i; ai < al_ && is_digit(ar[ai]); ai++) an = an * 10 + (ar[ai] - '0');
    for (bi = i; bi < bl_ && is_digit(br[bi]); bi++) bn = bn * 10 + (br[bi] - '0');
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
static int yaml_keys(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  push_keys(L, 1, 1);
  return 1;
}

/* order(t, {key, ...}) -> t: record the order keys(t) and encode() use. */
static int yaml_order(lua_State *L) {
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
static int yaml_key_less(lua_State *L) {
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
  char *buf;
  size_t len, cap;
  int seen, path;          /* stack indexes: tables being written, key path */
  int sort_all;            /* ignore recorded key order */
} enc_t;

static int buf_gc(lua_State *L) {
  enc_t *e = lua_touserdata(L, 1);
  free(e->buf);
  e->buf = NULL;
  return 0;
}

static void put(lua_State *L, enc_t *e, const char *s, size_t n) {
  if (e->len + n > e->cap) {
    size_t cap = e->cap ? e->cap : 1024;
    while (cap < e->len + n) cap *= 2;
    char *nb = realloc(e->buf, cap);
    if (nb == NULL) luaL_error(L, "yaml.encode: out of memory");
    e->buf = nb;
    e->cap = cap;
  }
  memcpy(e->buf + e->len, s, n);
  e->len += n;
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
  resolve_plain(s, n, &r);
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

/* A block literal; `indent` is the column of its lines. Ends at a line end. */
static void put_literal(lua_State *L, enc_t *e, const char *s, size_t n, int indent) {
  put(L, e, "|", 1);
  if (n > 0 && (s[0] == ' ' || s[0] == '\n')) put(L, e, "2", 1);
  if (n == 0 || s[n - 1] != '\n') put(L, e, "-", 1);
  else if (n == 1 || s[n - 2] == '\n') put(L, e, "+", 1);
  put(L, e, "\n", 1);
  int at_start = 1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\n') { put(L, e, "\n", 1); at_start = 1; continue; }
    if (at_start) { put_spaces(L, e, indent); at_start = 0; }
    put(L, e, s + i, 1);
  }
  if (!at_start) put(L, e, "\n", 1);
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
    default: put_literal(L, e, s, n, indent); return 1;
    }
  }
  default: break;
  }
  lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx));
  return enc_error(L, e, lua_tostring(L, -1));
}

enum { CTX_ROOT, CTX_MAPVAL, CTX_SEQITEM };

static int is_sequence(lua_State *L, int idx, lua_Integer *len) {
  if (lua_getmetatable(L, idx)) {
    const char *name = NULL;
    if (lua_getfield(L, -1, "__name") == LUA_TSTRING) name = lua_tostring(L, -1);
    int arr = name && strcmp(name, ARRAY_MT) == 0;
    int obj = name && strcmp(name, "json.object") == 0;
    lua_pop(L, 2);
    if (arr) { *len = (lua_Integer)lua_rawlen(L, idx); return 1; }
    if (obj) return 0;
  }
  push_order(L);
  lua_pushvalue(L, idx);
  int ordered = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  if (ordered) return 0;
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
static int yaml_format_float(lua_State *L) {
  char buf[64];
  format_float((double)luaL_checknumber(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

/* encode(value, {sort_keys = false}) -> YAML text. Maps come out in their
 * recorded key order (decode, yaml.order), other keys in go-yaml order;
 * sort_keys ignores recorded orders. Raises on values YAML cannot hold. */
static int yaml_encode(lua_State *L) {
  static const char *const allowed[] = {"sort_keys", NULL};
  luaL_checkany(L, 1);
  sw_check_options(L, 2, "yaml.encode", allowed);
  int sort_all = sw_opt_boolean(L, 2, "sort_keys", 0, "yaml.encode");
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
  emit_node(L, e, 1, 0, CTX_ROOT);
  lua_pushlstring(L, e->buf ? e->buf : "", e->len);
  free(e->buf);
  e->buf = NULL;
  return 1;
}


static const luaL_Reg yaml_funcs[] = {
  {"decode", yaml_decode},
  {"decode_all", yaml_decode_all},
  {"encode", yaml_encode},
  {"keys", yaml_keys},
  {"order", yaml_order},
  {"key_less", yaml_key_less},
  {"format_float", yaml_format_float},
  {NULL, NULL}
};

int luaopen_slipway_yaml(lua_State *L) {
  luaL_newlib(L, yaml_funcs);
  luaL_newmetatable(L, ARRAY_MT);                  /* shared with slipway.json */
  lua_setfield(L, -2, "array_mt");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &order_key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &order_key);
  } else lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, parser_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &parser_mt_key);
  lua_newtable(L);
  lua_pushcfunction(L, buf_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &buf_mt_key);
  return 1;
}
