/*
 * http.c: slipway.http, HTTP(S) requests on the event loop.
 *
 * libcurl's multi interface is driven by libuv: curl tells us which sockets
 * to watch (CURLMOPT_SOCKETFUNCTION -> one uv_poll per socket) and when to
 * call it back (CURLMOPT_TIMERFUNCTION -> one uv_timer), and those watchers
 * call curl_multi_socket_action. One multi handle is shared by every
 * request, so connections (TCP, TLS, unix socket) are reused.
 *
 * libcurl is not linked into the binary: linking it loads dozens of shared
 * libraries at start-up. It is opened on the first require (lazylib.h) and
 * called through the function table `C`.
 *
 * No Lua runs inside a curl or libuv callback. Callbacks only fill C
 * buffers and wake the parked task with sw_op_done(op, 0); the task itself
 * (request_k, running as the task) turns those buffers into Lua values,
 * calls on_body, and parks again. A request is a full userdata anchored on
 * the task's stack, so its memory belongs to the GC; the curl easy handle,
 * header list and upload file are released by request_release() when the
 * request finishes, fails, raises or is cancelled.
 *
 * The module (awaiting functions run inside a task):
 *
 *   http.request{url = ..., method, headers = {name = value}, body | body_file,
 *                unix_socket, timeout (default 30s, 0 = none), connect_timeout
 *                (default 10s), tls_verify (default true), ca, cert, key,
 *                follow_redirects (default false), max_redirects (10), on_body,
 *                response_headers (default true; false: no `headers` field,
 *                for callers that only look at status and body),
 *                response_body (default true; false: the body is read and
 *                dropped, no `body` field, for callers that only look at
 *                the status), max_body (bytes, default 64 MiB: the most of
 *                a body kept for the result; on_body and response_body =
 *                false keep none, so it does not apply to them)}
 *     url, header values and body may be Secrets (slipway.secret): their
 *     plain text is sent; errors show a password in the URL as ***
 *   http.request(url, opts)   -- the same, url given first
 *     -> {status, headers = {lower-case name = value}, body, time_ms, url}
 *        (body is nil when on_body(chunk) took it; a status >= 400 is data)
 *     -> nil, "ECONNREFUSED: connection refused: http://...", "ECONNREFUSED"
 *        codes: ECONNREFUSED ETIMEDOUT ECERT EDNS ECONNRESET EINVAL ECANCELED
 *        EHTTP (and ENOENT... for a body_file that cannot be opened);
 *        EBODYTOOLARGE for a body beyond max_body (announced by its
 *        Content-Length or found while it arrives: the transfer stops);
 *        EHEADERSTOOLARGE for response headers beyond 256 KiB (all the
 *        responses of the request together: redirects, 1xx); ENOMEM
 *     raises on caller mistakes: unknown option, wrong type, outside a task,
 *        a method that is not an HTTP token (RFC 7230: letters, digits and
 *        !#$%&'*+-.^_`|~), a header name that is not one, a header value
 *        with CR or LF, a string with a NUL byte
 *   http.close_idle()  -- close the pooled idle connections (when nothing
 *                         runs); leak checks call it
 *   http.stats()       -- {running, sockets, pauses}
 *   http.curl_version  -- libcurl's version string
 *
 * on_body runs in the task, between chunks; when it falls more than 1 MiB
 * behind, the transfer is paused (CURL_WRITEFUNC_PAUSE) until it catches up.
 */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "slipway.h"
#include "lazylib.h"

#define REQUEST_MT "slipway.HttpRequest"
#define STREAM_PAUSE_BYTES (1 << 20)    /* pause a streamed body beyond this */
#define DEFAULT_TIMEOUT_MS 30000.0
#define DEFAULT_CONNECT_TIMEOUT_MS 10000.0
#define DEFAULT_MAX_BODY ((size_t)64 << 20)
#define MAX_HEADER_BYTES ((size_t)256 << 10)  /* below curl's own 300 KiB */

/* ------------------------------------------------------------ libcurl */

static struct {
  CURLcode (*global_init)(long);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_cleanup)(CURLM *);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURL *(*easy_init)(void);
  void (*easy_reset)(CURL *);
  void (*easy_cleanup)(CURL *);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  CURLcode (*easy_pause)(CURL *, int);
  const char *(*easy_strerror)(CURLcode);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  char *(*version)(void);
} C;

static const struct sw_lazysym curl_syms[] = {
  {"curl_global_init", (void **)&C.global_init},
  {"curl_multi_init", (void **)&C.multi_init},
  {"curl_multi_cleanup", (void **)&C.multi_cleanup},
  {"curl_multi_setopt", (void **)&C.multi_setopt},
  {"curl_multi_add_handle", (void **)&C.multi_add_handle},
  {"curl_multi_remove_handle", (void **)&C.multi_remove_handle},
  {"curl_multi_socket_action", (void **)&C.multi_socket_action},
  {"curl_multi_assign", (void **)&C.multi_assign},
  {"curl_multi_info_read", (void **)&C.multi_info_read},
  {"curl_easy_init", (void **)&C.easy_init},
  {"curl_easy_reset", (void **)&C.easy_reset},
  {"curl_easy_cleanup", (void **)&C.easy_cleanup},
  {"curl_easy_setopt", (void **)&C.easy_setopt},
  {"curl_easy_getinfo", (void **)&C.easy_getinfo},
  {"curl_easy_pause", (void **)&C.easy_pause},
  {"curl_easy_strerror", (void **)&C.easy_strerror},
  {"curl_slist_append", (void **)&C.slist_append},
  {"curl_slist_free_all", (void **)&C.slist_free_all},
  {"curl_version", (void **)&C.version},
  {NULL, NULL}
};

