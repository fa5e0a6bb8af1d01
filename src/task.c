/*
 * task.c: tasks (coroutines run by the runtime), the await bridge, and the
 * slipway.task module: spawn, join, wait, cancel, sleep, run, stats, and
 * each task's context.
 *
 * Every resumption of a task goes through resume_task(), called only from
 * drain_ready(), which runs from an idle handle on the loop (or from task.run
 * before the loop starts). Completion callbacks never resume a coroutine
 * themselves: sw_op_done() queues the task and returns, so no Lua code runs
 * inside a libuv or libcurl callback and errors always surface at the task's
 * own await point.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "slipway.h"

#define TASK_MT "slipway.Task"
#define CANCELLED_MT "slipway.Cancelled"

enum { T_READY, T_RUNNING, T_WAITING, T_DONE, T_FAILED, T_CANCELLED };
static const char *const state_names[] = {
  "ready", "running", "waiting", "done", "failed", "cancelled"
};

typedef struct join_op join_op;

/* The task userdata's user values. */
enum { UV_THREAD = 1, UV_OUTCOME, UV_CONTEXT, UV_STRAYS, N_UVALUES = UV_STRAYS };

struct sw_task {
  lua_State *co;
  int self_ref;         /* registry ref keeping the task alive until it ends */
  int state;
  int started;          /* the coroutine has run at least once */
  int nargs;            /* values pushed onto co for the next resume */
  int cancel_requested;
  int queued;
  int observed;         /* its outcome was read (join, result, status) */
  int preempted;        /* its last yield was forced by the watchdog */
  unsigned long serial; /* spawn order */
  sw_task *parent;      /* the live task that spawned it and holds it in its
                           strays, or NULL */
  sw_op *pending;
  sw_task *next_ready;
  join_op *joiners;
};

struct join_op {
  sw_op op;
  sw_task *target;
  join_op *next;
  uv_timer_t *timer;    /* only for wait with a deadline */
};

typedef struct {
  sw_op op;
  uv_timer_t timer;
} sleep_op;

long sw_live_refs = 0;
long sw_live_ops = 0;
static long live_tasks = 0;

static uv_loop_t loop_storage;
static uv_loop_t *the_loop = NULL;
static lua_State *main_L = NULL;
static uv_idle_t drain_idle;
static uv_prepare_t flush_prepare;
static int internal_tag;         /* handle->data of the runtime's own handles */
static sw_task *ready_head = NULL, *ready_tail = NULL;
/* Tasks that yielded without waiting for anything (task.yield, or forced
 * by the watchdog): they run again after the loop has had a turn, so a
 * task that yields in a loop cannot starve timers, signals and I/O. */
static sw_task *yielded_head = NULL, *yielded_tail = NULL;
static sw_task *running = NULL;
static int draining = 0;
static unsigned long spawn_serial = 0;

/* What the tasks wrote to stdout is out before the loop waits for
 * anything, so a pipe (CI) reads it as it happens, not when the buffer
 * fills or slipway exits; the writes themselves stay buffered. */
static void flush_output(uv_prepare_t *h) {
  (void)h;
  fflush(stdout);
}

uv_loop_t *sw_loop(void) {
  if (the_loop == NULL) {
    uv_loop_init(&loop_storage);
    the_loop = &loop_storage;
    uv_idle_init(the_loop, &drain_idle);
    drain_idle.data = &internal_tag;
    uv_prepare_init(the_loop, &flush_prepare);
    flush_prepare.data = &internal_tag;
    uv_prepare_start(&flush_prepare, flush_output);
    uv_unref((uv_handle_t *)&flush_prepare);
  }
  return the_loop;
}

void sw_mark_internal(uv_handle_t *h) {
  h->data = &internal_tag;
}

/* ---------------------------------------------------------------- refs */

static int take_ref(lua_State *L) {   /* pops the value */
  sw_live_refs++;
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void drop_ref(lua_State *L, int *ref) {
  if (*ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
    sw_live_refs--;
  }
}

/* ------------------------------------------------------------- queueing */

static void drain_ready(void);

static void on_idle(uv_idle_t *h) {
  (void)h;
  drain_ready();
}

static void append(sw_task **head, sw_task **tail, sw_task *t) {
  t->queued = 1;
  t->next_ready = NULL;
  if (*tail) (*tail)->next_ready = t; else *head = t;
  *tail = t;
  if (!uv_is_active((uv_handle_t *)&drain_idle))
    uv_idle_start(&drain_idle, on_idle);
}

static void enqueue(sw_task *t) {
  if (!t->queued) append(&ready_head, &ready_tail, t);
}

sw_task *sw_current(lua_State *L) {
  sw_task *t = *(sw_task **)lua_getextraspace(L);
  return (t && t->co == L) ? t : NULL;
}

static void push_cancelled(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "cancelled");
  luaL_setmetatable(L, CANCELLED_MT);
}

