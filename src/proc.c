/*
 * proc.c: child processes (module slipway.proc).
 *
 *   proc.run(cmd, opts) -> {code, signal, stdout, stderr, pid, duration_ms
 *                           [, timed_out]}  |  nil, "ENOENT: ...", "ENOENT"
 *   proc.spawn(cmd, opts) -> Process (.pid, :wait(), :kill([sig]))
 *   proc.kill_all([signal [, {spare_cancelling}]]) -> groups signalled
 *   proc.live() -> {{pid=, pgid=}, ...}
 *
 * Options: cwd; env (name = value adds or replaces, name = false removes);
 * env_clear (start from nothing); stdin (data to send, else /dev/null);
 * stdout, stderr: "capture" (default), "inherit", "null", or a function
 * called with (line, stream) for each line, the unterminated last one too
 * (that stream is then not captured: the result has no field for it);
 * "inherit" inside a pipeline run means the running unit's output (the
 * context's `output` function: lua/context.lua), not slipway's own fds;
 * outside runs, once a secret exists (slipway.secret), slipway's own fds
 * through the masker, line by line;
 * timeout (a duration: SIGTERM to the group, SIGKILL after kill_grace,
 * default 2s; code 124, timed_out = true). A child killed by a signal has
 * code 128 + N and signal = "SIGKILL". Programs are looked up in slipway's
 * own PATH (posix_spawnp), whatever env gives the child.
 * cancel_signal (a signal name, for programs that clean up when asked, as
 * the Pulumi CLI releases its stack lock on SIGINT): a timeout sends it
 * instead of SIGTERM, and a cancelled task (or a line callback that
 * raised) no longer SIGKILLs the group at once but sends it this signal,
 * then SIGKILL when kill_grace passes. The task unwinds at once; the child
 * winds down on its own, its output read and dropped (a closed pipe would
 * kill it with SIGPIPE), and the loop keeps running, so slipway does not
 * exit, until it is reaped. proc.kill_all(sig, {spare_cancelling = true})
 * leaves such children to their grace.
 * max_output (bytes, default 64 MiB): the most read from each of stdout
 * and stderr, captured or handed to a line function. One byte more and the
 * run stops reading, SIGKILLs the group and, once the child is reaped,
 * returns nil, "EOUTPUTTOOLARGE: stdout passed max_output (64 MiB), the
 * process group was killed: cmd", "EOUTPUTTOOLARGE" (lines within the
 * limit were delivered). Memory that cannot be had ends a run the same way
 * with ENOMEM.
 *
 * cmd is an argv list {"ls", "-l"} or a string run by /bin/sh -c. Like
 * GNU make, a string the shell would only split into words (no quoting,
 * expansion, redirection, builtin...: shell_words.c) is run directly
 * instead, with what the shell would have given it: the environment
 * without names that are not identifiers and with PWD naming the
 * directory it runs in. When that cannot start (no such program, not
 * executable, a script without #!), or the child's PATH differs from
 * slipway's (env sets PATH, env_clear), the shell runs the string as
 * before, so messages and exit codes (127, 126) are the shell's.
 * proc.spawn's Process says which: p.shell is true or false. Every
 * child leads its own process group (a new session: setsid), so
 * a timeout, a cancelled task or kill_all() reaches its grandchildren too.
 * A child that exits non-zero is data; failing to start and output beyond
 * max_output are errors. Strings that reach the system (argv words, the
 * shell string, env names and values, cwd) must not contain a NUL byte:
 * that raises, like every other caller mistake. No word of cmd may be a
 * Secret or hold a secret's value (it would be readable in /proc by any
 * user): that raises too, saying to use env or stdin, which take Secrets.
 *
 * Spawning uses posix_spawn (vfork-fast, setsid, signal dispositions reset)
 * rather than uv_spawn: libuv 1.44 reaps by calling waitpid() on every live
 * child at each SIGCHLD, which is quadratic with 200 children. Each child
 * here gets a pidfd watched by a uv_poll_t and is reaped by its own
 * waitpid(); kernels without pidfd_open fall back to one SIGCHLD watcher.
 *
 * Lifetime: a run is one malloc'ed struct owning up to three pipes, the
 * exit watcher and an optional timer. The awaiting task "owns" it until
 * proc.run returns or unwinds; the handles own it until their close
 * callbacks ran. The struct is freed when both are gone. The exit watcher
 * stays until the child is reaped, so there are no zombies even when the
 * task that started it was cancelled.
 *
 * Line callbacks (stdout = function) are never called from libuv: read
 * callbacks queue complete lines and wake the parked task, which calls the
 * function from its own coroutine (through lua_pcallk, so the function may
 * itself await) and parks again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "slipway.h"
#include "shell_words.h"

extern char **environ;

enum { S_IN, S_OUT, S_ERR };
enum { M_CAPTURE, M_INHERIT, M_NULL, M_LINES };

#define QUEUE_HIGH (1 << 20)    /* pause reading when this much is queued */
#define QUEUE_LOW (1 << 18)     /* ...and resume below this */
#define DEFAULT_MAX_OUTPUT ((size_t)64 << 20)   /* per stream */

typedef struct line {
  struct line *next;
  int stream;
  size_t len;
  char data[];
} line;

typedef struct {
  char *p;
  size_t len, cap;
} growbuf;

#define PROCESS_MT "slipway.Process"

typedef struct run_state run_state;

/* The userdata proc.spawn returns; run is NULL once waited for (the result
 * is then in its uservalue) or detached. */
typedef struct {
  run_state *run;
  int pid;
  int shell;                  /* see run_state.shell */
  int waiting;
} process_ud;

struct run_state {
  sw_op op;                   /* first: the await bridge casts to it */
  uv_poll_t exit_poll;         /* readable when the child exits (its pidfd) */
  int pidfd;
  int has_poll;
  int reap_by_signal;         /* no pidfd: the SIGCHLD scan reaps it */
  uv_pipe_t pipes[3];
  uv_timer_t timer;
  uv_write_t write_req;
  char *stdin_data;
  size_t stdin_len;
  int mode[3];                /* M_* for stdout and stderr */
  int piped[3];               /* pipes[i] was initialised */
  int reading[3];             /* pipes[i] is open and not at EOF yet */
  int has_timer;
  growbuf capture[3];
  growbuf partial[3];         /* the unterminated tail of a line stream */
  line *head, *tail;
  size_t queued;              /* bytes in the line queue */
  int paused;
  int handles;                /* handles whose close callback is pending */
  int owned;                  /* the task still uses this struct */
  int spawned, exited, abandoned, timed_out, in_grace;
  int term_signal;
  int64_t exit_status;
  size_t max_output;          /* bytes each of stdout, stderr may bring */
  size_t got[3];              /* bytes read from each so far */
  int stopped;                /* 0, or the stream that passed max_output */
  int cancel_signal;          /* 0, or what a cancellation sends first */
  int winding_down;           /* abandoned with cancel_signal: in its grace */
  int out_of_memory;          /* ...or could not be kept */
  char what[96];              /* the command, for the error message */
  double grace_ms;
  uint64_t start_ns, end_ns;
  int pid;
  run_state *prev, *next;      /* live registry: spawned, not yet exited */
  process_ud *ud;             /* the proc.spawn handle, if any */
  int detached;               /* its handle was collected: drop the output */
  int shell;                  /* a string cmd: 1 run by /bin/sh, 0 directly; -1 argv */
};