/* ------------------------------------------------------------ types */

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

enum { R_RUNNING, R_DONE, R_RELEASED };
enum { OVER_NONE, OVER_BODY, OVER_HEADERS, OVER_MEMORY };   /* why a callback stopped it */

typedef struct request {
  sw_op op;                  /* first: the await bridge sees an sw_op */
  int state;
  CURL *easy;
  struct curl_slist *headers;
  FILE *upload;
  char *unix_socket;         /* for error messages */
  int streaming;             /* on_body given: body goes to chunks */
  int want_headers;          /* build the response's headers table */
  int want_body;             /* keep the body (not on_body, not dropped) */
  int paused;                /* we returned CURL_WRITEFUNC_PAUSE */
  int over;                  /* OVER_*: a limit stopped the transfer */
  size_t max_body;
  size_t header_bytes;       /* of every response so far */
  buf_t body;                /* whole body, or chunks not yet handed to Lua */
  buf_t head;                /* response header lines of the last response */
  CURLcode result;
  long os_errno;
  double timeout_ms, connect_timeout_ms;
  char errbuf[CURL_ERROR_SIZE];
} request;

/* A socket curl asked us to watch. */
typedef struct watch {
  uv_poll_t poll;
  curl_socket_t fd;
  struct watch *prev, *next;
} watch;

static void sweep_recent(void);

static CURLM *multi = NULL;
static uv_timer_t multi_timer;
static int timer_ready = 0;
static int running = 0;           /* easy handles added to the multi */
static long pauses = 0;           /* streamed transfers paused for a slow on_body */
static watch *watches = NULL;     /* every open uv_poll */
#define EASY_POOL_MAX 256
static CURL *easy_pool[EASY_POOL_MAX];   /* reset handles kept for reuse */
static int easy_pooled = 0;

/* ------------------------------------------------------------ buffers */