sw_task *sw_check_task(lua_State *L, const char *what) {
  sw_task *t = sw_current(L);
  if (t == NULL) {
    lua_pushfstring(L, "%s: call this inside a task (it waits for I/O)", what);
    sw_raise_at_caller(L, lua_tostring(L, -1));
  }
  if (t->cancel_requested) {
    push_cancelled(L);
    lua_error(L);
  }
  return t;
}

/* ---------------------------------------------------------------- await */

/* Runs when a parked native is resumed: raise if the task was cancelled,
 * otherwise the values the completion pushed are the native's results. */
static int await_k(lua_State *L, int status, lua_KContext ctx) {
  sw_task *t = sw_current(L);
  (void)status; (void)ctx;
  if (t && t->cancel_requested) {
    lua_settop(L, 0);
    push_cancelled(L);
    return lua_error(L);
  }
  return lua_gettop(L);
}

static int awaitk(lua_State *L, sw_op *op, lua_KContext ctx, lua_KFunction k) {
  sw_task *t = sw_check_task(L, op->what ? op->what : "await");
  op->task = t;
  t->pending = op;
  t->state = T_WAITING;
  sw_live_ops++;
  lua_settop(L, 0);
  return lua_yieldk(L, 0, ctx, k);
}

int sw_await(lua_State *L, sw_op *op) {
  return awaitk(L, op, 0, await_k);
}

lua_State *sw_op_thread(sw_op *op) {
  return op->task ? op->task->co : NULL;
}

void sw_op_done(sw_op *op, int nresults) {
  sw_task *t = op->task;
  if (t == NULL) return;           /* cancelled meanwhile: nothing to wake */
  op->task = NULL;
  t->pending = NULL;
  t->nargs = nresults;
  t->state = T_READY;
  sw_live_ops--;
  enqueue(t);
}

void sw_op_fail(sw_op *op, const char *msg, const char *code) {
  lua_State *co = sw_op_thread(op);
  if (co == NULL) return;
  lua_pushnil(co);
  lua_pushstring(co, msg);
  lua_pushstring(co, code);
  sw_op_done(op, 3);
}

/* ------------------------------------------------------------ outcomes */

static void on_join_timer_closed(uv_handle_t *h) {
  free(h->data);                   /* the join_op */
  free(h);
}

static void free_join(join_op *jo) {
  if (jo->timer) {
    uv_timer_stop(jo->timer);
    jo->timer->data = jo;
    uv_close((uv_handle_t *)jo->timer, on_join_timer_closed);
  } else {
    free(jo);
  }
}

static void unlink_joiner(join_op *jo) {
  join_op **p = &jo->target->joiners;
  while (*p && *p != jo) p = &(*p)->next;
  if (*p) *p = jo->next;
}

/* Wake everyone joined on t: each gets the task userdata pushed. */
static void finish_joiners(sw_task *t) {
  join_op *jo = t->joiners;
  t->joiners = NULL;
  while (jo) {
    join_op *next = jo->next;
    lua_State *jco = sw_op_thread(&jo->op);
    if (jco) {
      lua_rawgeti(jco, LUA_REGISTRYINDEX, t->self_ref);
      sw_op_done(&jo->op, 1);
    }
    free_join(jo);
    jo = next;
  }
}

/* ------------------------------------------------------------- strays
 *
 * A task spawned by another one is that task's "stray" until it has
 * ended well or its failure was read: the spawner's user value UV_STRAYS
 * is a table {task = true}. When a task ends, what it still holds passes
 * to its own spawner, so nothing spawned is lost; a task that has no
 * spawner (spawn_with, task.run) keeps them for task.take_strays. This is
 * how a pipeline finds tasks its unit started and never joined. */

static int accounted(const sw_task *t) {
  return t->state == T_DONE || t->state == T_CANCELLED ||
         (t->state == T_FAILED && t->observed);
}

/* Push t's strays table (created when missing and create is set); returns
 * 0 with nil pushed when there is none. tidx: t's userdata. */
