/*
 * pulumi.c: the Pulumi engine's event log, read while the CLI writes it
 * (module slipway._pulumi, for stdlib/pulumi).
 *
 *   _pulumi.event_log(path, decode) -> EventLog
 *   log:read([final]) -> { event, ... }  |  nil, "EIO: ...: path", "EIO"
 *   log:close()
 *
 * `pulumi up --event-log FILE` appends one JSON object per line
 * (apitype.EngineEvent: {"sequence": n, "timestamp": n, "<kind>": {...}}).
 * read() takes what was appended since the last call (nothing while the
 * file does not exist yet: the CLI creates it when it starts) and returns
 * the complete lines as events, in order; with final = true, once the
 * end of the file is reached, an unterminated last line too (its writer is
 * gone). A call takes about 128 KiB (more when no line ends in that):
 * call it until it gives no event. Reading is synchronous, like
 * slipway.fs: a regular file on a local disk (small batches keep the
 * events of a call in the cache).
 *
 * An event is { kind = "resOutputsEvent", sequence = n, timestamp = n,
 * body = the event's object }. Most of a log is resource events, and most
 * of those is the old and new state of the resource (inputs, outputs),
 * which progress reporting does not use: those are scanned past here, so
 * the body of resourcePreEvent, resOutputsEvent and resOpFailedEvent has
 * its metadata without `old` and `new`, except `new` of the stack resource
 * (pulumi:pulumi:Stack, whose outputs are the stack's). Everything that is
 * kept and is not a plain value (true, false, an integer, a string without
 * escapes) is decoded by `decode` (slipway.json's: one JSON decoder), and
 * so is the whole body of every other kind of event. JSON null is left out.
 *
 * A line that is not one JSON object with one event gives
 * { kind = "invalid", error = "what is wrong", line = <its first 200 bytes> }.
 * A line longer than 64 MiB fails the read with EFBIG.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "slipway.h"

#define EVENTLOG_MT "slipway._pulumi.EventLog"
#define MAX_LINE ((size_t)64 << 20)
#define MAX_READ ((size_t)128 << 10)   /* bytes taken by one read() call */
#define MAX_DEPTH 1000                 /* nesting, like slipway.json */
#define SHOWN_LINE 200                 /* bytes of an invalid line kept */

/* user values of the userdata: 1 = path, 2 = decode */
typedef struct {
  int fd;                  /* -1 until the file exists */
  int closed;
  char *buf;               /* bytes read and not yet a complete line */
  size_t len, cap;
  size_t scanned;          /* buf[0..scanned) holds no newline */
} event_log;

/* ------------------------------------------------------------ scanning */

typedef struct {
  const char *p, *end;
  const char *err;
} scanner;

typedef struct {
  const char *s;
  size_t n;
  int plain;               /* a string without escapes, bytes 0x20-0x7E */
} span;

static int scan_fail(scanner *sc, const char *err) {
  if (sc->err == NULL) sc->err = err;
  return -1;
}

static void skip_space(scanner *sc) {
  while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\r' || *sc->p == '\n'))
    sc->p++;
}

/* At '"': past the closing quote; *plain as for span. */
static int skip_string(scanner *sc, int *plain) {
  const char *p = sc->p + 1;
  int pl = 1;
  while (p < sc->end) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') {
      sc->p = p + 1;
      if (plain) *plain = pl;
      return 0;
    }
    if (c == '\\') {
      pl = 0;
      p += 2;
      continue;
    }
    if (c < 0x20 || c > 0x7E) pl = 0;
    p++;
  }
  return scan_fail(sc, "unterminated string");
}

/* At '"', when whether it is plain does not matter (most of a line is
 * strings: this is the loop that counts). */
static unsigned char string_stop[256];     /* '"' and '\\': the bytes that end a run */

static int skip_string_fast(scanner *sc) {
  const unsigned char *p = (const unsigned char *)sc->p + 1, *end = (const unsigned char *)sc->end;
  for (;;) {
    while (p + 4 <= end && !(string_stop[p[0]] | string_stop[p[1]] | string_stop[p[2]] | string_stop[p[3]]))
      p += 4;
    while (p < end && !string_stop[*p]) p++;
    if (p >= end) return scan_fail(sc, "unterminated string");
    if (*p == '"') {
      sc->p = (const char *)p + 1;
      return 0;
    }
    p += 2;                                 /* a backslash and what it escapes */
  }
}

