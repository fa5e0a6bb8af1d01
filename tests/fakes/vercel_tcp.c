/*
 * vercel_tcp.c: a TCP server for the tests' stand-in Vercel API
 * (tests/fakes/vercel_api.lua), as a Lua C module that the slipway binary
 * loads: slipway itself only has an HTTP client. It runs on slipway's own
 * loop and parks tasks through its await bridge (src/await.h: the binary
 * exports those functions), so the stand-in's Lua serves many connections
 * at once, each in a task of its own.
 *
 *   local tcp = package.loadlib(so, "luaopen_vercel_tcp")()
 *   local server, port = tcp.listen("127.0.0.1", 0)
 *   server:accept()   -> conn                      (awaits)
 *   conn:read()       -> bytes | nil (end) | nil, err  (awaits)
 *   conn:write(bytes)      queued; written in order
 *   conn:close()           after what was written (FIN)
 *   conn:reset()           at once, with a RST (SO_LINGER 0)
 *   server:close()
 *   tcp.setenv(name, value | nil)   for the spec's own process: point
 *                                   VERCEL_API_URL at the stand-in
 *
 * Built by tests/fakes/vercel_standin.lua with cc -shared; test code only.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <lua.h>
#include <lauxlib.h>
#include <uv.h>
#include "await.h"

#define READ_HIGH (4 << 20)   /* stop reading while this much waits for Lua */

typedef struct conn {
  sw_op rop;                  /* a task parked in read() */
  uv_tcp_t tcp;
  int closing, eof, err, reading, waiting;
  char *buf;
  size_t len, cap;
} conn;

typedef struct server {
  sw_op aop;                  /* a task parked in accept() */
  uv_tcp_t tcp;
  int closing, waiting;
  conn **q;                   /* accepted, not yet taken */
  int nq, capq;
} server;

static void free_on_close(uv_handle_t *h) {
  conn *c = (conn *)h->data;
  free(c->buf);
  free(c);
}

static void server_closed(uv_handle_t *h) {
  free(h->data);
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, free_on_close);
}

/* ---------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  conn *c = (conn *)h->data;
  if (c->cap - c->len < 65536) {
    size_t cap = c->cap ? c->cap * 2 : 65536;
    while (cap - c->len < 65536) cap *= 2;
    char *nb = (char *)realloc(c->buf, cap);
    if (nb == NULL) { b->base = NULL; b->len = 0; return; }
    c->buf = nb;
    c->cap = cap;
  }
  b->base = c->buf + c->len;
  b->len = c->cap - c->len;
}

static void deliver(conn *c) {
  if (!c->waiting) return;
  lua_State *T = sw_op_thread(&c->rop);
  int n = 1;
  if (c->len > 0) {
    lua_pushlstring(T, c->buf, c->len);
    c->len = 0;
  } else if (c->err) {
    lua_pushnil(T);
    lua_pushstring(T, uv_strerror(c->err));
    n = 2;
  } else {
    lua_pushnil(T);
  }
  c->waiting = 0;
  sw_op_done(&c->rop, n);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *c = (conn *)s->data;
  if (n > 0) c->len += (size_t)n;
  else if (n == UV_EOF) c->eof = 1;
  else if (n < 0) c->err = (int)n;
  if (c->eof || c->err || c->len >= READ_HIGH) {
    uv_read_stop(s);
    c->reading = 0;
  }
  if (c->len > 0 || c->eof || c->err) deliver(c);
}

static void read_cancel(sw_op *op) {
  conn *c = (conn *)op;
  c->waiting = 0;
}

static conn *check_conn(lua_State *L) {
  conn **box = (conn **)luaL_checkudata(L, 1, "vercel_tcp.Conn");
  if (*box == NULL) luaL_error(L, "connection closed");
  return *box;
}

static int conn_read(lua_State *L) {
  conn *c = check_conn(L);
  if (c->len > 0) {
    lua_pushlstring(L, c->buf, c->len);
    c->len = 0;
    return 1;
  }
  if (c->err) {
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(c->err));
    return 2;
  }
  if (c->eof) {
    lua_pushnil(L);
    return 1;
  }
  if (!c->reading) {
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
  sw_check_task(L, "conn:read");
  c->waiting = 1;
  c->rop.what = "conn:read";
  c->rop.cancel = read_cancel;
  return sw_await(L, &c->rop);
}

/* ---------------------------------------------------------- writing */

typedef struct {
  uv_write_t req;
  char data[];
} wreq;

static void on_written(uv_write_t *req, int status) {
  free(req);
}