static int buf_add(buf_t *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    /* Start at what the first piece needs (most health answers and header
     * blocks are a few hundred bytes; hundreds of requests in flight each
     * held 4 KiB per buffer), then double. */
    size_t cap = b->cap ? b->cap : (n < 512 ? 512 : n);
    while (cap < b->len + n) cap *= 2;
    char *d = (char *)realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static void buf_free(buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* -------------------------------------------------- loop <-> curl glue */

/* While no transfer runs, our watchers must not keep the loop alive (idle
 * pooled connections are not work); while any runs, they must. */
static void set_refs(int on) {
  for (watch *w = watches; w; w = w->next) {
    if (on) uv_ref((uv_handle_t *)&w->poll); else uv_unref((uv_handle_t *)&w->poll);
  }
  if (timer_ready) {
    if (on) uv_ref((uv_handle_t *)&multi_timer); else uv_unref((uv_handle_t *)&multi_timer);
  }
}

static void finish_request(request *r, CURLcode result) {
  C.multi_remove_handle(multi, r->easy);
  if (--running == 0) set_refs(0);
  r->state = R_DONE;
  r->result = result;
  C.easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &r->os_errno);
  sw_op_done(&r->op, 0);    /* results are built by the task (request_k) */
}

/* Hand every finished transfer to its task. */
static void check_finished(void) {
  CURLMsg *msg;
  int left;
  while ((msg = C.multi_info_read(multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    request *r = NULL;
    C.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode result = msg->data.result;
    finish_request(r, result);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  watch *w = (watch *)p->data;
  int flags = 0, still;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  C.multi_socket_action(multi, w->fd, flags, &still);   /* may close w */
  check_finished();
  sweep_recent();
}

static void on_multi_timer(uv_timer_t *t) {
  int still;
  C.multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &still);
  check_finished();
  sweep_recent();
}

static void watch_closed(uv_handle_t *h) {
  free(h->data);
}

/* Sockets curl opened through on_open_socket, by fd: the watcher kept for
 * the connection between transfers and the socket's inode (to recognise
 * the fd number being reused by something else). */
static struct slot {
  watch *w;
  ino_t ino;
  int ours;
} *slots = NULL;
static int nslots = 0;

static int is_ours(curl_socket_t s) {
  return s >= 0 && s < nslots && slots[s].ours;
}

/* Watchers stopped by CURL_POLL_REMOVE during the current curl call. */
static watch **recent = NULL;
static int nrecent = 0, caprecent = 0;

/* Close w; its fd must still be the socket it watched (or unregistered). */
static void watch_close(watch *w) {
  for (int i = 0; i < nrecent; i++)  /* never leave a pointer to freed memory */
    if (recent[i] == w) recent[i] = recent[--nrecent];
  if (w->prev) w->prev->next = w->next; else watches = w->next;
  if (w->next) w->next->prev = w->prev;
  if (w->fd >= 0 && w->fd < nslots && slots[w->fd].w == w) slots[w->fd].w = NULL;
  uv_poll_stop(&w->poll);    /* while the fd is still open: libuv unregisters it */
  uv_close((uv_handle_t *)&w->poll, watch_closed);
}

/* A watcher for socket s. libuv refuses a second watcher for an fd; one can
 * only be left over when curl closed a socket without CURL_POLL_REMOVE and
 * the number came back: that watcher is stale, so it goes. */
static watch *watch_new(curl_socket_t s) {
  watch *w = (watch *)calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  int err = uv_poll_init_socket(sw_loop(), &w->poll, s);
  if (err == UV_EEXIST) {
    for (watch *old = watches; old; old = old->next)
      if (old->fd == s) { watch_close(old); break; }
    err = uv_poll_init_socket(sw_loop(), &w->poll, s);
  }
  if (err != 0) {
    free(w);
    return NULL;
  }
  w->fd = s;
  w->poll.data = w;
  w->next = watches;
  if (watches) watches->prev = w;
  watches = w;
  if (running == 0) uv_unref((uv_handle_t *)&w->poll);
  return w;
}

/* Run right after every curl call that may close sockets: a watcher just
 * stopped whose socket curl then closed without on_close_socket (it does
 * for failed connects) goes now, while its fd number cannot yet belong to
 * anything else of ours. */
static void sweep_recent(void) {
  while (nrecent > 0) {
    watch *w = recent[--nrecent];
    struct stat st;
    if (is_ours(w->fd) && slots[w->fd].w == w && fstat(w->fd, &st) == 0 &&
        st.st_ino == slots[w->fd].ino)
      continue;                      /* still the pooled connection's socket */
    watch_close(w);
  }
}

/* Connection sockets are opened here (close-on-exec, so child processes do
 * not hold connections open) and keep their watcher from one transfer to
 * the next, only stopped in between (CURL_POLL_REMOVE comes while the fd is
 * open, so stopping unregisters it at once): a reused connection then costs
 * one epoll_ctl per request instead of a new uv_poll. The watcher goes in
 * on_close_socket, or in sweep_recent for the sockets curl closes without
 * that callback. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *a) {
  curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (s < 0) return CURL_SOCKET_BAD;
  if (s >= nslots) {
    int n = nslots ? nslots : 256;
    while (n <= s) n *= 2;
    struct slot *o = (struct slot *)realloc(slots, (size_t)n * sizeof *o);
    if (o == NULL) { close(s); return CURL_SOCKET_BAD; }
    memset(o + nslots, 0, (size_t)(n - nslots) * sizeof *o);
    slots = o;
    nslots = n;
  }
  /* A watcher still here belongs to a socket curl closed silently; the fd
   * is our new, unregistered socket now, so closing it is harmless. */
  if (slots[s].w) watch_close(slots[s].w);
  struct stat st;
  slots[s].ino = fstat(s, &st) == 0 ? st.st_ino : 0;
  slots[s].ours = 1;
  return s;
}

static int on_close_socket(void *clientp, curl_socket_t s) {
  if (is_ours(s)) {
    if (slots[s].w) watch_close(slots[s].w);
    slots[s].ours = 0;
  }
  return close(s);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  watch *w = (watch *)socketp;
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      if (is_ours(s) && slots[s].w == w) {
        uv_poll_stop(&w->poll);
        if (nrecent == caprecent) {
          int n = caprecent ? caprecent * 2 : 16;
          watch **r = (watch **)realloc(recent, (size_t)n * sizeof *r);
          if (r == NULL) { watch_close(w); C.multi_assign(multi, s, NULL); return 0; }
          recent = r;
          caprecent = n;
        }
        recent[nrecent++] = w;
      } else {
        watch_close(w);
      }
      C.multi_assign(multi, s, NULL);
    }
    return 0;
  }
  if (w == NULL) {
    w = is_ours(s) ? slots[s].w : NULL;
    if (w == NULL) {
      w = watch_new(s);
      /* Returning -1 would kill the multi handle and every transfer on it;
       * unwatched, this transfer still ends at its timeout. */
      if (w == NULL) return 0;
      if (is_ours(s)) slots[s].w = w;
    }
    C.multi_assign(multi, s, w);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&w->poll, events, on_poll);
  return 0;
}