static int push_strays(lua_State *L, int tidx, int create) {
  if (lua_getiuservalue(L, tidx, UV_STRAYS) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  if (!create) {
    lua_pushnil(L);
    return 0;
  }
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, tidx, UV_STRAYS);
  return 1;
}

/* Add or remove (value nil) the task at cidx in the strays of its parent. */
static void set_stray(lua_State *L, sw_task *parent, int cidx, int add) {
  cidx = lua_absindex(L, cidx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, parent->self_ref);         /* [.., p] */
  if (push_strays(L, lua_gettop(L), add)) {                    /* [.., p, s] */
    lua_pushvalue(L, cidx);
    if (add) lua_pushboolean(L, 1); else lua_pushnil(L);
    lua_rawset(L, -3);
  }
  lua_pop(L, 2);
}

/* The task at tidx (t) has ended or its outcome was read: drop it from its
 * parent's strays once it is accounted for. */
static void release_from_parent(lua_State *L, sw_task *t, int tidx) {
  if (t->parent && accounted(t)) {
    set_stray(L, t->parent, tidx, 0);
    t->parent = NULL;
  }
}

/* t (at tidx) has ended: leave its parent if it ended well, and hand the
 * strays it holds to its parent (or keep them when it has none). */
static void settle_strays(lua_State *L, sw_task *t, int tidx) {
  sw_task *up = t->parent;
  release_from_parent(L, t, tidx);
  if (!push_strays(L, tidx, 0)) {
    lua_pop(L, 1);
    return;
  }
  int sidx = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, sidx)) {                                  /* [s, c, true] */
    lua_pop(L, 1);
    sw_task *c = (sw_task *)lua_touserdata(L, -1);
    int open = !accounted(c);
    if (up && open) set_stray(L, up, -1, 1);
    c->parent = open ? up : NULL;
  }
  if (up) {
    lua_pushnil(L);
    lua_setiuservalue(L, tidx, UV_STRAYS);
  }
  lua_pop(L, 1);
}

/* Record how the coroutine ended in user value UV_OUTCOME of the task:
 * {ok=true, n=N, v1..vN} or {ok=false, err=value, traceback=string}. */
static void store_outcome(sw_task *t, int status, int nres) {
  lua_State *L = main_L, *co = t->co;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);            /* [task] */
  if (status == LUA_OK) {
    lua_createtable(L, nres, 2);                              /* [task, out] */
    int out = lua_gettop(L);
    lua_xmove(co, L, nres);                                   /* [task, out, v..] */
    for (int i = nres; i >= 1; i--) lua_rawseti(L, out, i);
    lua_pushboolean(L, 1);
    lua_setfield(L, out, "ok");
    lua_pushinteger(L, nres);
    lua_setfield(L, out, "n");
    t->state = T_DONE;
  } else {
    lua_createtable(L, 0, 3);                                 /* [task, out] */
    int out = lua_gettop(L);
    lua_xmove(co, L, 1);                                      /* [task, out, err] */
    int cancelled = luaL_testudata(L, -1, CANCELLED_MT) != NULL;
    if (!cancelled && lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1)) {
      luaL_getmetatable(L, CANCELLED_MT);
      cancelled = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    luaL_traceback(L, co, msg, 0);                            /* [task, out, err, tb] */
    lua_setfield(L, out, "traceback");
    lua_setfield(L, out, "err");
    lua_pushboolean(L, 0);
    lua_setfield(L, out, "ok");
    t->state = cancelled ? T_CANCELLED : T_FAILED;
  }
  lua_setiuservalue(L, -2, UV_OUTCOME);                       /* [task] */
  lua_resetthread(co);
  lua_sethook(co, NULL, 0, 0);
  *(sw_task **)lua_getextraspace(co) = NULL;
  live_tasks--;
  settle_strays(L, t, lua_gettop(L));
  lua_pop(L, 1);
  finish_joiners(t);
  drop_ref(L, &t->self_ref);
}

/* --------------------------------------------------------- preemption
 *
 * A task that computes without awaiting anything (`while true do end`, a
 * long loop) would hold the loop: no timer, signal or I/O callback could
 * run, so neither its timeout nor Ctrl-C could stop it. A watchdog thread
 * notices a resume that has lasted a whole slice and sends the loop's
 * thread SIGURG; the handler sets a count hook on the running coroutine
 * (lua_sethook may be called from a signal handler: lua.c stops scripts
 * on Ctrl-C the same way), and the hook, at the next VM instruction,
 * raises the task's cancellation if one was asked for, or else yields it
 * to the back of the queue. Code that never runs long pays nothing: no
 * hook is set until a slice has passed. */

