/*
 * probe.c: slipway._probe, the network half of health probes. The policy
 * (retries, deadlines, thresholds, verdicts) lives in stdlib/probe.lua
 * (module slipway.probe); HTTP probes go through slipway.http.
 *
 *   _probe.tcp(host, port [, timeout_ms]) -> {latency_ms = N, address = "ip"}
 *       | nil, "ECONNREFUSED: connection refused: host:port", "ECONNREFUSED"
 *
 * A TCP probe resolves host (uv_getaddrinfo; skipped for IP literals),
 * connects to each address in turn until one accepts, and closes the
 * connection at once. One timer bounds the whole attempt (0 = no limit).
 * Codes: ECONNREFUSED, ETIMEDOUT ("timeout after 2s"), EDNS, or the libuv
 * error name (EHOSTUNREACH, ENETUNREACH...).
 *
 * Lifetime: a probe is one malloc'ed struct owning its timer, the tcp handle
 * of the current connect, the connect request and the getaddrinfo request;
 * `pending` counts those still open or in flight, and the struct is freed
 * by the callback that brings it to zero. The task is woken once (finish);
 * a cancelled probe only closes what is open.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

typedef struct tcp_probe {
  sw_op op;
  uv_timer_t timer;
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_getaddrinfo_t resolve;
  struct addrinfo *addrs, *next_addr;
  struct sockaddr_storage literal;
  int pending;             /* open handles + requests in flight */
  int finished;            /* woken, failed synchronously, or cancelled */
  int tcp_open;
  int resolving;
  double timeout_ms;
  uint64_t start_ns;
  int last_error;          /* libuv error of the last failed connect */
  const char *code;        /* set when failed */
  char msg[512];
  char target[300];        /* host:port for messages */
  char address[64];        /* the address that answered */
} tcp_probe;

static void probe_release(tcp_probe *p) {
  if (--p->pending > 0) return;
  if (p->addrs) uv_freeaddrinfo(p->addrs);
  free(p);
}

static void on_handle_closed(uv_handle_t *h) {
  probe_release((tcp_probe *)h->data);
}

/* Close what is open; the struct goes when the last callback has run. */
static void probe_stop(tcp_probe *p) {
  p->finished = 1;
  if (!uv_is_closing((uv_handle_t *)&p->timer)) {
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
  }
  if (p->tcp_open) {
    p->tcp_open = 0;
    uv_close((uv_handle_t *)&p->tcp, on_handle_closed);  /* a pending connect gets ECANCELED */
  }
  if (p->resolving) uv_cancel((uv_req_t *)&p->resolve);   /* its callback still runs */
}

static void finish_ok(tcp_probe *p) {
  lua_State *co = sw_op_thread(&p->op);
  if (co) {
    lua_createtable(co, 0, 2);
    lua_pushnumber(co, (double)(uv_hrtime() - p->start_ns) / 1e6);
    lua_setfield(co, -2, "latency_ms");
    lua_pushstring(co, p->address);
    lua_setfield(co, -2, "address");
    sw_op_done(&p->op, 1);
  }
  probe_stop(p);
}

/* Record the failure and wake the task (if it is already parked; a failure
 * before sw_await is returned by probe_tcp itself). */
static void finish_fail(tcp_probe *p, const char *code, const char *what) {
  p->code = code;
  snprintf(p->msg, sizeof p->msg, "%s: %s: %s", code, what, p->target);
  sw_op_fail(&p->op, p->msg, code);
  probe_stop(p);
}

static void finish_uverror(tcp_probe *p, int err) {
  if (err == UV_ECONNREFUSED) finish_fail(p, "ECONNREFUSED", "connection refused");
  else finish_fail(p, uv_err_name(err), uv_strerror(err));
}

static void start_connect(tcp_probe *p, const struct sockaddr *addr);
static void on_tcp_closed_then_next(uv_handle_t *h);

static void skip_unusable(tcp_probe *p) {
  while (p->next_addr && p->next_addr->ai_family != AF_INET && p->next_addr->ai_family != AF_INET6)
    p->next_addr = p->next_addr->ai_next;
}

static void on_connect(uv_connect_t *req, int status) {
  tcp_probe *p = (tcp_probe *)req->data;
  if (!p->finished) {
    if (status == 0) {
      finish_ok(p);
    } else {
      p->last_error = status;
      skip_unusable(p);
      if (p->next_addr) {            /* another address may answer: the tcp */
        p->tcp_open = 0;             /* struct is reused once it has closed */
        uv_close((uv_handle_t *)&p->tcp, on_tcp_closed_then_next);
      } else {
        finish_uverror(p, status);
      }
    }
  }
  probe_release(p);                  /* the connect request */
}

static void on_tcp_closed_then_next(uv_handle_t *h) {
  tcp_probe *p = (tcp_probe *)h->data;
  if (!p->finished) {
    struct addrinfo *a = p->next_addr;
    p->next_addr = a->ai_next;
    start_connect(p, a->ai_addr);
  }
  probe_release(p);                  /* the old tcp handle */
}