static run_state *live_head = NULL;
static char read_buffer[65536]; /* one read at a time: the loop is single-threaded */

/* ------------------------------------------------------------ signals */

static const struct { const char *name; int num; } signals[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ}, {"SIGVTALRM", SIGVTALRM},
  {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH}, {"SIGSYS", SIGSYS},
  {NULL, 0}
};

static void push_signal_name(lua_State *L, int sig) {
  for (int i = 0; signals[i].name; i++)
    if (signals[i].num == sig) {
      lua_pushstring(L, signals[i].name);
      return;
    }
  lua_pushfstring(L, "SIG%d", sig);
}

/* The number of "SIGTERM" or "TERM", or 0. */
static int signal_number(const char *s) {
  for (int i = 0; signals[i].name; i++)
    if (strcmp(signals[i].name, s) == 0 || strcmp(signals[i].name + 3, s) == 0)
      return signals[i].num;
  return 0;
}

/* "SIGTERM", "TERM" or a number; raises on anything else. */
static int check_signal(lua_State *L, int idx, const char *def, const char *fname) {
  if (lua_type(L, idx) == LUA_TNUMBER) return (int)luaL_checkinteger(L, idx);
  const char *s = luaL_optstring(L, idx, def);
  int sig = signal_number(s);
  if (sig) return sig;
  return luaL_error(L, "%s: unknown signal '%s' (expected e.g. SIGTERM)", fname, s);
}

/* ----------------------------------------------------------- lifetime */

static void kill_group(run_state *p, int sig) {
  if (p->spawned && kill(-p->pid, sig) != 0 && !p->exited)
    kill(p->pid, sig);        /* no group: cannot happen after setsid */
}

static void maybe_free(run_state *p) {
  /* a child not yet reaped still needs p (its exit watcher points here) */
  if (p->handles > 0 || p->owned || (p->spawned && !p->exited)) return;
  for (int i = 0; i < 3; i++) {
    free(p->capture[i].p);
    free(p->partial[i].p);
  }
  while (p->head) {
    line *n = p->head->next;
    free(p->head);
    p->head = n;
  }
  free(p->stdin_data);
  free(p);
}

static void on_closed(uv_handle_t *h) {
  run_state *p = (run_state *)h->data;
  p->handles--;
  maybe_free(p);
}

static void close_handle(run_state *p, uv_handle_t *h) {
  if (uv_is_closing(h)) return;
  h->data = p;
  p->handles++;
  uv_close(h, on_closed);
}

static void close_pipe(run_state *p, int i) {
  if (!p->piped[i]) return;
  p->reading[i] = 0;
  close_handle(p, (uv_handle_t *)&p->pipes[i]);
}

static void close_timer(run_state *p) {
  if (!p->has_timer) return;
  uv_timer_stop(&p->timer);
  close_handle(p, (uv_handle_t *)&p->timer);
}

static int finished(run_state *p) {
  return p->exited && !p->reading[S_OUT] && !p->reading[S_ERR];
}

/* Wake the parked task when it has something to do: lines to deliver or
 * the final result. */
static void maybe_wake(run_state *p) {
  if (p->op.task && (p->head || finished(p))) sw_op_done(&p->op, 0);
}

/* Everything is in: release what is still open (the exit watcher was
 * closed when the child was reaped). */
static void finish(run_state *p) {
  close_pipe(p, S_IN);
  close_pipe(p, S_OUT);
  close_pipe(p, S_ERR);
  close_timer(p);
  maybe_wake(p);
}

/* The task gave up on this run (cancelled, or its line callback raised):
 * kill the whole group and close the pipes now; the exit watcher stays
 * until the child is reaped. Once everything is over the group is left
 * alone (its id may belong to someone else by now). */
static void on_timer(uv_timer_t *t);
static void resume_reading(run_state *p);
static void drop_lines(run_state *p);

/* Abandoned with a cancel_signal: send it, and SIGKILL when kill_grace
 * passes unless the child is reaped first (child_exited closes the timer).
 * Its output is drained and dropped meanwhile. */
static void wind_down(run_state *p) {
  p->winding_down = 1;
  p->in_grace = 1;            /* the timer's next expiry is the SIGKILL */
  drop_lines(p);
  if (p->paused) resume_reading(p);
  close_pipe(p, S_IN);
  kill_group(p, p->cancel_signal);
  if (!p->has_timer) {
    uv_timer_init(sw_loop(), &p->timer);
    p->has_timer = 1;
    p->timer.data = p;
  }
  uv_timer_start(&p->timer, on_timer, (uint64_t)p->grace_ms, 0);
}

static void abandon(run_state *p) {
  if (p->abandoned) return;
  p->abandoned = 1;
  if (p->cancel_signal && !p->exited) {
    wind_down(p);
    return;
  }
  if (!finished(p)) kill_group(p, SIGKILL);
  close_pipe(p, S_IN);
  close_pipe(p, S_OUT);
  close_pipe(p, S_ERR);
  close_timer(p);
}

static void release(run_state *p) {
  p->owned = 0;
  maybe_free(p);
}

static void on_cancel(sw_op *op) {
  abandon((run_state *)op);
}

/* ---------------------------------------------------------- callbacks */

static uv_signal_t sigchld;       /* the fallback reaper */
static int sigchld_users = 0;

static void on_poll_closed(uv_handle_t *h) {
  run_state *p = (run_state *)h->data;
  close(p->pidfd);
  p->pidfd = -1;
  on_closed(h);
}

/* The child is reaped: record how it ended and finish when the output is
 * in too. */