#define SLICE_MS 50

static pthread_t loop_thread;
static atomic_ulong resume_serial;     /* bumped when a resume starts */
static atomic_int in_resume;
static atomic_ulong preempt_serial;    /* the resume the watchdog flagged */
static int watchdog_started = 0;
/* Set for good once the process starts to exit (os.exit, exit()): the
 * state and its tasks may be freed from then on, with a resume still
 * "running" (os.exit from inside a task), so nothing may touch them. */
static volatile sig_atomic_t exiting = 0;

static void stop_preempting(void) {
  exiting = 1;
}

static void preempt_hook(lua_State *L, lua_Debug *ar) {
  sw_task *t = running;
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (t == NULL || t->co != L) return;   /* a coroutine of the task's own */
  if (t->cancel_requested) {
    push_cancelled(L);
    lua_error(L);
  }
  if (!lua_isyieldable(L)) {             /* inside a C call: ask again soon */
    lua_sethook(L, preempt_hook, LUA_MASKCOUNT, 1000);
    return;
  }
  t->preempted = 1;
  lua_yield(L, 0);
}

static void on_preempt_signal(int sig) {
  (void)sig;
  if (!exiting && running && atomic_load(&in_resume) &&
      atomic_load(&resume_serial) == atomic_load(&preempt_serial))
    lua_sethook(running->co, preempt_hook, LUA_MASKCOUNT, 1);
}

static void *watchdog(void *arg) {
  unsigned long seen = 0;
  struct timespec slice = {0, SLICE_MS * 1000000L};
  (void)arg;
  for (;;) {
    nanosleep(&slice, NULL);
    unsigned long now = atomic_load(&resume_serial);
    if (atomic_load(&in_resume) && now == seen) {
      atomic_store(&preempt_serial, now);
      pthread_kill(loop_thread, SIGURG);
    }
    seen = now;
  }
  return NULL;
}

static void start_watchdog(void) {
  pthread_attr_t attr;
  pthread_t th;
  struct sigaction sa;
  watchdog_started = 1;
  loop_thread = pthread_self();
  atexit(stop_preempting);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_preempt_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGURG, &sa, NULL);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  /* the watchdog must not take the signals meant for the loop's thread */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_create(&th, &attr, watchdog, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
}

/* ------------------------------------------------------------ running */

static void resume_task(sw_task *t) {
  lua_State *co = t->co;
  int nres = 0, status;
  if (t->state >= T_DONE) return;
  if (t->cancel_requested && !t->started) {
    lua_settop(co, 0);
    push_cancelled(co);
    store_outcome(t, LUA_ERRRUN, 0);
    return;
  }
  if (!watchdog_started) start_watchdog();
  t->started = 1;
  t->state = T_RUNNING;
  running = t;
  /* (relaxed: the watchdog only needs to see them eventually; the signal
   * handler runs on this thread) */
  atomic_fetch_add_explicit(&resume_serial, 1, memory_order_relaxed);
  atomic_store_explicit(&in_resume, 1, memory_order_relaxed);
  status = lua_resume(co, main_L, t->nargs, &nres);
  atomic_store_explicit(&in_resume, 0, memory_order_relaxed);
  running = NULL;
  t->nargs = 0;
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->pending == NULL) {      /* task.yield() or preempted: after the loop's turn */
      t->state = T_READY;
      if (!t->queued) append(&yielded_head, &yielded_tail, t);
    }
    return;
  }
  store_outcome(t, status, nres);
}

static void drain_ready(void) {
  if (draining || running) return;
  draining = 1;
  while (ready_head) {
    sw_task *t = ready_head;
    ready_head = t->next_ready;
    if (ready_head == NULL) ready_tail = NULL;
    t->queued = 0;
    resume_task(t);
  }
  draining = 0;
  /* what yielded runs at the next turn (the idle handle keeps the loop
   * from blocking meanwhile) */
  ready_head = yielded_head;
  ready_tail = yielded_tail;
  yielded_head = yielded_tail = NULL;
  if (ready_head == NULL) uv_idle_stop(&drain_idle);
}

/* Cancel t: stop its pending operation and resume it with a Cancelled
 * error, which unwinds through the task's own code (pcall can see it). */