/* Connect to addr with a fresh tcp handle. */
static void start_connect(tcp_probe *p, const struct sockaddr *addr) {
  uv_ip_name(addr, p->address, sizeof p->address);
  uv_tcp_init(sw_loop(), &p->tcp);
  p->tcp.data = p;
  p->tcp_open = 1;
  p->pending++;                      /* the tcp handle */
  p->connect.data = p;
  int err = uv_tcp_connect(&p->connect, &p->tcp, addr, on_connect);
  if (err != 0) {
    p->last_error = err;
    finish_uverror(p, err);
    return;
  }
  p->pending++;                      /* the connect request */
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  tcp_probe *p = (tcp_probe *)req->data;
  p->resolving = 0;
  p->addrs = res;
  if (!p->finished) {
    if (status != 0) {
      finish_fail(p, "EDNS", "cannot resolve host");
    } else {
      p->next_addr = res;
      skip_unusable(p);
      if (p->next_addr == NULL) {
        finish_fail(p, "EDNS", "no IPv4 or IPv6 address for host");
      } else {
        struct addrinfo *a = p->next_addr;
        p->next_addr = a->ai_next;
        start_connect(p, a->ai_addr);
      }
    }
  }
  probe_release(p);                  /* the getaddrinfo request */
}

static void on_timeout(uv_timer_t *t) {
  tcp_probe *p = (tcp_probe *)t->data;
  char dur[40], what[64];
  sw_format_duration(p->timeout_ms, dur, sizeof dur);
  snprintf(what, sizeof what, "timeout after %s", dur);
  finish_fail(p, "ETIMEDOUT", what);
}

static void probe_cancel(sw_op *op) {
  probe_stop((tcp_probe *)op);
}

/* tcp(host, port [, timeout_ms]) -> {latency_ms, address} | nil, msg, CODE */
static int probe_tcp(lua_State *L) {
  const char *host = sw_check_cstring(L, 1, "probe.tcp", "host");
  lua_Integer port = luaL_checkinteger(L, 2);
  double timeout = luaL_optnumber(L, 3, 5000);
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be 1-65535");
  luaL_argcheck(L, sw_duration_problem(timeout) == NULL, 3, "timeout must be 0 to 100 years (in ms)");
  luaL_argcheck(L, *host != '\0', 1, "empty host");
  sw_check_task(L, "probe.tcp");
  tcp_probe *p = (tcp_probe *)calloc(1, sizeof *p);
  if (p == NULL) return luaL_error(L, "probe.tcp: out of memory");
  p->op.what = "probe.tcp";
  p->op.cancel = probe_cancel;
  p->timeout_ms = timeout;
  snprintf(p->target, sizeof p->target, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, (int)port);
  uv_update_time(sw_loop());         /* the loop clock is stale while tasks run */
  p->start_ns = uv_hrtime();
  uv_timer_init(sw_loop(), &p->timer);
  p->timer.data = p;
  p->pending = 1;                    /* the timer */
  if (timeout > 0) uv_timer_start(&p->timer, on_timeout, (uint64_t)timeout, 0);

  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&p->literal) == 0 ||
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&p->literal) == 0) {
    start_connect(p, (struct sockaddr *)&p->literal);    /* no resolver thread */
  } else {
    struct addrinfo hints;
    char portstr[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%d", (int)port);
    p->resolve.data = p;
    p->resolving = 1;
    p->pending++;                    /* the getaddrinfo request */
    if (uv_getaddrinfo(sw_loop(), &p->resolve, on_resolved, host, portstr, &hints) != 0) {
      p->resolving = 0;
      p->pending--;
      finish_fail(p, "EDNS", "cannot resolve host");
    }
  }
  if (p->finished) {                 /* failed before we could park */
    lua_pushnil(L);
    lua_pushstring(L, p->msg);
    lua_pushstring(L, p->code);
    return 3;
  }
  return sw_await(L, &p->op);
}

/* trim() -> gives the heap's free memory back to the system (after a big
 * batch of probes, whose plans and results were collected) */
static int probe_trim(lua_State *L) {
  lua_pushboolean(L, malloc_trim(0));
  return 1;
}

static const luaL_Reg probe_funcs[] = {
  {"tcp", probe_tcp},
  {"trim", probe_trim},
  {NULL, NULL}
};

int luaopen_slipway__probe(lua_State *L) {
  /* libuv opens one spare fd per loop (for EMFILE handling) with the first
   * stream handle; open it now, so the first probe does not look like an
   * fd leak to the leak checks. */
  static uv_tcp_t first_stream;
  if (first_stream.loop == NULL) {
    uv_tcp_init(sw_loop(), &first_stream);
    uv_close((uv_handle_t *)&first_stream, NULL);
  }
  luaL_newlib(L, probe_funcs);
  return 1;
}