/* Past one value. Only the structure is checked (what is kept is decoded,
 * and checked, by the JSON decoder). */
static int skip_value(scanner *sc, int depth, int *plain) {
  skip_space(sc);
  if (plain) *plain = 0;
  if (sc->p >= sc->end) return scan_fail(sc, "unexpected end of line");
  char c = *sc->p;
  if (c == '"') return plain ? skip_string(sc, plain) : skip_string_fast(sc);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    if (depth >= MAX_DEPTH) return scan_fail(sc, "nested too deeply");
    sc->p++;
    skip_space(sc);
    if (sc->p < sc->end && *sc->p == close) {
      sc->p++;
      return 0;
    }
    for (;;) {
      if (c == '{') {
        skip_space(sc);
        if (sc->p >= sc->end || *sc->p != '"') return scan_fail(sc, "expected a member name");
        if (skip_string_fast(sc)) return -1;
        skip_space(sc);
        if (sc->p >= sc->end || *sc->p != ':') return scan_fail(sc, "expected ':'");
        sc->p++;
      }
      if (skip_value(sc, depth + 1, NULL)) return -1;
      skip_space(sc);
      if (sc->p >= sc->end) return scan_fail(sc, "unexpected end of line");
      if (*sc->p == ',') {
        sc->p++;
        continue;
      }
      if (*sc->p == close) {
        sc->p++;
        return 0;
      }
      return scan_fail(sc, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  const char *q = sc->p;       /* a number or a literal */
  while (q < sc->end && ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                         *q == '-' || *q == '+' || *q == '.' || *q == 'E'))
    q++;
  if (q == sc->p) return scan_fail(sc, "unexpected character");
  sc->p = q;
  return 0;
}

/* The members of the object at sc->p ('{'), one call of fn per member;
 * fn returns non-zero to stop with an error. */
typedef int (*member_fn)(lua_State *L, void *ud, span key, span value);

static int each_member(lua_State *L, scanner *sc, member_fn fn, void *ud) {
  skip_space(sc);
  if (sc->p >= sc->end || *sc->p != '{') return scan_fail(sc, "expected an object");
  sc->p++;
  skip_space(sc);
  if (sc->p < sc->end && *sc->p == '}') {
    sc->p++;
    return 0;
  }
  for (;;) {
    span key, value;
    skip_space(sc);
    if (sc->p >= sc->end || *sc->p != '"') return scan_fail(sc, "expected a member name");
    key.s = sc->p;
    if (skip_string(sc, &key.plain)) return -1;
    key.n = (size_t)(sc->p - key.s);
    skip_space(sc);
    if (sc->p >= sc->end || *sc->p != ':') return scan_fail(sc, "expected ':'");
    sc->p++;
    skip_space(sc);
    value.s = sc->p;
    if (skip_value(sc, 1, &value.plain)) return -1;
    value.n = (size_t)(sc->p - value.s);
    if (fn(L, ud, key, value)) return -1;
    skip_space(sc);
    if (sc->p >= sc->end) return scan_fail(sc, "unexpected end of line");
    if (*sc->p == ',') {
      sc->p++;
      continue;
    }
    if (*sc->p == '}') {
      sc->p++;
      return 0;
    }
    return scan_fail(sc, "expected ',' or '}'");
  }
}

static int span_is(span k, const char *name) {
  size_t n = strlen(name);
  return k.plain && k.n == n + 2 && memcmp(k.s + 1, name, n) == 0;
}

/* ------------------------------------------------------------ values */

typedef struct {
  int decode;              /* stack index of the decode function */
  scanner *sc;             /* for errors */
} ctx;

/* decode(text) pushed; 0, or -1 with the message in c->sc->err (a static
 * string is not possible: the message is left on the stack under nil). */
static int push_decoded(lua_State *L, ctx *c, const char *s, size_t n) {
  lua_pushvalue(L, c->decode);
  lua_pushlstring(L, s, n);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    lua_pushnil(L);                                   /* [msg, nil] */
    lua_insert(L, -2);                                /* [nil, msg] */
    return scan_fail(c->sc, "undecodable");
  }
  if (lua_isnil(L, -2)) return scan_fail(c->sc, "undecodable");   /* [nil, msg] */
  lua_pop(L, 1);                                      /* [value] */
  return 0;
}