static void cancel_task(sw_task *t) {
  if (t->state >= T_DONE || t->cancel_requested) return;
  t->cancel_requested = 1;
  if (t->pending) {
    sw_op *op = t->pending;
    t->pending = NULL;
    op->task = NULL;
    sw_live_ops--;
    if (op->cancel) op->cancel(op);
    t->state = T_READY;
    lua_settop(t->co, 0);
    t->nargs = 0;
    enqueue(t);
  } else if (!t->started) {
    enqueue(t);
  } else if (t->preempted) {
    /* it resumes inside its computation: the hook raises at once */
    lua_sethook(t->co, preempt_hook, LUA_MASKCOUNT, 1);
  }
  /* a task that yielded sees the flag when it resumes (await_k); the
   * running one at its next await or its next preemption */
}

/* ------------------------------------------------------------ Lua API */

static int task_mt_ref = LUA_NOREF;     /* the Task metatable, by ref: no
                                           name lookup on every method call */

static sw_task *check_task(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p != NULL && lua_getmetatable(L, idx)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, task_mt_ref);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (same) return (sw_task *)p;
  }
  return (sw_task *)luaL_checkudata(L, idx, TASK_MT);   /* raises the usual error */
}

/* Push a new task running the function at fidx with the nargs values above
 * it; queued to start once the current task yields. Its context is the
 * value at ctxidx, or (ctxidx 0) the spawning task's, and it is a stray of
 * the spawning task unless ctxidx is given. */
static sw_task *new_task(lua_State *L, int fidx, int nargs, int ctxidx) {
  luaL_checktype(L, fidx, LUA_TFUNCTION);
  sw_task *parent = ctxidx ? NULL : running;
  sw_task *t = (sw_task *)lua_newuserdatauv(L, sizeof *t, N_UVALUES);  /* [.., task] */
  memset(t, 0, sizeof *t);
  t->self_ref = LUA_NOREF;
  t->serial = ++spawn_serial;
  luaL_setmetatable(L, TASK_MT);
  int tidx = lua_gettop(L);
  lua_State *co = lua_newthread(L);                              /* [.., task, co] */
  *(sw_task **)lua_getextraspace(co) = t;
  t->co = co;
  lua_pushvalue(L, fidx);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, fidx + i);
  lua_xmove(L, co, nargs + 1);
  lua_setiuservalue(L, tidx, UV_THREAD);                         /* [.., task] */
  if (ctxidx) {
    lua_pushvalue(L, ctxidx);
    lua_setiuservalue(L, tidx, UV_CONTEXT);
  } else if (parent) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, parent->self_ref);         /* [.., task, p] */
    lua_getiuservalue(L, -1, UV_CONTEXT);                        /* [.., task, p, ctx] */
    lua_setiuservalue(L, tidx, UV_CONTEXT);
    lua_pop(L, 1);
    t->parent = parent;
    set_stray(L, parent, tidx, 1);
  }
  t->nargs = nargs;
  t->state = T_READY;
  lua_pushvalue(L, tidx);
  t->self_ref = take_ref(L);
  live_tasks++;
  sw_loop();
  enqueue(t);
  return t;
}

/* spawn(fn, ...) -> Task */
static int task_spawn(lua_State *L) {
  new_task(L, 1, lua_gettop(L) - 1, 0);
  return 1;
}

/* spawn_with(context, fn, ...) -> Task, with that context and no spawner
 * (for the runtime's own workers: what they start is theirs to account) */
static int task_spawn_with(lua_State *L) {
  new_task(L, 2, lua_gettop(L) - 2, 1);
  return 1;
}

/* context() -> the running task's context value (nil outside tasks) */
static int task_context(lua_State *L) {
  if (running == NULL) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, running->self_ref);
  lua_getiuservalue(L, -1, UV_CONTEXT);
  return 1;
}

int sw_push_context(lua_State *L) {
  if (running == NULL) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, running->self_ref);
  int type = lua_getiuservalue(L, -1, UV_CONTEXT);
  lua_remove(L, -2);
  return type;
}

/* set_context(value): the running task's context from now on (what it
 * spawns next inherits it) */
static int task_set_context(lua_State *L) {
  if (running == NULL) return luaL_error(L, "task.set_context: call this inside a task");
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, running->self_ref);
  lua_insert(L, 1);
  lua_setiuservalue(L, 1, UV_CONTEXT);
  return 0;
}

static int by_serial(const void *a, const void *b) {
  unsigned long x = (*(sw_task *const *)a)->serial, y = (*(sw_task *const *)b)->serial;
  return (x > y) - (x < y);
}