static int on_timer_change(CURLM *m, long timeout_ms, void *userp) {
  if (timeout_ms < 0) {
    uv_timer_stop(&multi_timer);
  } else {
    uv_update_time(sw_loop());
    uv_timer_start(&multi_timer, on_multi_timer, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

static void ensure_multi(void) {
  if (!timer_ready) {
    uv_timer_init(sw_loop(), &multi_timer);
    sw_mark_internal((uv_handle_t *)&multi_timer);
    uv_unref((uv_handle_t *)&multi_timer);
    timer_ready = 1;
  }
  if (multi) return;
  multi = C.multi_init();
  C.multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  C.multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
}

/* ------------------------------------------------------ easy callbacks */

/* Returning anything but len makes curl end the transfer with
 * CURLE_WRITE_ERROR; r->over then says why. */
static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  request *r = (request *)ud;
  size_t len = size * n;
  if (r->streaming) {
    if (r->body.len >= STREAM_PAUSE_BYTES) {  /* Lua is behind: let it catch up */
      r->paused = 1;
      pauses++;
      return CURL_WRITEFUNC_PAUSE;
    }
    if (buf_add(&r->body, p, len) != 0) return r->over = OVER_MEMORY, 0;
    sw_op_done(&r->op, 0);      /* wake the task to call on_body (no-op if awake) */
    return len;
  }
  if (!r->want_body) return len;
  if (len > r->max_body - r->body.len) return r->over = OVER_BODY, 0;
  return buf_add(&r->body, p, len) == 0 ? len : (r->over = OVER_MEMORY, 0);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  request *r = (request *)ud;
  size_t len = size * n;
  r->header_bytes += len;
  if (r->header_bytes > MAX_HEADER_BYTES) return r->over = OVER_HEADERS, 0;
  if (!r->want_headers) return len;                            /* nobody reads them */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) r->head.len = 0;  /* a new response */
  return buf_add(&r->head, p, len) == 0 ? len : (r->over = OVER_MEMORY, 0);
}

static size_t on_read(char *p, size_t size, size_t n, void *ud) {
  request *r = (request *)ud;
  size_t got = fread(p, 1, size * n, r->upload);
  if (got == 0 && ferror(r->upload)) return CURL_READFUNC_ABORT;
  return got;
}

static int on_seek(void *ud, curl_off_t off, int origin) {
  request *r = (request *)ud;
  return fseeko(r->upload, (off_t)off, origin) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

/* ------------------------------------------------------ request lifetime */

/* Give back everything that is not GC memory; safe to call twice. */
static void request_release(request *r) {
  if (r->state == R_RUNNING && r->easy) {
    C.multi_remove_handle(multi, r->easy);
    sweep_recent();
    if (--running == 0) set_refs(0);
  }
  if (r->easy) {
    /* A reset handle keeps its buffers: reusing it saves allocating them. */
    if (easy_pooled < EASY_POOL_MAX) {
      C.easy_reset(r->easy);
      easy_pool[easy_pooled++] = r->easy;
    } else {
      C.easy_cleanup(r->easy);
    }
  }
  r->easy = NULL;
  if (r->headers) C.slist_free_all(r->headers);
  r->headers = NULL;
  if (r->upload) fclose(r->upload);
  r->upload = NULL;
  free(r->unix_socket);
  r->unix_socket = NULL;
  buf_free(&r->body);
  buf_free(&r->head);
  r->state = R_RELEASED;
}

static void request_cancel(sw_op *op) {
  request_release((request *)op);
}

static int request_gc(lua_State *L) {
  request_release((request *)luaL_checkudata(L, 1, REQUEST_MT));
  return 0;
}

/* ------------------------------------------------------------ results */

static const char *effective_url(request *r) {
  char *u = NULL;
  C.easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &u);
  return u ? u : "";
}

/* Replace the message at idx by itself with every password in a URL as
 * *** (an error names the URL, and its password is nobody's business). */
static void redact_urls_at(lua_State *L, int idx) {
  size_t n, len;
  const char *s = lua_tolstring(L, idx, &n);
  char *out;
  if (sw_redact_urls(s, n, &out, &len) != 1) return;
  idx = lua_absindex(L, idx);
  lua_pushlstring(L, out, len);
  free(out);
  lua_replace(L, idx);
}

static int push_failure_text(lua_State *L, request *r);

/* Push nil, "CODE: message: url", "CODE" for a failed transfer (the URL's
 * password as ***). */
static int push_failure(lua_State *L, request *r) {
  int n = push_failure_text(L, r);
  redact_urls_at(L, -2);
  return n;
}

static int push_failure_text(lua_State *L, request *r) {
  const char *code = "EHTTP", *url = effective_url(r);
  char dur[40];
  const char *detail = r->errbuf[0] ? r->errbuf : C.easy_strerror(r->result);
  char size[32];
  lua_pushnil(L);
  if (r->over != OVER_NONE || r->result == CURLE_FILESIZE_EXCEEDED) {
    if (r->over == OVER_HEADERS) {
      sw_format_size(MAX_HEADER_BYTES, size, sizeof size);
      code = "EHEADERSTOOLARGE";
      lua_pushfstring(L, "EHEADERSTOOLARGE: the response headers passed %s: %s", size, url);
    } else if (r->over == OVER_MEMORY) {
      code = "ENOMEM";
      lua_pushfstring(L, "ENOMEM: out of memory keeping the response: %s", url);
    } else {
      sw_format_size(r->max_body, size, sizeof size);
      code = "EBODYTOOLARGE";
      lua_pushfstring(L, "EBODYTOOLARGE: the response body passed max_body (%s): %s", size, url);
    }
    lua_pushstring(L, code);
    return 3;
  }
  switch (r->result) {
  case CURLE_COULDNT_CONNECT:
    code = "ECONNREFUSED";
    if (r->unix_socket)
      lua_pushfstring(L, "ECONNREFUSED: cannot connect to unix socket %s: %s: %s", r->unix_socket,
                      r->os_errno ? uv_strerror(uv_translate_sys_error((int)r->os_errno)) : "connection refused", url);
    else if (r->os_errno == ECONNREFUSED || r->os_errno == 0)
      lua_pushfstring(L, "ECONNREFUSED: connection refused: %s", url);
    else
      lua_pushfstring(L, "ECONNREFUSED: cannot connect: %s: %s", uv_strerror(uv_translate_sys_error((int)r->os_errno)), url);
    break;
  case CURLE_OPERATION_TIMEDOUT:
    code = "ETIMEDOUT";
    if (strncmp(r->errbuf, "Operation", 9) != 0 && r->connect_timeout_ms > 0) {
      double limit = r->connect_timeout_ms;     /* the shorter one ended it */
      if (r->timeout_ms > 0 && r->timeout_ms < limit) limit = r->timeout_ms;
      sw_format_duration(limit, dur, sizeof dur);
      lua_pushfstring(L, "ETIMEDOUT: connect timeout after %s: %s", dur, url);
    } else {
      sw_format_duration(r->timeout_ms, dur, sizeof dur);
      lua_pushfstring(L, "ETIMEDOUT: timeout after %s: %s", dur, url);
    }
    break;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    code = "EDNS";
    lua_pushfstring(L, "EDNS: cannot resolve host: %s", url);
    break;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_ISSUER_ERROR:
    code = "ECERT";
    lua_pushfstring(L, "ECERT: certificate verify failed: %s: %s", detail, url);
    break;
  case CURLE_GOT_NOTHING:
    code = "ECONNRESET";
    lua_pushfstring(L, "ECONNRESET: the server closed the connection without a response: %s", url);
    break;
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
    code = "ECONNRESET";
    lua_pushfstring(L, "ECONNRESET: connection reset by peer: %s", url);
    break;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    code = "EINVAL";
    lua_pushfstring(L, "EINVAL: bad URL (%s): %s", detail, url);
    break;
  case CURLE_ABORTED_BY_CALLBACK:
    code = "ECANCELED";
    lua_pushfstring(L, "ECANCELED: request cancelled: %s", url);
    break;
  case CURLE_TOO_MANY_REDIRECTS:
    lua_pushfstring(L, "EHTTP: too many redirects: %s", url);
    break;
  case CURLE_READ_ERROR:
    lua_pushfstring(L, "EHTTP: cannot read the request body file: %s", url);
    break;
  default:
    lua_pushfstring(L, "EHTTP: %s: %s", detail, url);
    break;
  }
  lua_pushstring(L, code);
  return 3;
}

/* Push the header lines of the last response as {lower-case name = value};
 * repeated names are joined with ", " as HTTP allows. The table is sized
 * for the lines up front (one allocation instead of a rehash per power of
 * two) and filled with raw access: it is a plain new table. */
static void push_headers(lua_State *L, request *r) {
  const char *p = r->head.data, *end = p + r->head.len;
  int lines = 0;
  for (const char *q = p; q && q < end; lines++) {
    q = memchr(q, '\n', (size_t)(end - q));
    if (q) q++;
  }
  lua_createtable(L, 0, lines > 1 ? lines - 1 : 0);   /* less the status line */
  int t = lua_gettop(L);
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    if (colon && colon > p && *p != ' ' && *p != '\t') {
      char name[256];
      size_t nlen = (size_t)(colon - p);
      if (nlen < sizeof name) {
        for (size_t i = 0; i < nlen; i++) {
          char c = p[i];
          name[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        const char *v = colon + 1, *ve = line_end;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        lua_pushlstring(L, name, nlen);                   /* [.., name] */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, t) == LUA_TSTRING) {            /* [.., name, old] */
          lua_pushliteral(L, ", ");
          lua_pushlstring(L, v, (size_t)(ve - v));
          lua_concat(L, 3);
        } else {
          lua_pop(L, 1);
          lua_pushlstring(L, v, (size_t)(ve - v));
        }
        lua_rawset(L, t);
      }
    }
    p = eol ? eol + 1 : end;
  }
}