/* Push the value of span v; returns 1 when pushed, 0 for null (nothing
 * pushed), -1 on error (a decode failure leaves [nil, msg]). */
static int push_value(lua_State *L, ctx *c, span v) {
  if (v.plain) {
    lua_pushlstring(L, v.s + 1, v.n - 2);
    return 1;
  }
  if (v.n == 4 && memcmp(v.s, "null", 4) == 0) return 0;
  if (v.n == 4 && memcmp(v.s, "true", 4) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (v.n == 5 && memcmp(v.s, "false", 5) == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (v.n > 0 && v.n <= 18 && (v.s[0] == '-' || (v.s[0] >= '0' && v.s[0] <= '9'))) {
    size_t i = v.s[0] == '-' ? 1 : 0;
    lua_Integer x = 0;
    int digits = i < v.n;
    for (; i < v.n && digits; i++) {
      if (v.s[i] < '0' || v.s[i] > '9') digits = 0;
      else x = x * 10 + (v.s[i] - '0');
    }
    if (digits) {
      lua_pushinteger(L, v.s[0] == '-' ? -x : x);
      return 1;
    }
  }
  return push_decoded(L, c, v.s, v.n) ? -1 : 1;
}

static int push_key(lua_State *L, ctx *c, span k) {
  if (k.plain) {
    lua_pushlstring(L, k.s + 1, k.n - 2);
    return 0;
  }
  return push_decoded(L, c, k.s, k.n);
}

/* Set table[-1][key] = value unless the value is null. */
static int set_member(lua_State *L, ctx *c, span key, span value) {
  int t = lua_gettop(L);
  if (push_key(L, c, key)) return -1;
  int got = push_value(L, c, value);
  if (got < 0) return -1;
  if (got == 0) lua_settop(L, t);
  else lua_rawset(L, t);
  return 0;
}

/* ---------------------------------------------------- resource events */

typedef struct {
  ctx *c;
  span new_state;
} meta_ud;

/* The members of metadata that are kept (besides the stack's new). */
static int kept_metadata(span key) {
  return span_is(key, "op") || span_is(key, "urn") || span_is(key, "type") ||
         span_is(key, "keys") || span_is(key, "diffs") || span_is(key, "detailedDiff") ||
         span_is(key, "logical");
}

static int metadata_member(lua_State *L, void *ud, span key, span value) {
  meta_ud *m = (meta_ud *)ud;
  if (span_is(key, "new")) {
    m->new_state = value;
    return 0;
  }
  if (!kept_metadata(key)) return 0;
  return set_member(L, m->c, key, value);
}

/* Push the metadata object at value, old/new left out but the stack's new. */
static int push_metadata(lua_State *L, ctx *c, span value) {
  scanner sc = { value.s, value.s + value.n, NULL };
  meta_ud m = { c, { NULL, 0, 0 } };
  lua_createtable(L, 0, 8);
  if (each_member(L, &sc, metadata_member, &m)) {
    c->sc->err = sc.err;
    return -1;
  }
  if (m.new_state.s && m.new_state.s[0] == '{') {
    lua_getfield(L, -1, "type");
    int is_stack = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "pulumi:pulumi:Stack") == 0;
    lua_pop(L, 1);
    if (is_stack) {
      if (push_decoded(L, c, m.new_state.s, m.new_state.n)) return -1;
      lua_setfield(L, -2, "new");
    }
  }
  return 0;
}

static int resource_member(lua_State *L, void *ud, span key, span value) {
  ctx *c = (ctx *)ud;
  if (span_is(key, "metadata") && value.s[0] == '{') {
    if (push_metadata(L, c, value)) return -1;
    lua_setfield(L, -2, "metadata");
    return 0;
  }
  return set_member(L, c, key, value);
}

static int is_resource_kind(span k) {
  return span_is(k, "resourcePreEvent") || span_is(k, "resOutputsEvent") ||
         span_is(k, "resOpFailedEvent");
}

/* ---------------------------------------------------------- one line */

typedef struct {
  span kind, body;
  int kinds;
  lua_Integer sequence, timestamp;
  int has_sequence, has_timestamp;
} top_ud;

static int top_member(lua_State *L, void *ud, span key, span value) {
  top_ud *t = (top_ud *)ud;
  (void)L;
  if (span_is(key, "sequence") || span_is(key, "timestamp")) {
    lua_Integer x = 0;
    int neg = value.n > 0 && value.s[0] == '-';
    for (size_t i = neg; i < value.n; i++) {
      if (value.s[i] < '0' || value.s[i] > '9' || i > 18) return 0;   /* not an integer: ignored */
      x = x * 10 + (value.s[i] - '0');
    }
    if (neg) x = -x;
    if (key.s[1] == 's') { t->sequence = x; t->has_sequence = 1; }
    else { t->timestamp = x; t->has_timestamp = 1; }
    return 0;
  }
  t->kind = key;
  t->body = value;
  t->kinds++;
  return 0;
}

/* Push the { kind = "invalid", ... } event for line s (n bytes). */
static void push_invalid(lua_State *L, const char *err, const char *s, size_t n) {
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, "invalid");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, err);
  lua_setfield(L, -2, "error");
  lua_pushlstring(L, s, n < SHOWN_LINE ? n : SHOWN_LINE);
  lua_setfield(L, -2, "line");
}

