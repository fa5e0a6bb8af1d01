/*
 * signal.c: slipway.signal, POSIX signals as awaitable events.
 *
 *   local w = signal.watch{ "SIGINT", "SIGTERM" }  -- start catching them
 *   local name = w:next()     -- waits (in a task) for the next one: "SIGINT"
 *   w:close()                 -- stop catching: the default action is back
 *   signal.wait{ "SIGTERM" }  -- watch + next + close in one call
 *
 * A watcher keeps its uv_signal handles running from watch() to close(), and
 * counts arrivals that nobody is waiting for, so a second Ctrl-C that comes
 * while the first is being handled is never lost nor left to the default
 * action. Cancelling a task waiting in next() only forgets the waiter; the
 * handles stay until close() (or the watcher is collected).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

#define WATCHER_MT "slipway.SignalWatcher"
#define MAX_SIGNALS 8

static const struct { const char *name; int signum; } known[] = {
  {"SIGINT", SIGINT}, {"SIGTERM", SIGTERM}, {"SIGHUP", SIGHUP},
  {"SIGQUIT", SIGQUIT}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
  {"SIGWINCH", SIGWINCH}, {"SIGPIPE", SIGPIPE}, {NULL, 0}
};

typedef struct watcher watcher;

typedef struct {
  uv_signal_t handle;
  watcher *w;
  int index;
} sig_slot;

/* Heap-allocated (not the userdata) because its handles may still be
 * closing after the userdata has been collected. */
struct watcher {
  sw_op op;                  /* the pending next(), when op.task != NULL */
  int waiting;               /* a task is parked in next() */
  int n;                     /* handles in use */
  int open_handles;          /* not yet closed (freed when it reaches 0) */
  int closed;
  const char *names[MAX_SIGNALS];
  unsigned long order[64];   /* FIFO of slot indexes, so next() keeps order */
  int head, count;
  sig_slot slots[MAX_SIGNALS];
};

typedef struct { watcher *w; } watcher_ud;

static int signum_of(const char *name) {
  for (int i = 0; known[i].name; i++)
    if (strcmp(known[i].name, name) == 0) return known[i].signum;
  return 0;
}

static void on_slot_closed(uv_handle_t *h) {
  sig_slot *s = (sig_slot *)h->data;
  watcher *w = s->w;
  if (--w->open_handles == 0) free(w);
}

static void close_watcher(watcher *w) {
  if (w->closed) return;
  w->closed = 1;
  if (w->waiting && w->op.task) {        /* wake the waiter with nothing */
    lua_State *co = sw_op_thread(&w->op);
    lua_pushnil(co);
    sw_op_done(&w->op, 1);
  }
  w->waiting = 0;
  for (int i = 0; i < w->n; i++) {
    uv_signal_stop(&w->slots[i].handle);
    uv_close((uv_handle_t *)&w->slots[i].handle, on_slot_closed);
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  sig_slot *s = (sig_slot *)h->data;
  watcher *w = s->w;
  (void)signum;
  if (w->waiting && w->op.task) {
    lua_State *co = sw_op_thread(&w->op);
    w->waiting = 0;
    lua_pushstring(co, w->names[s->index]);
    sw_op_done(&w->op, 1);
    return;
  }
  if (w->count < (int)(sizeof w->order / sizeof w->order[0])) {
    w->order[(w->head + w->count) % (sizeof w->order / sizeof w->order[0])] = s->index;
    w->count++;
  }
}

static void next_cancel(sw_op *op) {
  watcher *w = (watcher *)op;       /* op is the first member */
  w->waiting = 0;
}

static watcher *check_watcher(lua_State *L, int idx) {
  watcher_ud *ud = (watcher_ud *)luaL_checkudata(L, idx, WATCHER_MT);
  return ud->w;
}

/* watch(names) -> watcher; names is a list like {"SIGINT", "SIGTERM"} */
static int signal_watch(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 1);
  if (n < 1 || n > MAX_SIGNALS)
    return luaL_error(L, "signal.watch: expected a list of 1 to %d signal names", MAX_SIGNALS);
  int nums[MAX_SIGNALS];
  const char *names[MAX_SIGNALS];
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    const char *name = lua_tostring(L, -1);
    nums[i] = name ? signum_of(name) : 0;
    if (nums[i] == 0)
      return luaL_error(L, "signal.watch: unknown signal '%s' (valid: SIGINT, SIGTERM, "
                        "SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE)",
                        name ? name : luaL_typename(L, -1));
    lua_pop(L, 1);
    for (int k = 0; known[k].name; k++)
      if (known[k].signum == nums[i]) names[i] = known[k].name;
  }
  watcher_ud *ud = (watcher_ud *)lua_newuserdatauv(L, sizeof *ud, 0);
  ud->w = NULL;
  luaL_setmetatable(L, WATCHER_MT);
  watcher *w = (watcher *)calloc(1, sizeof *w);
  if (w == NULL) return luaL_error(L, "signal.watch: out of memory");
  w->op.what = "signal.next";
  w->op.cancel = next_cancel;
  for (int i = 0; i < n; i++) {
    sig_slot *s = &w->slots[i];
    s->w = w;
    s->index = i;
    w->names[i] = names[i];
    uv_signal_init(sw_loop(), &s->handle);
    s->handle.data = s;
    w->n++;
    w->open_handles++;
    int rc = uv_signal_start(&s->handle, on_signal, nums[i]);
    if (rc < 0) {
      close_watcher(w);
      return luaL_error(L, "signal.watch: %s", uv_strerror(rc));
    }
  }
  ud->w = w;
  return 1;
}