static int push_response(lua_State *L, request *r) {
  long status = 0;
  curl_off_t total_us = 0;
  C.easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  C.easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total_us);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  if (r->want_headers) {
    push_headers(L, r);
    lua_setfield(L, -2, "headers");
  }
  if (r->want_body) {
    lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
    lua_setfield(L, -2, "body");
  }
  lua_pushnumber(L, (double)total_us / 1000.0);
  lua_setfield(L, -2, "time_ms");
  lua_pushstring(L, effective_url(r));
  lua_setfield(L, -2, "url");
  return 1;
}

/* ------------------------------------------------------------ request */

/* Stack of a running request (the task's own frame of http.request):
 * 1 = options, 2 = on_body or nil, 3 = the request userdata. */
enum { K_WAITED = 1, K_CALLED = 2 };

static int request_k(lua_State *L, int status, lua_KContext ctx);

/* _wait(req): park until the transfer has news for the task. */
static int http_wait(lua_State *L) {
  request *r = (request *)lua_touserdata(L, 1);
  return sw_await(L, &r->op);
}

static int request_k(lua_State *L, int status, lua_KContext ctx) {
  request *r = (request *)luaL_checkudata(L, 3, REQUEST_MT);
  if (status != LUA_OK && status != LUA_YIELD) {
    /* on_body raised, or the task was cancelled while parked or while
     * on_body ran: stop the transfer, then let the error go on. */
    request_release(r);
    return lua_error(L);
  }
  lua_settop(L, 3);
  for (;;) {
    if (r->state == R_RELEASED) return luaL_error(L, "http.request: request already released");
    if (r->streaming && r->body.len > 0) {
      lua_pushvalue(L, 2);
      lua_pushlstring(L, r->body.data, r->body.len);
      r->body.len = 0;
      if (r->paused && r->state == R_RUNNING) {
        r->paused = 0;
        C.easy_pause(r->easy, CURLPAUSE_CONT);   /* may refill r->body at once */
        sweep_recent();
      }
      status = lua_pcallk(L, 1, 0, 0, K_CALLED, request_k);
      if (status != LUA_OK) return request_k(L, status, K_CALLED);
      continue;
    }
    if (r->state == R_DONE) {
      int n = r->result == CURLE_OK ? push_response(L, r) : push_failure(L, r);
      request_release(r);
      return n;
    }
    lua_pushcfunction(L, http_wait);
    lua_pushlightuserdata(L, r);
    status = lua_pcallk(L, 1, 0, 0, K_WAITED, request_k);
    if (status != LUA_OK) return request_k(L, status, K_WAITED);
  }
}