static void child_exited(run_state *p, int status, int known) {
  p->exited = 1;
  if (!known) p->exit_status = -1;            /* reaped by someone else */
  else if (WIFSIGNALED(status)) p->term_signal = WTERMSIG(status);
  else p->exit_status = WEXITSTATUS(status);
  p->end_ns = uv_hrtime();
  if (p->prev) p->prev->next = p->next; else live_head = p->next;
  if (p->next) p->next->prev = p->prev;
  p->prev = p->next = NULL;
  if (p->has_poll) {
    uv_poll_stop(&p->exit_poll);
    p->exit_poll.data = p;
    p->handles++;
    uv_close((uv_handle_t *)&p->exit_poll, on_poll_closed);
  }
  if (p->reap_by_signal && --sigchld_users == 0) uv_signal_stop(&sigchld);
  if (p->winding_down) {      /* reaped within its grace: nothing left to do */
    close_pipe(p, S_OUT);
    close_pipe(p, S_ERR);
    close_timer(p);
  } else if (!p->abandoned) {
    /* After a timeout the group was killed: a grandchild that escaped it
     * must not keep the run alive by holding the pipes. */
    if (p->timed_out) {
      close_pipe(p, S_OUT);
      close_pipe(p, S_ERR);
    }
    if (finished(p)) finish(p);
  }
  maybe_free(p);              /* abandoned or detached, and nothing closing */
}

/* Try to reap p without blocking; returns whether it is gone. */
static int try_reap(run_state *p) {
  int status;
  pid_t r;
  do r = waitpid(p->pid, &status, WNOHANG); while (r < 0 && errno == EINTR);
  if (r == p->pid) child_exited(p, status, 1);
  else if (r < 0) child_exited(p, 0, 0);      /* ECHILD */
  else return 0;
  return 1;
}

static void on_pidfd(uv_poll_t *h, int status, int events) {
  (void)status; (void)events;
  try_reap((run_state *)h->data);
}

static void on_sigchld(uv_signal_t *h, int sig) {
  (void)h; (void)sig;
  for (run_state *p = live_head, *next; p; p = next) {
    next = p->next;
    if (p->reap_by_signal) try_reap(p);
  }
}

/* Arrange for p's child to be reaped when it exits. */
static void watch_exit(run_state *p) {
  static int no_pidfd = -1;   /* the variable lets the tests take the fallback */
  if (no_pidfd < 0) {
    const char *v = getenv("SLIPWAY_PROC_NO_PIDFD");
    no_pidfd = v != NULL && *v != '\0';
  }
  int fd = no_pidfd ? -1 : (int)syscall(SYS_pidfd_open, p->pid, 0);
  if (fd >= 0) {
    p->pidfd = fd;
    p->has_poll = 1;
    uv_poll_init(sw_loop(), &p->exit_poll, fd);
    p->exit_poll.data = p;
    uv_poll_start(&p->exit_poll, UV_READABLE, on_pidfd);
    return;
  }
  no_pidfd = 1;
  if (sigchld.loop == NULL) {
    uv_signal_init(sw_loop(), &sigchld);
    sw_mark_internal((uv_handle_t *)&sigchld);
  }
  p->reap_by_signal = 1;
  if (sigchld_users++ == 0) uv_signal_start(&sigchld, on_sigchld, SIGCHLD);
  try_reap(p);                /* it may have exited before the watcher started */
}

static void on_timer(uv_timer_t *t) {
  run_state *p = (run_state *)t->data;
  if (!p->in_grace) {
    p->timed_out = 1;
    p->in_grace = 1;
    kill_group(p, p->cancel_signal ? p->cancel_signal : SIGTERM);
    if (p->exited) {        /* only the pipes kept it alive */
      close_pipe(p, S_OUT);
      close_pipe(p, S_ERR);
      finish(p);
      return;
    }
    uv_timer_start(t, on_timer, (uint64_t)p->grace_ms, 0);
  } else {
    kill_group(p, SIGKILL);
  }
}

