/*
 * await.h: the await bridge between libuv/libcurl completions and Lua tasks.
 *
 * A task is a coroutine owned by the runtime. A native async function called
 * from a task starts its operation, hands a struct sw_op to sw_await() and
 * returns what sw_await() returns. When the operation completes, its callback
 * pushes the results with sw_op_push_*() or directly onto sw_op_thread(op)
 * and calls sw_op_done(op, nresults). The task is then resumed (from the
 * runtime's run queue, never from inside the callback itself), and the
 * native's results are whatever the callback pushed. Errors are values:
 * push nil, "message", "CODE" (sw_op_fail) rather than raising.
 *
 * Ownership: between sw_await() and sw_op_done() the op holds exactly one
 * registry ref to its task (which owns the coroutine); sw_op_done() drops
 * it. If the task is cancelled while the op is pending, the runtime calls
 * op->cancel(op) exactly once; the cancel function must stop the underlying
 * work (kill the process group, remove the curl handle, stop the timer) and
 * must NOT call sw_op_done(); the runtime drops the task ref itself. Memory
 * the op owns is released by the operation's own close path either way
 * (uv_close callback, curl completion, ...), after which nothing may touch
 * op->task again. sw_op_done() on an op whose task was cancelled is a no-op.
 */
#ifndef SLIPWAY_AWAIT_H
#define SLIPWAY_AWAIT_H

#include <lua.h>
#include <uv.h>

typedef struct sw_task sw_task;
typedef struct sw_op sw_op;

struct sw_op {
  sw_task *task;              /* NULL once completed or cancelled */
  void (*cancel)(sw_op *op);  /* stop the work; may be NULL if nothing to stop */
  const char *what;           /* short name for diagnostics ("proc", "sleep") */
};

/* The loop every native uses. */
uv_loop_t *sw_loop(void);

/* The task running L, or NULL when L is not a task coroutine. */
sw_task *sw_current(lua_State *L);

/* Raise "<what>: call this inside a task" unless L is a task coroutine that
 * may block. Returns the task. */
sw_task *sw_check_task(lua_State *L, const char *what);

/* Park the running task on op. Call as `return sw_await(L, op);` as the last
 * thing a native does; the stack is cleared first. */
int sw_await(lua_State *L, sw_op *op);

/* The suspended coroutine to push results onto (valid while op->task). */
lua_State *sw_op_thread(sw_op *op);

/* Complete op with nresults values pushed onto sw_op_thread(op). */
void sw_op_done(sw_op *op, int nresults);

/* Complete op with the usual failure triple: nil, "<msg>", "<code>". */
void sw_op_fail(sw_op *op, const char *msg, const char *code);

/* Push the running task's context value (nil outside tasks: see
 * task.context) and return its type. Natives read fields of it by the
 * contract documented in lua/context.lua, never modules by name. */
int sw_push_context(lua_State *L);

/* Mark a handle as the runtime's own, so leak checks do not count it. */
void sw_mark_internal(uv_handle_t *h);

/* Live counters for leak checks (module slipway.task exposes them). */
extern long sw_live_refs;   /* registry refs held by pending ops/tasks */
extern long sw_live_ops;    /* ops between sw_await and done/cancel */

#endif