static const char *const request_options[] = {
  "url", "method", "headers", "body", "body_file", "unix_socket", "timeout",
  "connect_timeout", "tls_verify", "ca", "cert", "key", "follow_redirects",
  "max_redirects", "on_body", "response_headers", "response_body", "max_body", NULL
};

/* Bit i set when request_options[i] is a key of the table at idx (after
 * sw_check_options: every key is one of them). One pass over the few keys
 * given is cheaper than looking up each of the sixteen options by name. */
static unsigned given_options(lua_State *L, int idx) {
  unsigned given = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    for (unsigned i = 0; request_options[i]; i++)
      if (strcmp(k, request_options[i]) == 0) { given |= 1u << i; break; }
  }
  return given;
}
enum {   /* bits of given_options(), in the order of request_options */
  G_URL = 1 << 0, G_METHOD = 1 << 1, G_HEADERS = 1 << 2, G_BODY = 1 << 3, G_BODY_FILE = 1 << 4,
  G_UNIX_SOCKET = 1 << 5, G_TIMEOUT = 1 << 6, G_CONNECT_TIMEOUT = 1 << 7, G_TLS_VERIFY = 1 << 8,
  G_CA = 1 << 9, G_CERT = 1 << 10, G_KEY = 1 << 11, G_FOLLOW = 1 << 12, G_MAX_REDIRECTS = 1 << 13,
  G_ON_BODY = 1 << 14, G_RESPONSE_HEADERS = 1 << 15, G_RESPONSE_BODY = 1 << 16, G_MAX_BODY = 1 << 17
};

/* An HTTP token (RFC 7230 section 3.2.6): what a method and a header name
 * are. Anything else (a space, CR, LF, ':') would let the caller's string
 * rewrite the request line or add headers. */
static int is_token(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          strchr("!#$%&'*+-.^_`|~", *s) != NULL))
      return 0;
  return 1;
}

static int has_header(lua_State *L, int idx, const char *name) {
  int found = 0;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING && strcasecmp(lua_tostring(L, -2), name) == 0) found = 1;
    lua_pop(L, 1);
  }
  return found;
}

/* Expect: 100-continue would stall uploads by a second on servers that do
 * not answer it (the Docker engine among them). Without headers of the
 * caller's, a shared constant list says so (curl only reads it). */
static char no_expect_line[] = "Expect:";
static struct curl_slist no_expect = {no_expect_line, NULL};