static int grow(growbuf *b, size_t extra) {
  if (b->len + extra <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  char *np = (char *)realloc(b->p, cap);
  if (np == NULL) return -1;
  b->p = np;
  b->cap = cap;
  return 0;
}

static int append(growbuf *b, const char *s, size_t n) {
  if (n && grow(b, n) != 0) return -1;
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

static int queue_line(run_state *p, int stream, const char *s, size_t n) {
  line *ln = (line *)malloc(sizeof *ln + n);
  if (ln == NULL) return -1;
  ln->next = NULL;
  ln->stream = stream;
  ln->len = n;
  memcpy(ln->data, s, n);
  if (p->tail) p->tail->next = ln; else p->head = ln;
  p->tail = ln;
  p->queued += n;
  return 0;
}

/* Split new data into lines; the unterminated rest waits in partial.
 * Returns -1 when memory ran out. */
static int split_lines(run_state *p, int i, const char *s, size_t n) {
  growbuf *part = &p->partial[i];
  const char *end = s + n;
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL) return append(part, s, (size_t)(end - s));
    if (part->len) {
      if (append(part, s, (size_t)(nl - s)) != 0 ||
          queue_line(p, i, part->p, part->len) != 0)
        return -1;
      part->len = 0;
    } else if (queue_line(p, i, s, (size_t)(nl - s)) != 0) {
      return -1;
    }
    s = nl + 1;
  }
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h; (void)suggested;
  buf->base = read_buffer;
  buf->len = sizeof read_buffer;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void pause_reading(run_state *p) {
  p->paused = 1;
  for (int i = S_OUT; i <= S_ERR; i++)
    if (p->reading[i]) uv_read_stop((uv_stream_t *)&p->pipes[i]);
}

static void resume_reading(run_state *p) {
  p->paused = 0;
  for (int i = S_OUT; i <= S_ERR; i++)
    if (p->reading[i]) uv_read_start((uv_stream_t *)&p->pipes[i], on_alloc, on_read);
}

/* Forget queued lines (their reader is gone) and let the child write on. */
static void drop_lines(run_state *p) {
  while (p->head) {
    line *n = p->head->next;
    free(p->head);
    p->head = n;
  }
  p->tail = NULL;
  p->queued = 0;
  if (p->paused && !p->abandoned) resume_reading(p);
}

/* Stream i brought more than max_output, or what it brought could not be
 * kept: stop reading both streams, kill the group, drop what was captured
 * (the run now ends in an error); the exit watcher stays to reap. */
static void stop_output(run_state *p, int i, int out_of_memory) {
  p->stopped = i;
  p->out_of_memory = out_of_memory;
  kill_group(p, SIGKILL);
  close_pipe(p, S_OUT);
  close_pipe(p, S_ERR);
  for (int k = S_OUT; k <= S_ERR; k++) {
    free(p->capture[k].p);
    free(p->partial[k].p);
    memset(&p->capture[k], 0, sizeof p->capture[k]);
    memset(&p->partial[k], 0, sizeof p->partial[k]);
  }
  if (finished(p)) finish(p);
  else maybe_wake(p);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  run_state *p = (run_state *)s->data;
  int i = (s == (uv_stream_t *)&p->pipes[S_OUT]) ? S_OUT : S_ERR;
  if (nread > 0) {
    if (p->detached || p->winding_down) return;  /* nobody will ever read it */
    if ((size_t)nread > p->max_output - p->got[i]) {
      stop_output(p, i, 0);
      return;
    }
    p->got[i] += (size_t)nread;
    int failed = p->mode[i] == M_LINES ? split_lines(p, i, buf->base, (size_t)nread)
                                       : append(&p->capture[i], buf->base, (size_t)nread);
    if (failed) {
      stop_output(p, i, 1);
      return;
    }
    if (p->queued > QUEUE_HIGH && !p->paused) pause_reading(p);
    maybe_wake(p);
    return;
  }
  if (nread == 0) return;
  /* EOF or a read error: this stream is over */
  if (p->mode[i] == M_LINES && p->partial[i].len && !p->detached && !p->winding_down) {
    if (queue_line(p, i, p->partial[i].p, p->partial[i].len) != 0) {
      stop_output(p, i, 1);
      return;
    }
    p->partial[i].len = 0;
  }
  close_pipe(p, i);
  if (finished(p)) finish(p);
  else maybe_wake(p);
}

static void on_written(uv_write_t *req, int status) {
  run_state *p = (run_state *)req->data;
  (void)status;   /* EPIPE: the child did not read it all; that is its business */
  close_pipe(p, S_IN);
}

/* ------------------------------------------------------------ results */

/* The failure triple of a run stopped by stop_output; returns 3. */
static int push_stopped(lua_State *L, run_state *p) {
  const char *stream = p->stopped == S_OUT ? "stdout" : "stderr";
  lua_pushnil(L);
  if (p->out_of_memory) {
    lua_pushfstring(L, "ENOMEM: out of memory keeping the %s of %s, the process "
                    "group was killed", stream, p->what);
    lua_pushliteral(L, "ENOMEM");
  } else {
    char size[32];
    sw_format_size(p->max_output, size, sizeof size);
    lua_pushfstring(L, "EOUTPUTTOOLARGE: %s passed max_output (%s), the process "
                    "group was killed: %s", stream, size, p->what);
    lua_pushliteral(L, "EOUTPUTTOOLARGE");
  }
  return 3;
}

static void push_result(lua_State *L, run_state *p) {
  lua_createtable(L, 0, 7);
  lua_Integer code = p->exit_status;
  if (p->timed_out) code = 124;
  else if (p->term_signal) code = 128 + p->term_signal;
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "code");
  if (p->term_signal) {
    push_signal_name(L, p->term_signal);
    lua_setfield(L, -2, "signal");
  }
  for (int i = S_OUT; i <= S_ERR; i++) {
    if (p->mode[i] != M_CAPTURE) continue;
    lua_pushlstring(L, p->capture[i].p ? p->capture[i].p : "", p->capture[i].len);
    lua_setfield(L, -2, i == S_OUT ? "stdout" : "stderr");
  }
  lua_pushinteger(L, p->pid);
  lua_setfield(L, -2, "pid");
  lua_pushnumber(L, (double)(p->end_ns - p->start_ns) / 1e6);
  lua_setfield(L, -2, "duration_ms");
  if (p->timed_out) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "timed_out");
  }
}

/* ---------------------------------------------------------- proc.run */

/* Stack slots while run_loop runs: 1 cmd (the Process in process:wait),
 * 2 opts (nil there), 3 stdout function, 4 stderr function (nil when that
 * stream is not line-mode). */
#define SLOT_FN(i) ((i) == S_OUT ? 3 : 4)

static int run_loop(lua_State *L, run_state *p);

/* Parks the task until p has lines or is finished; results: none. */
static int run_park(lua_State *L) {
  run_state *p = (run_state *)lua_touserdata(L, 1);
  if (p->head || finished(p)) return 0;
  return sw_await(L, &p->op);
}

/* Continuation of run_loop after the wait or a line callback yielded; an
 * error (cancellation included) lands here too and abandons the run. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  run_state *p = (run_state *)ctx;
  if (status != LUA_OK && status != LUA_YIELD) {
    abandon(p);
    if (p->ud) {              /* a later wait() says it was abandoned */
      p->ud->run = NULL;
      p->ud = NULL;
    }
    release(p);
    return lua_error(L);
  }
  lua_settop(L, 4);
  return run_loop(L, p);
}

static int run_loop(lua_State *L, run_state *p) {
  for (;;) {
    int status;
    line *ln = p->head;
    if (ln) {
      p->head = ln->next;
      if (p->head == NULL) p->tail = NULL;
      p->queued -= ln->len;
      if (p->paused && p->queued < QUEUE_LOW && !p->abandoned) resume_reading(p);
      lua_pushvalue(L, SLOT_FN(ln->stream));
      lua_pushlstring(L, ln->data, ln->len);
      lua_pushstring(L, ln->stream == S_OUT ? "stdout" : "stderr");
      free(ln);
      status = lua_pcallk(L, 2, 0, 0, (lua_KContext)p, run_k);
    } else if (finished(p)) {
      int n = 1;
      if (p->stopped) n = push_stopped(L, p);
      else push_result(L, p);
      if (p->ud) {            /* process:wait(): slot 1 is the Process */
        lua_getiuservalue(L, 1, 1);
        for (int k = 0; k < n; k++) {   /* uservalue[3..5]: what a later wait() gives */
          lua_pushvalue(L, -1 - n + k);
          lua_rawseti(L, -2, 3 + k);
        }
        lua_pop(L, 1);
        p->ud->run = NULL;
        p->ud = NULL;
      }
      release(p);
      return n;
    } else {
      lua_pushcfunction(L, run_park);
      lua_pushlightuserdata(L, p);
      status = lua_pcallk(L, 1, 0, 0, (lua_KContext)p, run_k);
    }
    if (status != LUA_OK) return run_k(L, status, (lua_KContext)p);
  }
}

/* Raise a caller error with the file:line of the Lua code calling us. */
static int arg_error(lua_State *L, const char *msg) {
  return sw_raise_at_caller(L, msg);
}