/* take_strays([t]) -> the tasks t (default: the running task) spawned
 * that are still running or failed without anyone reading the failure,
 * in spawn order, or nil when there are none; t holds none of them
 * afterwards (each then keeps its own strays: take them from it once it
 * has ended). */
static int task_take_strays(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    if (running == NULL) return luaL_error(L, "task.take_strays: call this inside a task");
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, running->self_ref);
  }
  check_task(L, 1);
  lua_settop(L, 1);
  if (!push_strays(L, 1, 0)) return 0;                          /* [t, s] */
  lua_newtable(L);                                              /* [t, s, list] */
  lua_insert(L, 2);                                             /* [t, list, s] */
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    lua_pop(L, 1);
    sw_task *c = (sw_task *)lua_touserdata(L, -1);
    c->parent = NULL;
    if (!accounted(c)) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, 2, ++n);
    }
  }
  lua_pushnil(L);
  lua_setiuservalue(L, 1, UV_STRAYS);
  if (n == 0) return 0;
  if (n > 1) {
    sw_task **order = (sw_task **)lua_newuserdatauv(L, n * sizeof *order, 0);  /* [t, list, s, tmp] */
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, 2, i);
      order[i - 1] = (sw_task *)lua_touserdata(L, -1);
      lua_pop(L, 1);
    }
    qsort(order, n, sizeof *order, by_serial);
    /* the userdata are still in the list: re-read them by identity */
    lua_newtable(L);                                            /* [t, list, s, tmp, byptr] */
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, 2, i);
      lua_rawsetp(L, -2, lua_touserdata(L, -1));
    }
    for (int i = 0; i < n; i++) {
      lua_rawgetp(L, -1, order[i]);
      lua_rawseti(L, 2, i + 1);
    }
    lua_settop(L, 2);
  }
  lua_settop(L, 2);
  return 1;
}

/* Someone has read how the task at idx ended: a failure is theirs now. */
static void observe(lua_State *L, sw_task *t, int idx) {
  t->observed = 1;
  release_from_parent(L, t, idx);
}

/* Push t's results (returning their count) or raise its error. A string
 * error gets the task's traceback appended so it is never lost. */
static int push_outcome(lua_State *L, int idx) {
  lua_getiuservalue(L, idx, UV_OUTCOME);             /* [.., out] */
  int out = lua_gettop(L);
  lua_getfield(L, out, "ok");
  int ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (ok) {
    lua_getfield(L, out, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, out, i);
    return n;
  }
  lua_getfield(L, out, "err");
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_getfield(L, out, "traceback");
    const char *tb = lua_tostring(L, -1);
    const char *nl = tb ? strchr(tb, '\n') : NULL;   /* skip the message line */
    lua_pop(L, 1);
    if (nl) {
      lua_pushstring(L, "\n(in task)");
      lua_pushstring(L, nl);
      lua_concat(L, 3);
    }
  }
  return lua_error(L);
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  await_k(L, status, ctx);                 /* raises if we were cancelled */
  if (lua_toboolean(L, 1) == 0) {          /* wait's deadline passed */
    lua_pushboolean(L, 0);
    return 1;
  }
  if (ctx == 1) {                          /* join */
    observe(L, check_task(L, 1), 1);
    return push_outcome(L, 1);
  }
  lua_pushboolean(L, 1);                   /* wait */
  return 1;
}

static void join_cancel(sw_op *op) {
  join_op *jo = (join_op *)op;
  unlink_joiner(jo);
  free_join(jo);
}

static void on_join_timeout(uv_timer_t *timer) {
  join_op *jo = (join_op *)timer->data;
  lua_State *jco = sw_op_thread(&jo->op);
  unlink_joiner(jo);
  if (jco) {
    lua_pushboolean(jco, 0);
    sw_op_done(&jo->op, 1);
  }
  free_join(jo);
}

/* Shared by join and wait: ctx 1 = join (results or raise), 0 = wait. */
static int park_on(lua_State *L, sw_task *t, double timeout_ms, int ctx) {
  sw_task *self = sw_check_task(L, ctx ? "join" : "wait");
  if (self == t) return luaL_error(L, "a task cannot wait for itself");
  join_op *jo = (join_op *)calloc(1, sizeof *jo);
  jo->op.what = ctx ? "join" : "wait";
  jo->op.cancel = join_cancel;
  jo->target = t;
  jo->next = t->joiners;
  t->joiners = jo;
  if (timeout_ms >= 0) {
    jo->timer = (uv_timer_t *)malloc(sizeof *jo->timer);
    uv_timer_init(sw_loop(), jo->timer);
    uv_update_time(sw_loop());
    jo->timer->data = jo;
    uv_timer_start(jo->timer, on_join_timeout, (uint64_t)timeout_ms, 0);
  }
  return awaitk(L, &jo->op, ctx, join_k);
}