/* Append the event of line s (n bytes, no newline) to the list at list;
 * a blank line adds nothing. */
static void add_line(lua_State *L, int list, int decode, const char *s, size_t n) {
  int top = lua_gettop(L);
  scanner sc = { s, s + n, NULL };
  skip_space(&sc);
  if (sc.p == sc.end) return;
  top_ud t;
  memset(&t, 0, sizeof t);
  ctx c = { decode, &sc };
  int failed = each_member(L, &sc, top_member, &t);
  if (!failed) {
    skip_space(&sc);
    if (sc.p != sc.end) failed = scan_fail(&sc, "unexpected data after the event");
    else if (t.kinds != 1 || !t.kind.plain)
      failed = scan_fail(&sc, t.kinds == 0 ? "no event in the object" : "more than one event in the object");
  }
  if (!failed) {
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, t.kind.s + 1, t.kind.n - 2);
    lua_setfield(L, -2, "kind");
    if (t.has_sequence) {
      lua_pushinteger(L, t.sequence);
      lua_setfield(L, -2, "sequence");
    }
    if (t.has_timestamp) {
      lua_pushinteger(L, t.timestamp);
      lua_setfield(L, -2, "timestamp");
    }
    if (is_resource_kind(t.kind) && t.body.s[0] == '{') {
      scanner body = { t.body.s, t.body.s + t.body.n, NULL };
      c.sc = &body;
      lua_createtable(L, 0, 4);
      failed = each_member(L, &body, resource_member, &c);
      if (failed) sc.err = body.err;
    } else {
      failed = push_decoded(L, &c, t.body.s, t.body.n);
    }
    if (!failed) lua_setfield(L, -2, "body");
  }
  if (failed) {
    /* a decoder's own message, when it left one on the stack */
    const char *why = sc.err;
    if (lua_gettop(L) > top && lua_type(L, -1) == LUA_TSTRING) why = lua_tostring(L, -1);
    why = lua_pushstring(L, why ? why : "not an event");
    push_invalid(L, why, s, n);
    lua_replace(L, top + 1);
  }
  lua_settop(L, top + 1);
  lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
}

/* ------------------------------------------------------------ the API */

static event_log *check_log(lua_State *L) {
  return (event_log *)luaL_checkudata(L, 1, EVENTLOG_MT);
}

