/*
 * inputs.c: the digest of a cached task's inputs, as the private module
 * slipway._inputs (lua/pipeline/cache.lua uses it).
 *
 *   _inputs.hash(dir, patterns)  (awaits)
 *     -> { digest = hex, files = n, bytes = n, parts = { hex... } }
 *      | nil, "inputs: msg", code
 *   patterns: a list of .dockerignore-style patterns (pattern.h), relative
 *   to dir; a path is an input when the last pattern matching it or one of
 *   its parent directories is not a "!" one. The digest covers, in the
 *   bytewise order of their paths, each selected regular file's path,
 *   executable bit and the SHA-256 of its contents, and each selected
 *   symlink's path and target (never followed): not mtimes, owners or the
 *   other permission bits, so that another checkout (another umask, another
 *   clock) of the same files has the same digest. parts[i] is the same
 *   digest over the files that pattern i selected (over nothing for a "!"
 *   pattern), so that a changed key can name the input that changed.
 *   .slipway at the top of dir (slipway's own records) is never an input.
 *   Directories that no pattern can select anything under are not read.
 *
 * The walk runs on the libuv thread pool; then up to HASHERS jobs there
 * hash the files, each taking the next file not yet taken; the results are
 * put together on the loop thread. At most MAX_FILES files, MAX_PATTERNS
 * patterns.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "slipway.h"
#include "pattern.h"

#define HASHERS 4
#define MAX_FILES 1000000
#define MAX_PATTERNS 256
#define MAX_PATH 4096

typedef struct {
  char *path;           /* relative to dir */
  char *link;           /* the symlink's target; NULL for a file */
  int part;             /* the pattern that selected it */
  int exec;
  char hex[65];
} input_file;

typedef struct {
  sw_op op;
  uv_work_t walk_req;
  uv_work_t hash_req[HASHERS];
  sw_sha256 *hasher[HASHERS];   /* hash_req[i]'s */
  char queued[HASHERS];         /* hash_req[i] is queued or running */
  int walking, jobs;            /* (loop thread only) */
  char *dir;
  sw_patterns ps;
  size_t *literal;              /* length of each pattern's wildcard-free start */
  input_file *files;
  size_t n, cap;
  atomic_size_t next;
  atomic_llong bytes;
  atomic_int failed;            /* the first failure writes err and code */
  volatile int stop;
  char err[512];
  char code[16];
} inputs_op;

static void fail(inputs_op *x, const char *code, const char *path, const char *why) {
  int none = 0;
  if (!atomic_compare_exchange_strong(&x->failed, &none, 1)) return;
  snprintf(x->err, sizeof x->err, "%.300s: %.200s", path, why);
  snprintf(x->code, sizeof x->code, "%s", code);
}

static int failed(inputs_op *x) { return atomic_load(&x->failed) || x->stop; }

/* ------------------------------------------------------------ walk */

/* Can a pattern select anything under directory rel? Yes when rel itself
 * is selected, or when a pattern after the "!" one that left it out
 * starts (before its first wildcard) with rel/ or with a part of it. */
static int may_select_under(inputs_op *x, const char *rel) {
  int which;
  int selected = sw_patterns_excluded(&x->ps, rel, &which);
  if (selected != 0) return selected;
  size_t n = strlen(rel);
  for (int i = which + 1; i < x->ps.n; i++) {
    const char *p = x->ps.pats[i];
    size_t lit = x->literal[i];
    if (x->ps.exception[i]) continue;
    if (lit <= n ? strncmp(p, rel, lit) == 0 : strncmp(p, rel, n) == 0 && p[n] == '/') return 1;
  }
  return 0;
}