/* task:join() -> the task's return values, or raises its error */
static int task_join(lua_State *L) {
  sw_task *t = check_task(L, 1);
  lua_settop(L, 1);
  if (t->state >= T_DONE) {
    observe(L, t, 1);
    return push_outcome(L, 1);
  }
  return park_on(L, t, -1, 1);
}

/* task:wait([timeout]) -> true when the task has ended, false on timeout */
static int task_wait(lua_State *L) {
  sw_task *t = check_task(L, 1);
  double timeout = lua_isnoneornil(L, 2) ? -1 : sw_check_duration(L, 2, "wait");
  if (t->state >= T_DONE) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return park_on(L, t, timeout, 0);
}

/* task:result() -> true, values... | false, err, traceback | nil if running */
static int task_result(lua_State *L) {
  sw_task *t = check_task(L, 1);
  if (t->state < T_DONE) return 0;
  observe(L, t, 1);
  lua_getiuservalue(L, 1, UV_OUTCOME);
  int out = lua_gettop(L);
  lua_getfield(L, out, "ok");
  if (lua_toboolean(L, -1)) {
    lua_getfield(L, out, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, out, i);
    return n + 1;
  }
  lua_getfield(L, out, "err");
  lua_getfield(L, out, "traceback");
  return 3;
}

static int task_cancel(lua_State *L) {
  cancel_task(check_task(L, 1));
  return 0;
}

/* task:cancel_requested() -> whether someone has cancelled the task */
static int task_cancel_requested(lua_State *L) {
  lua_pushboolean(L, check_task(L, 1)->cancel_requested);
  return 1;
}

static int task_status(lua_State *L) {
  sw_task *t = check_task(L, 1);
  if (t->state == T_FAILED) observe(L, t, 1);
  lua_pushstring(L, state_names[t->state]);
  return 1;
}

static int task_tostring(lua_State *L) {
  sw_task *t = check_task(L, 1);
  lua_pushfstring(L, "task (%s): %p", state_names[t->state], (void *)t);
  return 1;
}

static int task_gc(lua_State *L) {
  sw_task *t = check_task(L, 1);
  if (t->co) *(sw_task **)lua_getextraspace(t->co) = NULL;
  /* os.exit(code, true) closes the state inside a resume: the watchdog,
   * which goes on signalling while exit takes its time (LeakSanitizer's
   * check), must not reach the freed task. */
  if (t == running) {
    atomic_store(&in_resume, 0);
    running = NULL;
  }
  return 0;
}

/* current() -> the running task, or nil outside tasks */
static int task_current(lua_State *L) {
  sw_task *t = sw_current(L);
  if (t == NULL) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
  return 1;
}

/* is_cancelled(err) -> whether err is the error a cancelled task unwinds with */
static int task_is_cancelled(lua_State *L) {
  int yes = 0;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, CANCELLED_MT);
    yes = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, yes);
  return 1;
}

static void sleep_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_sleep(uv_timer_t *timer) {
  sleep_op *s = (sleep_op *)timer->data;
  sw_op_done(&s->op, 0);
  uv_close((uv_handle_t *)timer, sleep_closed);
}

static void sleep_cancel(sw_op *op) {
  sleep_op *s = (sleep_op *)op;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, sleep_closed);
}

/* sleep(duration) */
static int task_sleep(lua_State *L) {
  double ms = sw_check_duration(L, 1, "sleep");
  sw_check_task(L, "sleep");
  sleep_op *s = (sleep_op *)calloc(1, sizeof *s);
  s->op.what = "sleep";
  s->op.cancel = sleep_cancel;
  uv_timer_init(sw_loop(), &s->timer);
  uv_update_time(sw_loop());      /* the loop's clock is stale while tasks run */
  s->timer.data = s;
  uv_timer_start(&s->timer, on_sleep, ms < 0 ? 0 : (uint64_t)ms, 0);
  return sw_await(L, &s->op);
}

/* yield() -> let every other ready task run, then continue */
static int task_yield(lua_State *L) {
  sw_check_task(L, "yield");
  return lua_yieldk(L, 0, 0, await_k);
}

/* now() -> milliseconds from a monotonic clock (fractional) */
static int task_now(lua_State *L) {
  lua_pushnumber(L, (double)uv_hrtime() / 1e6);
  return 1;
}