/* event_log(path, decode) -> EventLog */
static int pulumi_event_log(lua_State *L) {
  sw_check_cstring(L, 1, "_pulumi.event_log", "path");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  event_log *e = (event_log *)lua_newuserdatauv(L, sizeof *e, 2);
  memset(e, 0, sizeof *e);
  e->fd = -1;
  luaL_setmetatable(L, EVENTLOG_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

static int read_fail(lua_State *L, int err) {
  lua_getiuservalue(L, 1, 1);
  char path[512];
  snprintf(path, sizeof path, "%s", lua_tostring(L, -1));
  return sw_push_errno(L, err, path);
}

/* log:read([final]) -> { event... } | nil, msg, code */
static int log_read(lua_State *L) {
  event_log *e = check_log(L);
  int final = lua_toboolean(L, 2);
  if (e->closed) return luaL_error(L, "EventLog:read: the log is closed");
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 2);                         /* 2: decode */
  lua_newtable(L);                                    /* 3: the events */
  if (e->fd < 0) {
    lua_getiuservalue(L, 1, 1);
    e->fd = open(lua_tostring(L, -1), O_RDONLY | O_CLOEXEC);
    lua_pop(L, 1);
    if (e->fd < 0) {
      if (errno == ENOENT) return 1;                  /* not created yet */
      return read_fail(L, errno);
    }
  }
  size_t taken = 0;
  int at_end = 0;             /* read() said there is no more: final applies */
  int line_ends = e->len > e->scanned && memchr(e->buf + e->scanned, '\n', e->len - e->scanned) != NULL;
  while (taken < MAX_READ || !line_ends) {
    if (e->cap - e->len < 65536) {
      size_t cap = e->cap ? e->cap * 2 : 131072;
      char *nb = (char *)realloc(e->buf, cap);
      if (nb == NULL) return read_fail(L, ENOMEM);
      e->buf = nb;
      e->cap = cap;
    }
    ssize_t got = read(e->fd, e->buf + e->len, e->cap - e->len);
    if (got < 0) {
      if (errno == EINTR) continue;
      return read_fail(L, errno);
    }
    if (got == 0) {
      at_end = 1;
      break;
    }
    if (!line_ends) line_ends = memchr(e->buf + e->len, '\n', (size_t)got) != NULL;
    e->len += (size_t)got;
    taken += (size_t)got;
    if (e->len > MAX_LINE + MAX_READ) break;     /* the EFBIG check below */
  }
  size_t start = 0;
  for (;;) {
    char *nl = (char *)memchr(e->buf + e->scanned, '\n', e->len - e->scanned);
    if (nl == NULL) break;
    size_t end = (size_t)(nl - e->buf);
    add_line(L, 3, 2, e->buf + start, end - start);
    start = e->scanned = end + 1;
  }
  if (final && at_end && start < e->len) {
    add_line(L, 3, 2, e->buf + start, e->len - start);
    start = e->len;
  }
  e->len -= start;
  if (e->len > 0 && start > 0) memmove(e->buf, e->buf + start, e->len);
  e->scanned = e->len;
  if (e->len > MAX_LINE) {
    e->len = e->scanned = 0;
    lua_pushnil(L);
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "EFBIG: an event longer than 64 MiB in %s", lua_tostring(L, -1));
    lua_pushliteral(L, "EFBIG");
    return 3;
  }
  return 1;
}

static void release(event_log *e) {
  if (e->fd >= 0) close(e->fd);
  e->fd = -1;
  free(e->buf);
  e->buf = NULL;
  e->len = e->cap = e->scanned = 0;
  e->closed = 1;
}

static int log_close(lua_State *L) {
  release(check_log(L));
  return 0;
}

static int log_gc(lua_State *L) {
  release(check_log(L));
  return 0;
}

static const luaL_Reg log_methods[] = {
  {"read", log_read},
  {"close", log_close},
  {NULL, NULL}
};

static const luaL_Reg pulumi_funcs[] = {
  {"event_log", pulumi_event_log},
  {NULL, NULL}
};

int luaopen_slipway__pulumi(lua_State *L) {
  string_stop['"'] = string_stop['\\'] = 1;
  if (luaL_newmetatable(L, EVENTLOG_MT)) {
    luaL_newlib(L, log_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, log_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, pulumi_funcs);
  return 1;
}