/* Build the header list; raises on a value that is not a string/number. */
static void set_headers(lua_State *L, request *r, int idx) {
  const char *F = "http.request";
  int t = lua_getfield(L, idx, "headers");
  if (t != LUA_TNIL) {
    if (t != LUA_TTABLE) luaL_error(L, "%s: option 'headers' must be a table of name = value", F);
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {
      if (lua_type(L, -2) != LUA_TSTRING ||
          (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER && !sw_is_secret(L, -1)))
        luaL_error(L, "%s: headers must map a name to a string (or a secret)", F);
      const char *name = sw_check_cstring(L, -2, F, "a header name");
      if (!is_token(name))
        sw_raise_at_caller(L, lua_pushfstring(L, "%s: header name '%s' is not an HTTP token "
                                              "(letters, digits, !#$%%&'*+-.^_`|~)", F, name));
      lua_pushfstring(L, "header '%s'", name);
      const char *value = sw_check_cstring(L, -2, F, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (strpbrk(value, "\r\n"))
        sw_raise_at_caller(L, lua_pushfstring(L, "%s: header '%s' contains a line break", F, name));
      /* "Name;" sends an empty value; "Name:" would remove the header */
      const char *line = *value ? lua_pushfstring(L, "%s: %s", name, value)
                                : lua_pushfstring(L, "%s;", name);
      r->headers = C.slist_append(r->headers, line);
      lua_pop(L, 2);
    }
  }
  if (r->headers == NULL) {
    C.easy_setopt(r->easy, CURLOPT_HTTPHEADER, &no_expect);
  } else {
    if (!has_header(L, lua_gettop(L), "Expect"))
      r->headers = C.slist_append(r->headers, "Expect:");
    C.easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
  }
  lua_pop(L, 1);
}

/* request{url=..., ...} -> response | nil, message, CODE  (awaits) */
static int http_request(lua_State *L) {
  const char *F = "http.request";
  if (lua_type(L, 1) == LUA_TSTRING) {   /* request(url, opts): a copy with url set */
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    lua_newtable(L);                                 /* [url, opts?, copy] */
    if (lua_type(L, 2) == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, 2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
      }
    }
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "url");
    lua_replace(L, 1);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  sw_check_options(L, 1, F, request_options);
  sw_check_task(L, F);
  unsigned given = given_options(L, 1);
#define GIVEN(bit, get, def) ((given & (bit)) ? (get) : (def))
  const char *url = GIVEN(G_URL, sw_opt_string(L, 1, "url", NULL, F), NULL);
  if (url == NULL) luaL_error(L, "%s: option 'url' is required", F);
  const char *method = GIVEN(G_METHOD, sw_opt_string(L, 1, "method", NULL, F), NULL);
  const char *body_file = GIVEN(G_BODY_FILE, sw_opt_string(L, 1, "body_file", NULL, F), NULL);
  const char *unix_socket = GIVEN(G_UNIX_SOCKET, sw_opt_string(L, 1, "unix_socket", NULL, F), NULL);
  const char *ca = GIVEN(G_CA, sw_opt_string(L, 1, "ca", NULL, F), NULL);
  const char *cert = GIVEN(G_CERT, sw_opt_string(L, 1, "cert", NULL, F), NULL);
  const char *key = GIVEN(G_KEY, sw_opt_string(L, 1, "key", NULL, F), NULL);
  double timeout = GIVEN(G_TIMEOUT, sw_opt_duration(L, 1, "timeout", DEFAULT_TIMEOUT_MS, F), DEFAULT_TIMEOUT_MS);
  double ctimeout = GIVEN(G_CONNECT_TIMEOUT, sw_opt_duration(L, 1, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_MS, F),
                          DEFAULT_CONNECT_TIMEOUT_MS);
  int verify = GIVEN(G_TLS_VERIFY, sw_opt_boolean(L, 1, "tls_verify", 1, F), 1);
  int follow = GIVEN(G_FOLLOW, sw_opt_boolean(L, 1, "follow_redirects", 0, F), 0);
  int want_headers = GIVEN(G_RESPONSE_HEADERS, sw_opt_boolean(L, 1, "response_headers", 1, F), 1);
  int want_body = GIVEN(G_RESPONSE_BODY, sw_opt_boolean(L, 1, "response_body", 1, F), 1);
  size_t max_body = GIVEN(G_MAX_BODY, sw_opt_size(L, 1, "max_body", DEFAULT_MAX_BODY, F), DEFAULT_MAX_BODY);
  lua_Integer max_redirects = GIVEN(G_MAX_REDIRECTS, sw_opt_integer(L, 1, "max_redirects", 10, F), 10);
#undef GIVEN
  if (max_redirects < 0)   /* curl takes -1 as "no limit" */
    sw_raise_at_caller(L, lua_pushfstring(L, "%s: option 'max_redirects' must not be negative", F));
  if (method && !is_token(method))
    sw_raise_at_caller(L, lua_pushfstring(L, "%s: option 'method' must be an HTTP token (letters, "
                                          "digits, !#$%%&'*+-.^_`|~), got '%s'", F, method));
  size_t body_len = 0;
  const char *body = NULL;
  int bt = (given & G_BODY) ? lua_getfield(L, 1, "body") : (lua_pushnil(L), LUA_TNIL);
  if (bt == LUA_TSTRING) body = lua_tolstring(L, -1, &body_len);
  else if (sw_is_secret(L, -1)) body = sw_secret_value(L, -1, &body_len);
  else if (bt != LUA_TNIL) luaL_error(L, "%s: option 'body' must be a string, got %s", F, luaL_typename(L, -1));
  lua_pop(L, 1);                                   /* the string (or Secret) stays in opts */
  if (body && body_file) luaL_error(L, "%s: give 'body' or 'body_file', not both", F);
  int ot = (given & G_ON_BODY) ? lua_getfield(L, 1, "on_body") : (lua_pushnil(L), LUA_TNIL);  /* [opts, on_body] */
  if (ot != LUA_TNIL && ot != LUA_TFUNCTION)
    luaL_error(L, "%s: option 'on_body' must be a function, got %s", F, luaL_typename(L, -1));

  request *r = (request *)lua_newuserdatauv(L, sizeof *r, 0);   /* [opts, on_body, req] */
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, REQUEST_MT);
  r->op.what = F;
  r->op.cancel = request_cancel;
  r->state = R_RELEASED;                           /* until the handle is added */
  r->streaming = ot == LUA_TFUNCTION;
  r->want_headers = want_headers;
  r->want_body = want_body && !r->streaming;
  r->max_body = max_body;
  r->timeout_ms = timeout;
  r->connect_timeout_ms = ctimeout;

  if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "EINVAL: bad URL (expected http:// or https://): %s", url);
    redact_urls_at(L, -1);
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  if (body_file) {
    r->upload = fopen(body_file, "rb");
    if (r->upload == NULL) return sw_push_errno(L, errno, body_file);
  }

  ensure_multi();
  CURL *e = r->easy = easy_pooled ? easy_pool[--easy_pooled] : C.easy_init();
  if (e == NULL) return luaL_error(L, "%s: out of memory", F);
  C.easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  C.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  C.easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  C.easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  C.easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  C.easy_setopt(e, CURLOPT_URL, url);
  C.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  C.easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  C.easy_setopt(e, CURLOPT_USERAGENT, "slipway/" SLIPWAY_VERSION);
  C.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  C.easy_setopt(e, CURLOPT_WRITEDATA, r);
  C.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  C.easy_setopt(e, CURLOPT_HEADERDATA, r);
  C.easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
  C.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ctimeout);
  C.easy_setopt(e, CURLOPT_SSL_VERIFYPEER, (long)verify);
  C.easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
  if (ca) C.easy_setopt(e, CURLOPT_CAINFO, ca);
  if (cert) C.easy_setopt(e, CURLOPT_SSLCERT, cert);
  if (key) C.easy_setopt(e, CURLOPT_SSLKEY, key);
  if (follow) {
    C.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    C.easy_setopt(e, CURLOPT_MAXREDIRS, (long)max_redirects);
  }
  if (unix_socket) {
    C.easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, unix_socket);
    r->unix_socket = strdup(unix_socket);
  }
  if (method == NULL) method = (body || body_file) ? "POST" : "GET";
  int sends_body = body || body_file || strcasecmp(method, "POST") == 0 ||
                   strcasecmp(method, "PUT") == 0 || strcasecmp(method, "PATCH") == 0;
  if (body_file) {
    struct stat st;
    fstat(fileno(r->upload), &st);
    C.easy_setopt(e, CURLOPT_POST, 1L);
    C.easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    C.easy_setopt(e, CURLOPT_READDATA, r);
    C.easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    C.easy_setopt(e, CURLOPT_SEEKDATA, r);
    C.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
  } else if (sends_body) {
    C.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    C.easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
  }
  if (strcasecmp(method, "HEAD") == 0) C.easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, sends_body ? "POST" : "GET") != 0)
    C.easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  /* A body announced larger than it may be fails before it is read. */
  if (r->want_body && strcasecmp(method, "HEAD") != 0)
    C.easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body);
  if (given & G_HEADERS) set_headers(L, r, 1);
  else C.easy_setopt(e, CURLOPT_HTTPHEADER, &no_expect);

  CURLMcode added = C.multi_add_handle(multi, e);
  sweep_recent();
  if (added != CURLM_OK) return luaL_error(L, "%s: cannot start the transfer", F);
  r->state = R_RUNNING;
  if (running++ == 0) set_refs(1);
  return request_k(L, LUA_OK, 0);
}