static int stream_mode(lua_State *L, int opts, const char *key, const char *fname) {
  if (lua_isnil(L, opts)) return M_CAPTURE;
  int t = lua_getfield(L, opts, key), mode = -1;
  if (t == LUA_TNIL) mode = M_CAPTURE;
  else if (t == LUA_TFUNCTION) mode = M_LINES;
  else if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "capture") == 0) mode = M_CAPTURE;
    else if (strcmp(s, "inherit") == 0) mode = M_INHERIT;
    else if (strcmp(s, "null") == 0) mode = M_NULL;
  }
  if (mode < 0)
    arg_error(L, lua_pushfstring(L, "%s: option '%s' must be \"capture\", "
                                 "\"inherit\", \"null\" or a function, got %s", fname,
                                 key, luaL_tolstring(L, -1, NULL)));
  lua_pop(L, 1);
  return mode;
}

/* A line of output a child was to inherit, outside runs once a secret
 * exists: masked (slipway.secret) on slipway's own stdout or stderr. */
static int write_masked_line(lua_State *L) {
  size_t n, len;
  const char *s = luaL_checklstring(L, 1, &n);
  FILE *f = strcmp(luaL_checkstring(L, 2), "stderr") == 0 ? stderr : stdout;
  char *out = NULL;
  int r = sw_mask_text(s, n, &out, &len);
  if (r < 0) return luaL_error(L, "proc: out of memory masking output");
  fwrite(r ? out : s, 1, r ? len : n, f);
  putc('\n', f);
  fflush(f);
  free(out);
  return 0;
}

/* Inside a pipeline run, output that a child was to inherit is the
 * running unit's output: push the context's `output` function (line,
 * stream) and return 1. Outside runs it is slipway's own stdout/stderr:
 * once a secret exists, through write_masked_line (push it, return 1),
 * else left to the child (push nothing, return 0). */
static int push_inherit_sink(lua_State *L) {
  if (sw_push_context(L) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "output") == LUA_TFUNCTION) {
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (sw_mask_active()) {
    lua_pushcfunction(L, write_masked_line);
    return 1;
  }
  return 0;
}

/* Remember s in the anchor table (so it outlives the spawn) and return it. */
static char *anchor(lua_State *L, int anchors) {
  char *s = (char *)lua_tostring(L, -1);
  lua_rawseti(L, anchors, (lua_Integer)luaL_len(L, anchors) + 1);
  return s;
}

/* Memory that lives as long as the anchor table: freed by the collector,
 * so raising an argument error midway leaks nothing. */
static void *scratch(lua_State *L, int anchors, size_t size) {
  void *m = lua_newuserdatauv(L, size, 0);
  lua_rawseti(L, anchors, (lua_Integer)luaL_len(L, anchors) + 1);
  return m;
}

/* A secret on a command line is readable by every user of the machine
 * (/proc/PID/cmdline, ps) and shows in error messages: refuse it, saying
 * how to pass it instead. what: "cmd[2] is a secret", "the command
 * contains the value of a secret". */
static int refuse_secret(lua_State *L, const char *fname, const char *what) {
  return arg_error(L, lua_pushfstring(L, "%s: %s: a secret never goes on a command line (any "
    "user can read it there); pass it through env or stdin, e.g. sh('curl -H \"Authorization: "
    "Bearer $TOKEN\" ...', { env = { TOKEN = token } })", fname, what));
}

/* The string at idx (a word of cmd) must not hold a secret's value. */
static void check_no_secret(lua_State *L, int idx, const char *fname, const char *what) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (sw_mask_contains(s, len))
    refuse_secret(L, fname, lua_pushfstring(L, "%s contains the value of a secret", what));
}

/* argv from cmd (index 1) as a NULL-terminated array; the array and its
 * strings are kept alive by the anchor table. No word may be or hold a
 * secret. */
static char **build_argv(lua_State *L, int anchors, const char *fname) {
  char **argv;
  if (lua_type(L, 1) == LUA_TSTRING) {
    argv = (char **)scratch(L, anchors, 4 * sizeof *argv);
    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = (char *)sw_check_cstring(L, 1, fname, "cmd");
    check_no_secret(L, 1, fname, "the command");
    argv[3] = NULL;
    return argv;
  }
  if (sw_is_secret(L, 1)) refuse_secret(L, fname, "the command is a secret");
  if (lua_type(L, 1) != LUA_TTABLE)
    arg_error(L, lua_pushfstring(L, "%s: cmd must be an argv list or a "
                                 "shell string, got %s", fname, luaL_typename(L, 1)));
  lua_Integer n = luaL_len(L, 1);
  if (n < 1) arg_error(L, lua_pushfstring(L, "%s: cmd is an empty argv list", fname));
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, 1, i);
    if (sw_is_secret(L, -1))
      refuse_secret(L, fname, lua_pushfstring(L, "cmd[%d] is a secret", (int)i));
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      arg_error(L, lua_pushfstring(L, "%s: cmd[%d] must be a string, got %s", fname,
                                   (int)i, luaL_typename(L, -1)));
    if (t == LUA_TSTRING) {
      sw_check_cstring(L, -2, fname, lua_pushfstring(L, "cmd[%d]", (int)i));
      check_no_secret(L, -2, fname, lua_tostring(L, -1));
    }
    lua_pop(L, t == LUA_TSTRING ? 2 : 1);
  }
  argv = (char **)scratch(L, anchors, (size_t)(n + 1) * sizeof *argv);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lua_pushstring(L, lua_tostring(L, -1));   /* a number becomes a string */
    argv[i - 1] = anchor(L, anchors);
    lua_pop(L, 1);
  }
  argv[n] = NULL;
  return argv;
}

/* The child's environment when opts.env or opts.env_clear is given, as an
 * array in the anchor table (NULL otherwise: the child gets environ).
 * Values false remove a variable. */
