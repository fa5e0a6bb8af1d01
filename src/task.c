/*
 * task.c: tasks (coroutines run by the runtime), the await bridge, and the
 * slipway.task module: spawn, join, wait, cancel, sleep, run, stats.
 *
 * Every resumption of a task goes through resume_task(), called only from
 * drain_ready(), which runs from an idle handle on the loop (or from task.run
 * before the loop starts). Completion callbacks never resume a coroutine
 * themselves: sw_op_done() queues the task and returns, so no Lua code runs
 * inside a libuv or libcurl callback and errors always surface at the task's
 * own await point.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

#define TASK_MT "slipway.Task"
#define CANCELLED_MT "slipway.Cancelled"

enum { T_READY, T_RUNNING, T_WAITING, T_DONE, T_FAILED, T_CANCELLED };
static const char *const state_names[] = {
  "ready", "running", "waiting", "done", "failed", "cancelled"
};

typedef struct join_op join_op;

struct sw_task {
  lua_State *co;
  int self_ref;         /* registry ref keeping the task alive until it ends */
  int state;
  int started;          /* the coroutine has run at least once */
  int nargs;            /* values pushed onto co for the next resume */
  int cancel_requested;
  int queued;
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
static int internal_tag;         /* handle->data of the runtime's own handles */
static sw_task *ready_head = NULL, *ready_tail = NULL;
static sw_task *running = NULL;
static int draining = 0;

uv_loop_t *sw_loop(void) {
  if (the_loop == NULL) {
    uv_loop_init(&loop_storage);
    the_loop = &loop_storage;
    uv_idle_init(the_loop, &drain_idle);
    drain_idle.data = &internal_tag;
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

static void enqueue(sw_task *t) {
  if (t->queued) return;
  t->queued = 1;
  t->next_ready = NULL;
  if (ready_tail) ready_tail->next_ready = t; else ready_head = t;
  ready_tail = t;
  if (!uv_is_active((uv_handle_t *)&drain_idle))
    uv_idle_start(&drain_idle, on_idle);
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
    luaL_where(L, 1);
    lua_pushfstring(L, "%s: call this inside a task (it waits for I/O)", what);
    lua_concat(L, 2);
    lua_error(L);
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

/* Record how the coroutine ended in uservalue 2 of the task:
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
  lua_setiuservalue(L, -2, 2);                                /* [task] */
  lua_pop(L, 1);
  lua_resetthread(co);
  *(sw_task **)lua_getextraspace(co) = NULL;
  live_tasks--;
  finish_joiners(t);
  drop_ref(L, &t->self_ref);
}

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
  t->started = 1;
  t->state = T_RUNNING;
  running = t;
  status = lua_resume(co, main_L, t->nargs, &nres);
  running = NULL;
  t->nargs = 0;
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->pending == NULL) {      /* a plain coroutine.yield(): let others run */
      t->state = T_READY;
      enqueue(t);
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
  uv_idle_stop(&drain_idle);
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
  }
  /* a running task sees the flag at its next await */
}

/* ------------------------------------------------------------ Lua API */

static sw_task *check_task(lua_State *L, int idx) {
  return (sw_task *)luaL_checkudata(L, idx, TASK_MT);
}

/* Push a new task running the function at fidx with the nargs values above
 * it; queued to start once the current task yields. */
static sw_task *new_task(lua_State *L, int fidx, int nargs) {
  luaL_checktype(L, fidx, LUA_TFUNCTION);
  sw_task *t = (sw_task *)lua_newuserdatauv(L, sizeof *t, 2);  /* [.., task] */
  memset(t, 0, sizeof *t);
  t->self_ref = LUA_NOREF;
  luaL_setmetatable(L, TASK_MT);
  lua_State *co = lua_newthread(L);                              /* [.., task, co] */
  *(sw_task **)lua_getextraspace(co) = t;
  t->co = co;
  lua_pushvalue(L, fidx);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, fidx + i);
  lua_xmove(L, co, nargs + 1);
  lua_setiuservalue(L, -2, 1);                                   /* [.., task] */
  t->nargs = nargs;
  t->state = T_READY;
  lua_pushvalue(L, -1);
  t->self_ref = take_ref(L);
  live_tasks++;
  sw_loop();
  enqueue(t);
  return t;
}

/* spawn(fn, ...) -> Task */
static int task_spawn(lua_State *L) {
  new_task(L, 1, lua_gettop(L) - 1);
  return 1;
}

/* Push t's results (returning their count) or raise its error. A string
 * error gets the task's traceback appended so it is never lost. */
static int push_outcome(lua_State *L, int idx) {
  lua_getiuservalue(L, idx, 2);                      /* [.., out] */
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
  if (ctx == 1) return push_outcome(L, 1); /* join */
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
  if (t->state >= T_DONE) return push_outcome(L, 1);
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
  lua_getiuservalue(L, 1, 2);
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

static int task_status(lua_State *L) {
  lua_pushstring(L, state_names[check_task(L, 1)->state]);
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
  sw_task *t = new_task(L, 1, nargs);
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
  {NULL, NULL}
};

static const luaL_Reg task_funcs[] = {
  {"spawn", task_spawn},
  {"sleep", task_sleep},
  {"yield", task_yield},
  {"current", task_current},
  {"cancel", task_cancel},
  {"is_cancelled", task_is_cancelled},
  {"stats", task_stats},
  {"now", task_now},
  {"run", task_run},
  {NULL, NULL}
};

static int cancelled_tostring(lua_State *L) {
  lua_pushliteral(L, "cancelled");
  return 1;
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
  if (luaL_newmetatable(L, TASK_MT)) {
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, task_gc);
    lua_setfield(L, -2, "__gc");
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