struct fd_user { uv_handle_t *self; int fd; int found; };

static void find_fd_user(uv_handle_t *h, void *arg) {
  struct fd_user *u = (struct fd_user *)arg;
  uv_os_fd_t fd;
  if (h != u->self && !uv_is_closing(h) && uv_fileno(h, &fd) == 0 && fd == u->fd) u->found = 1;
}

/* A watcher still open after curl_multi_cleanup watched a socket curl
 * closed without telling us. Closing it unregisters its fd number from
 * epoll, which would break another handle that uses the number now: then
 * it stays open, unreferenced and out of the leak counts (a few bytes). */
static void close_leftover(watch *w) {
  struct stat st;
  if (!(is_ours(w->fd) && fstat(w->fd, &st) == 0 && st.st_ino == slots[w->fd].ino)) {
    struct fd_user u = {(uv_handle_t *)&w->poll, w->fd, 0};
    uv_walk(sw_loop(), find_fd_user, &u);
    if (u.found) {
      if (w->prev) w->prev->next = w->next; else watches = w->next;
      if (w->next) w->next->prev = w->prev;
      uv_unref((uv_handle_t *)&w->poll);
      sw_mark_internal((uv_handle_t *)&w->poll);
      return;
    }
  }
  watch_close(w);
}

/* close_idle() -> closes pooled connections when no request is in flight
 * (leak checks call it: an idle keep-alive connection is not a leak). */
static int http_close_idle(lua_State *L) {
  if (multi && running == 0) {
    C.multi_cleanup(multi);            /* closes the pooled connections */
    multi = NULL;
    sweep_recent();
    while (watches) close_leftover(watches);   /* none left unless curl hid a close */
    memset(slots, 0, (size_t)nslots * sizeof *slots);
    uv_timer_stop(&multi_timer);
    while (easy_pooled) C.easy_cleanup(easy_pool[--easy_pooled]);
  }
  lua_pushboolean(L, running == 0);
  return 1;
}

/* stats() -> {running = N, sockets = N, pauses = N} */
static int http_stats(lua_State *L) {
  int n = 0;
  for (watch *w = watches; w; w = w->next) n++;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, running);
  lua_setfield(L, -2, "running");
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "sockets");
  lua_pushinteger(L, pauses);
  lua_setfield(L, -2, "pauses");
  return 1;
}

static const luaL_Reg http_funcs[] = {
  {"request", http_request},
  {"close_idle", http_close_idle},
  {"stats", http_stats},
  {NULL, NULL}
};

int luaopen_slipway_http(lua_State *L) {
  static const char *const sonames[] = {"libcurl.so.4", NULL};
  static int loaded = 0;
  if (!loaded) {
    sw_lazylib_load(L, sonames, curl_syms);
    if (C.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return luaL_error(L, "slipway.http: curl_global_init failed");
    loaded = 1;
  }
  if (luaL_newmetatable(L, REQUEST_MT)) {
    lua_pushcfunction(L, request_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, http_funcs);
  lua_pushstring(L, C.version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}