static char **build_env(lua_State *L, int opts, int clear, int anchors,
                        const char *fname) {
  int envt = 0;
  size_t n = 0, extra = 0, base = 0;
  if (lua_getfield(L, opts, "env") == LUA_TTABLE) envt = lua_gettop(L);
  else if (!lua_isnil(L, -1))
    arg_error(L, lua_pushfstring(L, "%s: option 'env' must be a table, got %s", fname,
                                 luaL_typename(L, -1)));
  if (!envt && !clear) {
    lua_pop(L, 1);
    return NULL;
  }
  if (envt) {
    lua_pushnil(L);
    while (lua_next(L, envt)) {
      int kt = lua_type(L, -2), vt = lua_type(L, -1);
      if (sw_is_secret(L, -1)) vt = LUA_TSTRING;    /* its plain text */
      if (kt != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER &&
                                !(vt == LUA_TBOOLEAN && !lua_toboolean(L, -1))))
        arg_error(L, lua_pushfstring(L, "%s: env entries must be name = string "
                                     "(or false to unset), got %s = %s", fname,
                                     luaL_typename(L, -2), luaL_typename(L, -1)));
      const char *name = sw_check_cstring(L, -2, fname, "an env name");
      if (*name == '\0' || strchr(name, '=') != NULL)
        arg_error(L, lua_pushfstring(L, "%s: env name '%s' is empty or contains '='",
                                     fname, name));
      if (vt == LUA_TSTRING)
        sw_check_cstring(L, -2, fname, lua_pushfstring(L, "env %s", name));
      lua_settop(L, lua_gettop(L) - (vt == LUA_TSTRING ? 2 : 1));
      extra++;
    }
  }
  if (!clear) while (environ[base]) base++;
  char **env = (char **)scratch(L, anchors, (base + extra + 1) * sizeof *env);
  for (size_t i = 0; i < base; i++) {
    const char *e = environ[i], *eq = strchr(e, '=');
    if (envt && eq) {
      lua_pushlstring(L, e, (size_t)(eq - e));
      int t = lua_rawget(L, envt);
      lua_pop(L, 1);
      if (t != LUA_TNIL) continue;   /* replaced or removed below */
    }
    env[n++] = (char *)e;
  }
  if (envt) {
    lua_pushnil(L);
    while (lua_next(L, envt)) {
      if (lua_type(L, -1) != LUA_TBOOLEAN) {
        /* a number value becomes a string, a Secret its plain text */
        const char *v = sw_is_secret(L, -1) ? sw_secret_value(L, -1, NULL) : lua_tostring(L, -1);
        lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), v);
        env[n++] = anchor(L, anchors);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  env[n] = NULL;
  return env;
}

/* Start the child described by p->mode with posix_spawnp: its own session
 * (so its own process group), default signal dispositions and an empty
 * signal mask, /dev/null for stdin unless there is data to send, no fds
 * beyond 0-2. Opens
 * p->pipes for the parent's ends. Returns 0 or a negative errno. */
static int start_child(run_state *p, char **argv, char **env, const char *cwd,
                       int stdin_pipe) {
  int child_fd[3] = {-1, -1, -1}, parent_fd[3] = {-1, -1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t all, none;
  pid_t pid;
  int err = 0;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  for (int i = S_IN; i <= S_ERR; i++) {
    int mode = i == S_IN ? (stdin_pipe ? M_CAPTURE : M_NULL) : p->mode[i];
    if (mode == M_CAPTURE || mode == M_LINES) {
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) != 0) {
        err = -errno;
        goto out;
      }
      child_fd[i] = fds[i == S_IN ? 0 : 1];
      parent_fd[i] = fds[i == S_IN ? 1 : 0];
      posix_spawn_file_actions_adddup2(&fa, child_fd[i], i);
    } else if (mode == M_NULL) {
      posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == S_IN ? O_RDONLY : O_WRONLY, 0);
    }                                           /* M_INHERIT: leave fd i alone */
  }
  /* Like Python's close_fds: files slipway (or Lua's io library) has open
   * must not leak into children and keep pipes or locks alive there. */
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);   /* undo our SIGPIPE ignore */
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
                                  POSIX_SPAWN_SETSIGMASK);
  err = posix_spawnp(&pid, argv[0], &fa, &attr, argv, env ? env : environ);
  if (err != 0) {
    err = -err;
    goto out;
  }
  p->pid = (int)pid;
  p->spawned = 1;
  for (int i = S_IN; i <= S_ERR; i++) {
    if (parent_fd[i] < 0) continue;
    uv_pipe_init(sw_loop(), &p->pipes[i], 0);
    uv_pipe_open(&p->pipes[i], parent_fd[i]);
    p->piped[i] = 1;
    parent_fd[i] = -1;
  }
out:
  for (int i = S_IN; i <= S_ERR; i++) {
    if (child_fd[i] >= 0) close(child_fd[i]);
    if (parent_fd[i] >= 0) close(parent_fd[i]);
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return err;
}

/* The argv a shell string (cmd, index 1) runs without the shell, anchored;
 * NULL when it needs the shell or the child's PATH is not slipway's. */
static char **direct_argv(lua_State *L, int opts, int clear, int anchors) {
  if (lua_type(L, 1) != LUA_TSTRING || clear) return NULL;
  if (!lua_isnil(L, opts)) {
    int t = lua_getfield(L, opts, "env");
    int sets_path = t == LUA_TTABLE && lua_getfield(L, -1, "PATH") != LUA_TNIL;
    lua_pop(L, t == LUA_TTABLE ? 2 : 1);
    if (sets_path) return NULL;
  }
  size_t len;
  const char *line = lua_tolstring(L, 1, &len);
  size_t max = len / 2 + 2;                 /* words are at least 1 byte and a blank apart */
  char *buf = (char *)scratch(L, anchors, len + 1);
  char **argv = (char **)scratch(L, anchors, max * sizeof *argv);
  return sw_shell_words(line, len, buf, argv, max) > 0 ? argv : NULL;
}

/* The environment the shell would pass on (env, or environ when NULL):
 * only identifier names, and PWD as dash sets it: kept when it is an
 * absolute path to the directory the child runs in (cwd, else ours),
 * else that directory's physical path. NULL when the directory cannot be
 * read (the shell path reports that); src itself when nothing changes. */
static char **shell_env(lua_State *L, int anchors, char **env, const char *cwd) {
  char **src = env ? env : environ;
  struct stat here, pwd;
  const char *dir = cwd ? cwd : ".";
  if (stat(dir, &here) != 0) return NULL;
  size_t n = 0, dropped = 0;
  const char *pwd_value = NULL;
  for (; src[n]; n++) {
    if (!sw_shell_env_name(src[n])) dropped++;
    else if (strncmp(src[n], "PWD=", 4) == 0) pwd_value = src[n] + 4;
  }
  int pwd_ok = pwd_value && pwd_value[0] == '/' && stat(pwd_value, &pwd) == 0 &&
               pwd.st_dev == here.st_dev && pwd.st_ino == here.st_ino;
  if (dropped == 0 && pwd_ok) return src;
  char *real = pwd_ok ? NULL : realpath(dir, NULL);
  if (!pwd_ok && real == NULL) return NULL;
  char **out = (char **)scratch(L, anchors, (n + 2) * sizeof *out);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!sw_shell_env_name(src[i])) continue;
    if (!pwd_ok && strncmp(src[i], "PWD=", 4) == 0) continue;
    out[k++] = src[i];
  }
  if (!pwd_ok) {
    lua_pushfstring(L, "PWD=%s", real);
    free(real);
    out[k++] = anchor(L, anchors);
  }
  out[k] = NULL;
  return out;
}