/* watcher:next() -> name of the next signal (waits), or nil once closed */
static int watcher_next(lua_State *L) {
  watcher *w = check_watcher(L, 1);
  sw_check_task(L, "signal.next");
  if (w == NULL || w->closed) return 0;
  if (w->count > 0) {
    int idx = (int)w->order[w->head];
    w->head = (w->head + 1) % (int)(sizeof w->order / sizeof w->order[0]);
    w->count--;
    lua_pushstring(L, w->names[idx]);
    return 1;
  }
  if (w->waiting) return luaL_error(L, "signal.next: another task is already waiting");
  w->waiting = 1;
  return sw_await(L, &w->op);
}

/* watcher:pending() -> how many arrivals are queued */
static int watcher_pending(lua_State *L) {
  watcher *w = check_watcher(L, 1);
  lua_pushinteger(L, (w && !w->closed) ? w->count : 0);
  return 1;
}

static int watcher_close(lua_State *L) {
  watcher_ud *ud = (watcher_ud *)luaL_checkudata(L, 1, WATCHER_MT);
  if (ud->w) close_watcher(ud->w);
  ud->w = NULL;
  return 0;
}

/* wait(names) -> the first of names to arrive. Written in Lua so that a
 * to-be-closed variable closes the watcher however the wait ends
 * (signal, cancellation, error). */
static const char wait_source[] =
  "local watch = ...\n"
  "return function(names)\n"
  "  local w <close> = watch(names)\n"
  "  return w:next()\n"
  "end\n";

static int watcher_gc(lua_State *L) {
  watcher_ud *ud = (watcher_ud *)luaL_checkudata(L, 1, WATCHER_MT);
  if (ud->w) close_watcher(ud->w);
  ud->w = NULL;
  return 0;
}

static const luaL_Reg watcher_methods[] = {
  {"next", watcher_next},
  {"pending", watcher_pending},
  {"close", watcher_close},
  {NULL, NULL}
};

static const luaL_Reg signal_funcs[] = {
  {"watch", signal_watch},
  {NULL, NULL}
};

int luaopen_slipway_signal(lua_State *L) {
  if (luaL_newmetatable(L, WATCHER_MT)) {
    luaL_newlib(L, watcher_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, watcher_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, watcher_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, signal_funcs);
  if (luaL_loadbufferx(L, wait_source, sizeof wait_source - 1, "=signal.wait", "t") != LUA_OK)
    return lua_error(L);
  lua_pushcfunction(L, signal_watch);
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "wait");
  return 1;
}