static int add_file(inputs_op *x, const char *rel, int part, int exec, const char *link) {
  if (x->n == x->cap) {
    size_t cap = x->cap ? x->cap * 2 : 256;
    input_file *f = x->n >= MAX_FILES ? NULL : realloc(x->files, cap * sizeof *f);
    if (f == NULL) {
      fail(x, x->n >= MAX_FILES ? "E2BIG" : "ENOMEM", x->dir,
           x->n >= MAX_FILES ? "more than 1000000 input files" : "out of memory");
      return -1;
    }
    x->files = f;
    x->cap = cap;
  }
  input_file *f = &x->files[x->n];
  memset(f, 0, sizeof *f);
  f->path = strdup(rel);
  f->link = link ? strdup(link) : NULL;
  if (f->path == NULL || (link && f->link == NULL)) {
    free(f->path);
    free(f->link);
    fail(x, "ENOMEM", x->dir, "out of memory");
    return -1;
  }
  f->part = part;
  f->exec = exec;
  x->n++;
  return 0;
}

/* One entry of the directory open as dfd: a file or symlink the patterns
 * select is added, a directory they may select under is walked. */
static void walk(inputs_op *x, int dfd, const char *rel);

static void visit(inputs_op *x, int dfd, const char *name, const char *rel) {
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    fail(x, "EIO", rel, strerror(errno));
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    int may = may_select_under(x, rel);
    if (may < 0) fail(x, "ENOMEM", x->dir, "out of memory");
    if (may <= 0) return;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) fail(x, errno == EACCES ? "EACCES" : "EIO", rel, strerror(errno));
    else walk(x, fd, rel);
    return;
  }
  if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) return;   /* sockets, fifos, devices */
  int which;
  int selected = sw_patterns_excluded(&x->ps, rel, &which);
  if (selected < 0) fail(x, "ENOMEM", x->dir, "out of memory");
  if (selected <= 0) return;
  char target[MAX_PATH];
  const char *link = NULL;
  if (S_ISLNK(st.st_mode)) {
    ssize_t len = readlinkat(dfd, name, target, sizeof target - 1);
    if (len < 0 || (size_t)len == sizeof target - 1) {
      fail(x, "EIO", rel, len < 0 ? strerror(errno) : "symlink target too long");
      return;
    }
    target[len] = 0;
    link = target;
  }
  add_file(x, rel, which, (st.st_mode & 0100) != 0, link);
}

/* Walk the directory open as dfd (rel: its path in dir, "" at the top);
 * closes dfd. */
static void walk(inputs_op *x, int dfd, const char *rel) {
  int listfd = dup(dfd);            /* fdopendir takes it; dfd stays for *at() */
  DIR *d = listfd < 0 ? NULL : fdopendir(listfd);
  if (d == NULL) {
    fail(x, "EIO", *rel ? rel : x->dir, strerror(errno));
    if (listfd >= 0) close(listfd);
    close(dfd);
    return;
  }
  size_t n;
  char **names = sw_sorted_names(d, &n);
  closedir(d);
  if (n == SIZE_MAX) {
    fail(x, "ENOMEM", x->dir, "out of memory");
    n = 0;
  }
  char path[MAX_PATH];
  for (size_t i = 0; i < n; i++) {
    if (!failed(x)) {
      int len = snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", names[i]);
      if (len < 0 || (size_t)len >= sizeof path) fail(x, "ENAMETOOLONG", rel, "path too long");
      else if (!(*rel == 0 && strcmp(names[i], ".slipway") == 0)) visit(x, dfd, names[i], path);
    }
    free(names[i]);
  }
  free(names);
  close(dfd);
}

static void walk_work(uv_work_t *req) {
  inputs_op *x = req->data;
  int fd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(x, errno == ENOENT ? "ENOENT" : "EIO", x->dir, strerror(errno));
  else walk(x, fd, "");
}

/* ------------------------------------------------------------ hashing */