static int conn_write(lua_State *L) {
  conn *c = check_conn(L);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  wreq *w = (wreq *)malloc(sizeof *w + n);
  if (w == NULL) return luaL_error(L, "out of memory");
  memcpy(w->data, s, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc < 0) {
    free(w);
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = (conn *)req->data;
  free(req);
  conn_close(c);
}

static conn *take_conn(lua_State *L) {
  conn **box = (conn **)luaL_checkudata(L, 1, "vercel_tcp.Conn");
  conn *c = *box;
  *box = NULL;
  return c;
}

static int conn_close_l(lua_State *L) {
  conn *c = take_conn(L);
  if (c == NULL || c->closing) return 0;
  uv_shutdown_t *req = (uv_shutdown_t *)malloc(sizeof *req);
  if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
    free(req);
    conn_close(c);
    return 0;
  }
  req->data = c;
  return 0;
}

static int conn_reset(lua_State *L) {
  conn *c = take_conn(L);
  if (c == NULL || c->closing) return 0;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  conn_close(c);
  return 0;
}

static int conn_gc(lua_State *L) {
  conn *c = take_conn(L);
  if (c) conn_close(c);
  return 0;
}

/* ---------------------------------------------------------- server */

static void push_conn(lua_State *T, conn *c) {
  conn **box = (conn **)lua_newuserdatauv(T, sizeof *box, 0);
  *box = c;
  luaL_setmetatable(T, "vercel_tcp.Conn");
}

static void on_connection(uv_stream_t *s, int status) {
  server *sv = (server *)s->data;
  if (status < 0) return;
  conn *c = (conn *)calloc(1, sizeof *c);
  if (c == NULL) return;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(s, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (sv->waiting) {
    sv->waiting = 0;
    push_conn(sw_op_thread(&sv->aop), c);
    sw_op_done(&sv->aop, 1);
    return;
  }
  if (sv->nq == sv->capq) {
    int cap = sv->capq ? sv->capq * 2 : 16;
    conn **q = (conn **)realloc(sv->q, (size_t)cap * sizeof *q);
    if (q == NULL) { conn_close(c); return; }
    sv->q = q;
    sv->capq = cap;
  }
  sv->q[sv->nq++] = c;
}

static void accept_cancel(sw_op *op) {
  ((server *)op)->waiting = 0;
}

static server *check_server(lua_State *L) {
  server **box = (server **)luaL_checkudata(L, 1, "vercel_tcp.Server");
  if (*box == NULL) luaL_error(L, "server closed");
  return *box;
}

static int server_accept(lua_State *L) {
  server *sv = check_server(L);
  if (sv->nq > 0) {
    conn *c = sv->q[0];
    memmove(sv->q, sv->q + 1, (size_t)(--sv->nq) * sizeof *sv->q);
    push_conn(L, c);
    return 1;
  }
  sw_check_task(L, "server:accept");
  sv->waiting = 1;
  sv->aop.what = "server:accept";
  sv->aop.cancel = accept_cancel;
  return sw_await(L, &sv->aop);
}

static int server_close(lua_State *L) {
  server **box = (server **)luaL_checkudata(L, 1, "vercel_tcp.Server");
  server *sv = *box;
  *box = NULL;
  if (sv == NULL) return 0;
  for (int i = 0; i < sv->nq; i++) conn_close(sv->q[i]);
  free(sv->q);
  sv->q = NULL;
  sv->nq = 0;
  sv->tcp.data = sv;
  uv_close((uv_handle_t *)&sv->tcp, server_closed);
  return 0;
}

static int tcp_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  struct sockaddr_in addr;
  if (uv_ip4_addr(host, port, &addr) != 0) return luaL_error(L, "bad address %s", host);
  server *sv = (server *)calloc(1, sizeof *sv);
  if (sv == NULL) return luaL_error(L, "out of memory");
  uv_tcp_init(sw_loop(), &sv->tcp);
  sv->tcp.data = sv;
  int rc = uv_tcp_bind(&sv->tcp, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&sv->tcp, 511, on_connection);
  if (rc != 0) {
    uv_close((uv_handle_t *)&sv->tcp, server_closed);
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(rc));
    return 2;
  }
  struct sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&sv->tcp, (struct sockaddr *)&bound, &len);
  server **box = (server **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = sv;
  luaL_setmetatable(L, "vercel_tcp.Server");
  lua_pushinteger(L, ntohs(bound.sin_port));
  return 2;
}

static int tcp_setenv(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (lua_isnoneornil(L, 2)) unsetenv(name);
  else setenv(name, luaL_checkstring(L, 2), 1);
  return 0;
}

static const luaL_Reg conn_methods[] = {
  {"read", conn_read}, {"write", conn_write}, {"close", conn_close_l}, {"reset", conn_reset},
  {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"accept", server_accept}, {"close", server_close}, {NULL, NULL}
};

int luaopen_vercel_tcp(lua_State *L) {
  luaL_newmetatable(L, "vercel_tcp.Conn");
  luaL_newlib(L, conn_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, conn_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newmetatable(L, "vercel_tcp.Server");
  luaL_newlib(L, server_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 2);
  lua_newtable(L);
  lua_pushcfunction(L, tcp_listen);
  lua_setfield(L, -2, "listen");
  lua_pushcfunction(L, tcp_setenv);
  lua_setfield(L, -2, "setenv");
  return 1;
}