static const char *const run_options[] = {
  "cwd", "env", "env_clear", "stdin", "stdout", "stderr", "timeout",
  "kill_grace", "max_output", "cancel_signal", NULL
};

/* The command as the error messages show it: argv[0], or the shell string,
 * cut to fit. */
static void describe_cmd(char *buf, size_t size, char **argv) {
  const char *s = strcmp(argv[0], "/bin/sh") == 0 && argv[1] && strcmp(argv[1], "-c") == 0
                  ? argv[2] : argv[0];
  if (strlen(s) < size) snprintf(buf, size, "%s", s);
  else snprintf(buf, size, "%.*s...", (int)size - 4, s);
}

/* Check cmd (1) and opts (2), start the child and its watchers. Leaves
 * the stack as 1 cmd, 2 opts, 3 stdout function, 4 stderr function (nil
 * unless line mode) and returns the run; or pushes the failure triple and
 * returns NULL. Raises on bad arguments (naming fname). */
static run_state *start_run(lua_State *L, const char *fname) {
  sw_check_options(L, 2, fname, run_options);
  lua_settop(L, 2);
  const char *cwd = sw_opt_string(L, 2, "cwd", NULL, fname);
  int clear = sw_opt_boolean(L, 2, "env_clear", 0, fname);
  double timeout = sw_opt_duration(L, 2, "timeout", -1, fname);
  double grace = sw_opt_duration(L, 2, "kill_grace", 2000, fname);
  size_t max_output = sw_opt_size(L, 2, "max_output", DEFAULT_MAX_OUTPUT, fname);
  const char *cancel_name = sw_opt_string(L, 2, "cancel_signal", NULL, fname);
  int cancel_signal = cancel_name ? signal_number(cancel_name) : 0;
  if (cancel_name && !cancel_signal)
    arg_error(L, lua_pushfstring(L, "%s: option 'cancel_signal' must be a signal name "
                                 "such as \"SIGINT\", got '%s'", fname, cancel_name));
  size_t stdin_len = 0;
  const char *stdin_data = NULL;
  if (!lua_isnil(L, 2)) {
    int t = lua_getfield(L, 2, "stdin");
    if (t == LUA_TSTRING) stdin_data = lua_tolstring(L, -1, &stdin_len);
    else if (sw_is_secret(L, -1)) stdin_data = sw_secret_value(L, -1, &stdin_len);
    else if (t != LUA_TNIL)
      arg_error(L, lua_pushfstring(L, "%s: option 'stdin' must be a string or a secret "
                                   "(the data to send), got %s", fname, luaL_typename(L, -1)));
    lua_pop(L, 1);
  }
  int mode[3];
  mode[S_OUT] = stream_mode(L, 2, "stdout", fname);
  mode[S_ERR] = stream_mode(L, 2, "stderr", fname);
  for (int i = S_OUT; i <= S_ERR; i++) {    /* slots 3 and 4 */
    if (mode[i] == M_INHERIT && push_inherit_sink(L)) {
      mode[i] = M_LINES;                    /* a run's output takes it */
    } else if (lua_isnil(L, 2)) {
      lua_pushnil(L);
    } else {
      lua_getfield(L, 2, i == S_OUT ? "stdout" : "stderr");
      if (!lua_isfunction(L, -1)) { lua_pop(L, 1); lua_pushnil(L); }
    }
  }
  lua_newtable(L);                          /* slot 5: anchors argv/env strings */
  char **argv = build_argv(L, 5, fname);
  char **env = lua_isnil(L, 2) ? NULL : build_env(L, 2, clear, 5, fname);
  char **direct = direct_argv(L, 2, clear, 5);
  char **direct_env = direct ? shell_env(L, 5, env, cwd) : NULL;

  run_state *p = (run_state *)calloc(1, sizeof *p);
  if (p == NULL) return sw_push_errno(L, ENOMEM, fname), NULL;
  p->op.what = fname;
  p->op.cancel = on_cancel;
  p->owned = 1;
  p->mode[S_OUT] = mode[S_OUT];
  p->mode[S_ERR] = mode[S_ERR];
  p->grace_ms = grace;
  p->max_output = max_output;
  p->cancel_signal = cancel_signal;
  describe_cmd(p->what, sizeof p->what, argv);
  if (stdin_len > 0) {         /* copied before the child exists */
    p->stdin_data = (char *)malloc(stdin_len);
    if (p->stdin_data == NULL) {
      release(p);
      return sw_push_errno(L, ENOMEM, fname), NULL;
    }
    memcpy(p->stdin_data, stdin_data, stdin_len);
    p->stdin_len = stdin_len;
  }

  p->start_ns = uv_hrtime();
  int err = -1;
  p->shell = lua_type(L, 1) == LUA_TSTRING ? 0 : -1;
  if (direct && direct_env) err = start_child(p, direct, direct_env, cwd, stdin_data != NULL);
  if (err < 0) {
    if (p->shell == 0) p->shell = 1;
    err = start_child(p, argv, env, cwd, stdin_data != NULL);
  }
  if (err < 0) {
    char ctx[512];
    if (err == UV_ENOENT && cwd && access(cwd, F_OK) != 0)
      snprintf(ctx, sizeof ctx, "cwd %s", cwd);
    else
      snprintf(ctx, sizeof ctx, "%s", argv[0]);
    release(p);
    sw_push_uverror(L, err, ctx);
    return NULL;
  }
  p->next = live_head;
  if (live_head) live_head->prev = p;
  live_head = p;

  if (stdin_data) {
    if (stdin_len == 0) {
      close_pipe(p, S_IN);
    } else {
      uv_buf_t b = uv_buf_init(p->stdin_data, (unsigned)stdin_len);
      p->write_req.data = p;
      if (uv_write(&p->write_req, (uv_stream_t *)&p->pipes[S_IN], &b, 1, on_written) < 0)
        close_pipe(p, S_IN);
    }
  }
  for (int i = S_OUT; i <= S_ERR; i++) {
    if (!p->piped[i]) continue;
    p->pipes[i].data = p;
    p->reading[i] = 1;
    uv_read_start((uv_stream_t *)&p->pipes[i], on_alloc, on_read);
  }
  if (timeout >= 0) {
    uv_loop_t *loop = sw_loop();
    uv_timer_init(loop, &p->timer);
    p->has_timer = 1;
    p->timer.data = p;
    uv_update_time(loop);
    uv_timer_start(&p->timer, on_timer, (uint64_t)timeout, 0);
  }
  watch_exit(p);              /* last: the fallback may find it reaped at once */
  lua_settop(L, 4);
  return p;
}