static void hash_one(inputs_op *x, input_file *f, sw_sha256 *h, unsigned char *buf, size_t size) {
  char full[MAX_PATH];
  int len = snprintf(full, sizeof full, "%s/%s", x->dir, f->path);
  if (len < 0 || (size_t)len >= sizeof full) {
    fail(x, "ENAMETOOLONG", f->path, "path too long");
    return;
  }
  /* not followed, not blocking (a FIFO put in its place would hang) */
  int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) fail(x, "ECHANGED", f->path, "removed while the inputs were hashed");
    else if (e == ELOOP) fail(x, "ECHANGED", f->path, "replaced by a symlink while the inputs were hashed");
    else fail(x, e == EACCES ? "EACCES" : "EIO", f->path, strerror(e));
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    fail(x, "ECHANGED", f->path, "replaced while the inputs were hashed (no longer a file)");
    return;
  }
  long long total = 0;
  for (;;) {
    ssize_t got = read(fd, buf, size);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      fail(x, "EIO", f->path, strerror(errno));
      break;
    }
    if (got == 0 || x->stop) break;
    sw_sha256_update(h, buf, (size_t)got);
    total += got;
  }
  close(fd);
  atomic_fetch_add(&x->bytes, total);
  sw_sha256_next(h, f->hex);
}

static void hash_work(uv_work_t *req) {
  inputs_op *x = req->data;
  size_t size = 1 << 16;
  unsigned char *buf = malloc(size);
  sw_sha256 *h = NULL;
  for (int i = 0; i < HASHERS; i++)
    if (req == &x->hash_req[i]) h = x->hasher[i];
  if (buf == NULL || h == NULL) {
    free(buf);
    fail(x, "ENOMEM", x->dir, "out of memory");
    return;
  }
  for (;;) {
    size_t i = atomic_fetch_add(&x->next, 1);
    if (i >= x->n || failed(x)) break;
    if (x->files[i].link == NULL) hash_one(x, &x->files[i], h, buf, size);
  }
  free(buf);
}

/* ------------------------------------------------------------ results */

static int by_path(const void *a, const void *b) {
  return strcmp(((const input_file *)a)->path, ((const input_file *)b)->path);
}

static void record(sw_sha256 *h, const input_file *f) {
  if (f->link) {
    sw_sha256_update(h, "l ", 2);
    sw_sha256_update(h, f->path, strlen(f->path) + 1);
    sw_sha256_update(h, f->link, strlen(f->link) + 1);
  } else {
    sw_sha256_update(h, f->exec ? "x " : "f ", 2);
    sw_sha256_update(h, f->path, strlen(f->path) + 1);
    sw_sha256_update(h, f->hex, 64);
  }
  sw_sha256_update(h, "\n", 1);
}

/* Push { digest, files, bytes, parts } onto T; 0, or -1 out of memory. */
static int push_result(lua_State *T, inputs_op *x) {
  int np = x->ps.n;
  sw_sha256 *all = sw_sha256_begin(T);
  sw_sha256 **parts = calloc((size_t)np, sizeof *parts);
  int ok = all != NULL && parts != NULL;
  for (int i = 0; ok && i < np; i++) ok = (parts[i] = sw_sha256_begin(T)) != NULL;
  if (!ok) {
    sw_sha256_free(all);
    for (int i = 0; parts && i < np; i++) sw_sha256_free(parts[i]);
    free(parts);
    return -1;
  }
  if (x->n > 1) qsort(x->files, x->n, sizeof *x->files, by_path);
  for (size_t i = 0; i < x->n; i++) {
    record(all, &x->files[i]);
    record(parts[x->files[i].part], &x->files[i]);
  }
  char hex[65];
  lua_createtable(T, 0, 4);
  sw_sha256_finish(all, hex);
  lua_pushstring(T, hex);
  lua_setfield(T, -2, "digest");
  lua_pushinteger(T, (lua_Integer)x->n);
  lua_setfield(T, -2, "files");
  lua_pushinteger(T, (lua_Integer)atomic_load(&x->bytes));
  lua_setfield(T, -2, "bytes");
  lua_createtable(T, np, 0);
  for (int i = 0; i < np; i++) {
    sw_sha256_finish(parts[i], hex);
    lua_pushstring(T, hex);
    lua_rawseti(T, -2, i + 1);
  }
  lua_setfield(T, -2, "parts");
  free(parts);
  return 0;
}

static void free_op(inputs_op *x) {
  for (size_t i = 0; i < x->n; i++) {
    free(x->files[i].path);
    free(x->files[i].link);
  }
  for (int i = 0; i < HASHERS; i++) sw_sha256_free(x->hasher[i]);
  free(x->files);
  free(x->literal);
  sw_patterns_free(&x->ps);
  free(x->dir);
  free(x);
}