/* wall() -> seconds since the epoch, with the fraction: the wall clock
 * (os.time() has whole seconds), for times that order events across
 * processes. */
static int task_wall(lua_State *L) {
  uv_timeval64_t tv;
  int rc = uv_gettimeofday(&tv);
  if (rc != 0) return luaL_error(L, "task.wall: %s", uv_strerror(rc));
  lua_pushnumber(L, (double)tv.tv_sec + (double)tv.tv_usec / 1e6);
  return 1;
}

static void count_handle(uv_handle_t *h, void *arg) {
  if (h->data != &internal_tag && !uv_is_closing(h)) {
    (*(int *)arg)++;
    if (getenv("SLIPWAY_DEBUG_HANDLES"))
      fprintf(stderr, "handle %s %p active=%d\n", uv_handle_type_name(h->type),
              (void *)h, uv_is_active(h));
  }
}

/* stats() -> {refs, ops, tasks, handles}: live counters for leak checks */
static int task_stats(lua_State *L) {
  int handles = 0;
  uv_walk(sw_loop(), count_handle, &handles);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, sw_live_refs);
  lua_setfield(L, -2, "refs");
  lua_pushinteger(L, sw_live_ops);
  lua_setfield(L, -2, "ops");
  lua_pushinteger(L, live_tasks);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, handles);
  lua_setfield(L, -2, "handles");
  return 1;
}

/* run(fn, ...) -> true, values... | false, err, traceback
 * Run fn as a task and drive the loop until nothing is left to do. Only
 * from outside tasks (the host's entry points use it). */
static int task_run(lua_State *L) {
  if (sw_current(L) != NULL || running)
    return luaL_error(L, "task.run: already inside a task (use spawn)");
  int nargs = lua_gettop(L) - 1;
  sw_task *t = new_task(L, 1, nargs, 0);
  int tidx = lua_gettop(L);
  drain_ready();
  uv_run(sw_loop(), UV_RUN_DEFAULT);
  if (t->state < T_DONE) {
    /* Nothing can ever wake it: report instead of hanging. */
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "deadlock: the task is %s but nothing is pending on the loop",
                    state_names[t->state]);
    lua_pushnil(L);
    return 3;
  }
  lua_pushcfunction(L, task_result);
  lua_pushvalue(L, tidx);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L) - tidx;
}

static const luaL_Reg task_methods[] = {
  {"join", task_join},
  {"wait", task_wait},
  {"result", task_result},
  {"cancel", task_cancel},
  {"status", task_status},
  {"cancel_requested", task_cancel_requested},
  {NULL, NULL}
};

static const luaL_Reg task_funcs[] = {
  {"spawn", task_spawn},
  {"spawn_with", task_spawn_with},
  {"context", task_context},
  {"set_context", task_set_context},
  {"take_strays", task_take_strays},
  {"sleep", task_sleep},
  {"yield", task_yield},
  {"current", task_current},
  {"cancel", task_cancel},
  {"is_cancelled", task_is_cancelled},
  {"stats", task_stats},
  {"now", task_now},
  {"wall", task_wall},
  {"run", task_run},
  {NULL, NULL}
};

static int cancelled_tostring(lua_State *L) {
  lua_pushliteral(L, "cancelled");
  return 1;
}

/* os.exit ends the process from wherever it is called, possibly inside a
 * task's resume while lua_close frees that task: preemption stops first. */
static int exit_quietly(lua_State *L) {
  stop_preempting();
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static void guard_os_exit(lua_State *L) {
  int top = lua_gettop(L);
  if (lua_getglobal(L, "os") == LUA_TTABLE && lua_getfield(L, -1, "exit") == LUA_TFUNCTION &&
      lua_tocfunction(L, -1) != exit_quietly) {
    lua_pushcclosure(L, exit_quietly, 1);              /* [os, wrapper] */
    lua_setfield(L, -2, "exit");
  }
  lua_settop(L, top);
}

int luaopen_slipway_task(lua_State *L) {
  if (main_L == NULL) {
    lua_State *m;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    m = lua_tothread(L, -1);
    lua_pop(L, 1);
    main_L = m;
  }
  sw_loop();
  guard_os_exit(L);
  if (luaL_newmetatable(L, TASK_MT)) {
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, task_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    task_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, CANCELLED_MT)) {
    lua_pushcfunction(L, cancelled_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, task_funcs);
  return 1;
}