/* proc.run(cmd, opts) -> result | nil, msg, code  (awaits) */
static int proc_run(lua_State *L) {
  sw_check_task(L, "proc.run");
  run_state *p = start_run(L, "proc.run");
  if (p == NULL) return 3;
  return run_loop(L, p);
}

/* ------------------------------------------------------- proc.spawn */

/* proc.spawn(cmd, opts) -> Process | nil, msg, code
 * Starts the child and returns at once. Process: .pid, :wait() -> the
 * result proc.run gives (awaits; line callbacks run in the waiting task),
 * :kill([signal = "SIGTERM"]) -> true | nil, "ESRCH: ...", "ESRCH" (signals
 * the whole group). A Process that is collected unwaited is detached: the
 * child runs on, its output is dropped, and it is reaped when it exits. */
static int proc_spawn(lua_State *L) {
  run_state *p = start_run(L, "proc.spawn");
  if (p == NULL) return 3;
  process_ud *ud = (process_ud *)lua_newuserdatauv(L, sizeof *ud, 1);
  ud->run = p;
  ud->pid = p->pid;
  ud->shell = p->shell;
  ud->waiting = 0;
  p->ud = ud;
  luaL_setmetatable(L, PROCESS_MT);
  lua_createtable(L, 5, 0);          /* uservalue: {stdout fn, stderr fn, result | nil, msg, code} */
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 4);
  lua_rawseti(L, -2, 2);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static process_ud *check_process(lua_State *L) {
  return (process_ud *)luaL_checkudata(L, 1, PROCESS_MT);
}

/* process:wait() -> result (awaits) */
static int process_wait(lua_State *L) {
  process_ud *ud = check_process(L);
  sw_check_task(L, "process:wait");
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 1);                      /* [ud, uv] */
  if (ud->run == NULL) {
    if (lua_rawgeti(L, 2, 3) == LUA_TTABLE) return 1;
    if (lua_rawgeti(L, 2, 4) == LUA_TSTRING) {     /* it ended in an error */
      lua_rawgeti(L, 2, 5);
      return 3;
    }
    return arg_error(L, "process:wait: the process was abandoned when its "
                     "waiting task was cancelled or its callback raised");
  }
  if (ud->waiting) return arg_error(L, "process:wait: another task is already waiting for it");
  ud->waiting = 1;
  lua_pushnil(L);
  lua_replace(L, 2);                               /* [ud, nil] */
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, 1);
  lua_rawgeti(L, -2, 2);                           /* [ud, nil, uv, out, err] */
  lua_remove(L, 3);                                /* [ud, nil, out, err] */
  return run_loop(L, ud->run);
}

/* process:kill([signal]) -> true | nil, "ESRCH: ...", "ESRCH" */
static int process_kill(lua_State *L) {
  process_ud *ud = check_process(L);
  int sig = check_signal(L, 2, "SIGTERM", "process:kill");
  run_state *p = ud->run;
  if (p == NULL || p->exited || kill(-p->pid, sig) != 0) {
    char ctx[32];
    snprintf(ctx, sizeof ctx, "pid %d", ud->pid);
    return sw_push_errno(L, ESRCH, ctx);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int process_index(lua_State *L) {
  process_ud *ud = check_process(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "pid") == 0) {
    lua_pushinteger(L, ud->pid);
    return 1;
  }
  if (strcmp(k, "shell") == 0) {      /* nil for an argv list */
    if (ud->shell < 0) lua_pushnil(L);
    else lua_pushboolean(L, ud->shell);
    return 1;
  }
  luaL_getmetatable(L, PROCESS_MT);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, k);
  return 1;
}

static int process_gc(lua_State *L) {
  process_ud *ud = check_process(L);
  run_state *p = ud->run;
  if (p == NULL) return 0;
  ud->run = NULL;
  p->ud = NULL;
  p->detached = 1;
  drop_lines(p);
  release(p);
  return 0;
}

static int process_tostring(lua_State *L) {
  process_ud *ud = check_process(L);
  lua_pushfstring(L, "process %d (%s)", ud->pid,
                  ud->run == NULL ? "done" : ud->run->exited ? "exited" : "running");
  return 1;
}

static const char *const kill_all_options[] = {"spare_cancelling", NULL};

/* proc.kill_all([signal [, opts]]) -> how many process groups were
 * signalled; opts.spare_cancelling leaves out the children winding down
 * after their cancel_signal (their own timer SIGKILLs them in time). */
static int proc_kill_all(lua_State *L) {
  int sig = check_signal(L, 1, "SIGKILL", "proc.kill_all");
  sw_check_options(L, 2, "proc.kill_all", kill_all_options);
  int spare = lua_isnoneornil(L, 2) ? 0 : sw_opt_boolean(L, 2, "spare_cancelling", 0, "proc.kill_all");
  int n = 0;
  for (run_state *p = live_head; p; p = p->next)
    if (!(spare && p->winding_down) && kill(-p->pid, sig) == 0) n++;
  lua_pushinteger(L, n);
  return 1;
}

/* proc.live() -> {{pid = N, pgid = N}, ...} for every child not yet reaped */
static int proc_live(lua_State *L) {
  int i = 0;
  lua_newtable(L);
  for (run_state *p = live_head; p; p = p->next) {
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, p->pid);
    lua_setfield(L, -2, "pid");
    lua_pushinteger(L, p->pid);   /* it leads its own group */
    lua_setfield(L, -2, "pgid");
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

static const luaL_Reg process_methods[] = {
  {"wait", process_wait},
  {"kill", process_kill},
  {NULL, NULL}
};

static const luaL_Reg proc_funcs[] = {
  {"run", proc_run},
  {"spawn", proc_spawn},
  {"kill_all", proc_kill_all},
  {"live", proc_live},
  {NULL, NULL}
};

int luaopen_slipway_proc(lua_State *L) {
  /* Writing stdin data to a child that exited raises SIGPIPE, which would
   * kill slipway; an EPIPE error is what we want. libuv resets signal
   * dispositions in its children, so they still get the default. */
  signal(SIGPIPE, SIG_IGN);
  /* libuv keeps one spare fd per loop (for EMFILE handling), opened by the
   * first stream handle. Open it now, at require time, so the first run
   * does not look like an fd leak to the leak checks. */
  static uv_pipe_t first_stream;
  if (first_stream.loop == NULL) {
    uv_pipe_init(sw_loop(), &first_stream, 0);
    uv_close((uv_handle_t *)&first_stream, NULL);
  }
  if (luaL_newmetatable(L, PROCESS_MT)) {
    luaL_newlib(L, process_methods);
    lua_setfield(L, -2, "methods");
    lua_pushcfunction(L, process_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, process_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, process_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, proc_funcs);
  return 1;
}