/* Everything has stopped: answer the task (unless it went away) and free. */
static void finish(inputs_op *x) {
  if (x->op.task) {
    lua_State *T = sw_op_thread(&x->op);
    if (x->stop) {
      sw_op_fail(&x->op, "inputs: cancelled", "ECANCELED");
    } else if (atomic_load(&x->failed)) {
      lua_pushnil(T);
      lua_pushfstring(T, "inputs: %s", x->err);
      lua_pushstring(T, x->code);
      sw_op_done(&x->op, 3);
    } else if (push_result(T, x) < 0) {
      lua_settop(T, 0);
      sw_op_fail(&x->op, "inputs: out of memory", "ENOMEM");
    } else {
      sw_op_done(&x->op, 1);
    }
  }
  free_op(x);
}

static void hash_after(uv_work_t *req, int status) {
  inputs_op *x = req->data;
  for (int i = 0; i < HASHERS; i++)
    if (req == &x->hash_req[i]) x->queued[i] = 0;
  if (--x->jobs == 0) finish(x);
}

static void walk_after(uv_work_t *req, int status) {
  inputs_op *x = req->data;
  x->walking = 0;
  if (status == UV_ECANCELED) x->stop = 1;
  int want = x->n < HASHERS ? (int)x->n : HASHERS;
  if (failed(x) || want == 0 || x->op.task == NULL) {
    finish(x);
    return;
  }
  for (int i = 0; i < want; i++) {
    x->hash_req[i].data = x;
    if ((x->hasher[i] = sw_sha256_begin(sw_op_thread(&x->op))) == NULL) {
      fail(x, "ENOMEM", x->dir, "out of memory");
      break;
    }
    if (uv_queue_work(sw_loop(), &x->hash_req[i], hash_work, hash_after) < 0) {
      fail(x, "EIO", x->dir, "cannot queue the hashing");
      break;
    }
    x->queued[i] = 1;
    x->jobs++;
  }
  if (x->jobs == 0) finish(x);
}

static void inputs_cancel(sw_op *op) {
  inputs_op *x = (inputs_op *)op;
  x->stop = 1;
  if (x->walking) uv_cancel((uv_req_t *)&x->walk_req);
  for (int i = 0; i < HASHERS; i++)
    if (x->queued[i]) uv_cancel((uv_req_t *)&x->hash_req[i]);
}

static int inputs_hash(lua_State *L) {
  const char *dir = sw_check_cstring(L, 1, "inputs.hash", "dir");
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, luaL_len(L, 2) <= MAX_PATTERNS, 2, "at most 256 patterns");
  sw_check_task(L, "inputs.hash");
  sw_sha256_free(sw_sha256_begin(L));   /* opens libcrypto now: raising later would leak */
  sw_patterns ps;
  sw_patterns_check(L, 2, &ps, "inputs.hash");   /* may raise */
  inputs_op *x = calloc(1, sizeof *x);
  if (x == NULL || (x->dir = strdup(dir)) == NULL ||
      (x->literal = calloc((size_t)ps.n + 1, sizeof *x->literal)) == NULL) {
    sw_patterns_free(&ps);
    if (x) free(x->dir);
    free(x);
    return sw_push_errno(L, ENOMEM, "inputs.hash");
  }
  x->ps = ps;
  for (int i = 0; i < ps.n; i++) x->literal[i] = strcspn(ps.pats[i], "*?[\\");
  x->op.what = "inputs.hash";
  x->op.cancel = inputs_cancel;
  x->walk_req.data = x;
  int rc = uv_queue_work(sw_loop(), &x->walk_req, walk_work, walk_after);
  if (rc < 0) {
    free_op(x);
    return sw_push_uverror(L, rc, "inputs.hash");
  }
  x->walking = 1;
  return sw_await(L, &x->op);
}

static const luaL_Reg inputs_funcs[] = {
  {"hash", inputs_hash},
  {NULL, NULL}
};

int luaopen_slipway__inputs(lua_State *L) {
  luaL_newlib(L, inputs_funcs);
  return 1;
}
