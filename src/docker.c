/*
 * docker.c: the wire-level half of slipway.docker, as the private module
 * slipway._docker (the script-facing API is stdlib/docker/).
 *
 *   _docker.ignore_patterns(text)        -> { "pat", "!pat", ... }
 *       parse a .dockerignore the way the docker CLI does: comments,
 *       blank lines, whitespace, "!" exceptions, lexical path cleaning,
 *       a leading "/" dropped.
 *   _docker.ignore_match(patterns, path) -> excluded (boolean)
 *       the CLI's matching rule: the last pattern that matches the path or
 *       one of its parent directories decides; "*" and "?" stop at "/",
 *       "**" spans directories, "[...]" classes, "\" escapes.
 *   _docker.tar_context(dir, { excludes = {...}, out = path })  (awaits)
 *       -> { files = n, bytes = n, digest = "sha256:..." } | nil, msg, code
 *       write the build context under dir as a tar file, leaving out what
 *       the sw_patterns exclude, on the libuv thread pool so that a matrix of
 *       builds does not stall the loop. Entries are owned by 0:0 with
 *       mtimes truncated to seconds, as `docker build` sends them.
 *       Without `out`, nothing is written: the walk only computes the
 *       digest (a cache check that costs reading the files, no tar).
 *       digest: SHA-256 of what the tar holds, entry by entry in tar order
 *       ("<type> <perm> <size> <path>\0<symlink target>\0" and the data,
 *       padded with zeros like the tar when a file shrank meanwhile) but
 *       not the mtimes: touching a file does not change it, editing,
 *       adding, removing, renaming or chmod-ing one does.
 *       Symlinks inside the context go in as symlinks, never followed:
 *       files and directories are opened with O_NOFOLLOW after lstat, and
 *       a file must still be the one lstat saw, so an entry swapped for a
 *       symlink meanwhile fails the tar (ECHANGED) instead of putting
 *       what it points to (outside the context) into the image.
 *       Running out of memory fails it with ENOMEM.
 *
 * The tar is written by libarchive, opened on first require (archive_lazy.h):
 * it pulls in a dozen compression libraries that nothing else needs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>
#include "slipway.h"
#include "archive_lazy.h"
#include "pattern.h"

/* ------------------------------------------------------------ patterns */

/* Walk into the excluded directory dir? The CLI does only when an
 * exception pattern names something under it literally ("!dir/keep"), so
 * an exception starting with a wildcard does not re-include files of an excluded directory. */
static int patterns_may_include_under(const sw_patterns *ps, const char *dir) {
  size_t n = strlen(dir);
  for (int i = 0; i < ps->n; i++) {
    const char *p = ps->pats[i];
    if (ps->exception[i] && strncmp(p, dir, n) == 0 && (p[n] == '/' || p[n] == 0))
      return 1;
  }
  return 0;
}

/* ------------------------------------------------------ .dockerignore */

static int docker_ignore_patterns(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *end = text + len, *line = text;
  int n = 0;
  lua_newtable(L);
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) line += 3;   /* BOM */
  while (line < end) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (eol == NULL) eol = end;
    const char *a = line, *b = eol;
    line = eol + 1;
    if (*a == '#') continue;                        /* before trimming */
    while (a < b && (*a == ' ' || *a == '\t' || *a == '\r')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r')) b--;
    if (a == b) continue;
    int ex = *a == '!';
    if (ex) {
      a++;
      while (a < b && (*a == ' ' || *a == '\t')) a++;
    }
    char *p = malloc((size_t)(b - a) + 3);
    if (p == NULL) return luaL_error(L, "docker.ignore_patterns: out of memory");
    size_t plen = (size_t)(b - a);
    memcpy(p + 1, a, plen);
    p[1 + plen] = 0;
    char *q = p + 1;
    if (plen > 0) {
      sw_clean_path(q);
      if (q[0] == '/' && q[1] != 0) q++;
    }
    if (ex) { q--; q[0] = '!'; }
    lua_pushstring(L, q);
    free(p);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static int docker_ignore_match(lua_State *L) {
  sw_patterns ps;
  const char *path = luaL_checkstring(L, 2);
  sw_patterns_check(L, 1, &ps, "docker.ignore_match");
  char *p = strdup(path);
  int excluded = -1;
  if (p != NULL) {
    sw_clean_path(p);
    excluded = sw_patterns_excluded(&ps, p, NULL);
    free(p);
  }
  sw_patterns_free(&ps);
  if (excluded < 0) return luaL_error(L, "docker.ignore_match: out of memory");
  lua_pushboolean(L, excluded);
  return 1;
}

/* ------------------------------------------------------ context tar */

typedef struct {
  sw_op op;
  uv_work_t req;
  char *dir;
  char *out;               /* NULL: digest only */
  sw_sha256 *sha;
  char digest[65];
  sw_patterns ps;
  volatile int stop;       /* set by cancel while the worker runs */
  long files;
  long long bytes;
  char err[512];
  char code[16];
} tar_op;

typedef struct {
  struct archive *a;       /* NULL: digest only */
  struct archive_entry *e;
  tar_op *x;
  char link[4096];         /* the symlink target of the entry being added */
  char buf[65536];
} tar_state;

/* The digest's record of one entry (see the header comment): what the tar
 * header says about it, minus the mtime and the owner (always 0:0). */
static void hash_entry(tar_op *x, const struct stat *st, const char *rel, const char *link) {
  char head[64];
  char type = S_ISDIR(st->st_mode) ? 'd' : S_ISLNK(st->st_mode) ? 'l' : 'f';
  long long size = S_ISREG(st->st_mode) ? (long long)st->st_size : 0;
  int n = snprintf(head, sizeof head, "%c %04o %lld ", type, (unsigned)(st->st_mode & 07777), size);
  sw_sha256_update(x->sha, head, (size_t)n);
  sw_sha256_update(x->sha, rel, strlen(rel) + 1);
  sw_sha256_update(x->sha, link, strlen(link) + 1);
}

static int tar_fail(tar_op *x, const char *code, const char *fmt, const char *arg,
                    const char *why) {
  snprintf(x->err, sizeof x->err, fmt, arg, why);
  snprintf(x->code, sizeof x->code, "%s", code);
  return -1;
}

static int out_of_memory(tar_op *x) {
  return tar_fail(x, "ENOMEM", "%s: %s", "tar", "out of memory");
}

static int changed(tar_op *x, const char *full) {
  return tar_fail(x, "ECHANGED", "%s: %s", full,
                  "changed while the context was written (replaced by a symlink or another file)");
}

/* Add the entry `name` of the directory open as dfd; rel is its path in
 * the context, full its path for messages, st what fstatat saw. */
static int add_entry(tar_state *t, int dfd, const char *name, const char *rel,
                     const char *full, struct stat *st) {
  tar_op *x = t->x;
  sw_la.entry_clear(t->e);
  sw_la.entry_set_pathname(t->e, rel);
  sw_la.entry_set_perm(t->e, st->st_mode & 07777);
  sw_la.entry_set_mtime(t->e, st->st_mtime, 0);
  sw_la.entry_set_uid(t->e, 0);
  sw_la.entry_set_gid(t->e, 0);
  int fd = -1;
  if (S_ISDIR(st->st_mode)) {
    sw_la.entry_set_filetype(t->e, AE_IFDIR);
  } else if (S_ISLNK(st->st_mode)) {
    char *target = t->link;
    ssize_t n = readlinkat(dfd, name, target, sizeof t->link - 1);
    if (n < 0 && errno == EINVAL) return changed(x, full);   /* no longer a symlink */
    if (n < 0) return tar_fail(x, "EIO", "%s: %s", full, strerror(errno));
    if ((size_t)n == sizeof t->link - 1)   /* maybe cut short */
      return tar_fail(x, "ENAMETOOLONG", "%s: %s", full, "symlink target too long");
    target[n] = 0;
    sw_la.entry_set_filetype(t->e, AE_IFLNK);
    sw_la.entry_set_symlink(t->e, target);
  } else if (S_ISREG(st->st_mode)) {
    /* Not followed, not blocking (a FIFO put in its place would hang the
     * worker), and still the file fstatat saw. */
    fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ELOOP) return changed(x, full);
    if (fd < 0)
      return tar_fail(x, errno == EACCES ? "EACCES" : "EIO", "%s: %s", full, strerror(errno));
    struct stat now;
    if (fstat(fd, &now) != 0 || !S_ISREG(now.st_mode) || now.st_ino != st->st_ino ||
        now.st_dev != st->st_dev) {
      close(fd);
      return changed(x, full);
    }
    sw_la.entry_set_filetype(t->e, AE_IFREG);
    sw_la.entry_set_size(t->e, st->st_size);
  } else {
    return 0;   /* sockets, fifos, devices: not build context material */
  }
  if (t->a && sw_la.write_header(t->a, t->e) != ARCHIVE_OK) {
    if (fd >= 0) close(fd);
    return tar_fail(x, "EIO", "%s: %s", rel, sw_la.error_string(t->a));
  }
  hash_entry(x, st, rel, S_ISLNK(st->st_mode) ? t->link : "");
  if (fd >= 0) {
    long long left = st->st_size;
    while (left > 0 && !x->stop) {
      ssize_t n = read(fd, t->buf, left < (long long)sizeof t->buf ? (size_t)left : sizeof t->buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;             /* shrank meanwhile: libarchive pads */
      if (t->a && sw_la.write_data(t->a, t->buf, (size_t)n) < 0) {
        close(fd);
        return tar_fail(x, "EIO", "%s: %s", rel, sw_la.error_string(t->a));
      }
      sw_sha256_update(x->sha, t->buf, (size_t)n);
      left -= n;
      x->bytes += n;
    }
    memset(t->buf, 0, sizeof t->buf);  /* the zeros the tar pads a shrunk file with */
    while (left > 0) {
      size_t n = left < (long long)sizeof t->buf ? (size_t)left : sizeof t->buf;
      sw_sha256_update(x->sha, t->buf, n);
      left -= (long long)n;
    }
    close(fd);
    x->files++;
  }
  return 0;
}

static int walk_into(tar_state *t, int dfd, const char *name, const char *full,
                     const char *rel, const struct stat *st);


/* Add the directory open as dfd (full is its path for messages, rel its
 * path in the context, "" at the top); closes dfd. Everything below is
 * reached through directory fds (fstatat, openat, readlinkat), never by
 * path: a directory swapped for a symlink after its fstatat cannot lead
 * the walk out of the context. One fd per level stays open. */
static int walk(tar_state *t, int dfd, const char *full, const char *rel) {
  tar_op *x = t->x;
  int listfd = dup(dfd);            /* fdopendir takes it; dfd stays for *at() */
  DIR *d = listfd < 0 ? NULL : fdopendir(listfd);
  if (d == NULL) {
    int e = errno;
    if (listfd >= 0) close(listfd);
    close(dfd);
    return tar_fail(x, "EIO", "%s: %s", full, strerror(e));
  }
  size_t n;
  char **names = sw_sorted_names(d, &n);
  closedir(d);
  if (n == SIZE_MAX) {
    close(dfd);
    return out_of_memory(x);
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (x->stop) { rc = tar_fail(x, "ECANCELED", "%s%s", "tar", ": cancelled"); break; }
    size_t flen = strlen(full) + strlen(names[i]) + 2;
    size_t rlen = strlen(rel) + strlen(names[i]) + 2;
    char *f = malloc(flen), *r = malloc(rlen);
    if (f == NULL || r == NULL) {
      rc = out_of_memory(x);
    } else {
      snprintf(f, flen, "%s/%s", full, names[i]);
      snprintf(r, rlen, "%s%s%s", rel, *rel ? "/" : "", names[i]);
      struct stat st;
      int excluded;
      if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
        rc = tar_fail(x, "EIO", "%s: %s", f, strerror(errno));
      } else if ((excluded = sw_patterns_excluded(&x->ps, r, NULL)) < 0) {
        rc = out_of_memory(x);
      } else {
        int isdir = S_ISDIR(st.st_mode);
        if (!excluded) rc = add_entry(t, dfd, names[i], r, f, &st);
        if (rc == 0 && isdir && (!excluded || patterns_may_include_under(&x->ps, r)))
          rc = walk_into(t, dfd, names[i], f, r, &st);
      }
    }
    free(f);
    free(r);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  close(dfd);
  return rc;
}

/* Open the subdirectory `name` of dfd, not following a symlink, check it
 * is the directory fstatat saw (st), and walk it. */
static int walk_into(tar_state *t, int dfd, const char *name, const char *full,
                     const char *rel, const struct stat *st) {
  int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) return changed(t->x, full);
  if (fd < 0) return tar_fail(t->x, "EIO", "%s: %s", full, strerror(errno));
  struct stat now;
  if (fstat(fd, &now) != 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
    close(fd);
    return changed(t->x, full);
  }
  return walk(t, fd, full, rel);
}

static void tar_work(uv_work_t *req) {
  tar_op *x = req->data;
  tar_state *t = malloc(sizeof *t);
  if (t == NULL || (t->a = x->out ? sw_la.write_new() : NULL, x->out && t->a == NULL)) {
    free(t);
    out_of_memory(x);
    return;
  }
  t->x = x;
  t->e = sw_la.entry_new();
  if (t->a) sw_la.set_format_pax_restricted(t->a);
  if (t->e == NULL) {
    out_of_memory(x);
  } else if (t->a && sw_la.open_filename(t->a, x->out) != ARCHIVE_OK) {
    tar_fail(x, "EIO", "%s: %s", x->out, sw_la.error_string(t->a));
  } else {
    /* the context directory itself may be reached through symlinks */
    int fd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOTDIR)
      tar_fail(x, "ENOTDIR", "%s: %s", x->dir, "not a directory");
    else if (fd < 0)
      tar_fail(x, errno == ENOENT ? "ENOENT" : "EIO", "%s: %s", x->dir, strerror(errno));
    else
      walk(t, fd, x->dir, "");
    if (t->a && sw_la.write_close(t->a) != ARCHIVE_OK && x->code[0] == 0)
      tar_fail(x, "EIO", "%s: %s", x->out, sw_la.error_string(t->a));
  }
  if (t->e) sw_la.entry_free(t->e);
  if (t->a) sw_la.write_free(t->a);
  free(t);
  sw_sha256_finish(x->sha, x->digest);
  x->sha = NULL;
}

static void tar_after(uv_work_t *req, int status) {
  tar_op *x = req->data;
  if (x->op.task) {
    lua_State *T = sw_op_thread(&x->op);
    if (status == UV_ECANCELED) {
      sw_op_fail(&x->op, "docker.tar_context: cancelled", "ECANCELED");
    } else if (x->code[0]) {
      if (x->out) unlink(x->out);
      lua_pushnil(T);
      lua_pushfstring(T, "docker.tar_context: %s", x->err);
      lua_pushstring(T, x->code);
      sw_op_done(&x->op, 3);
    } else {
      lua_createtable(T, 0, 3);
      lua_pushinteger(T, x->files);
      lua_setfield(T, -2, "files");
      lua_pushinteger(T, (lua_Integer)x->bytes);
      lua_setfield(T, -2, "bytes");
      lua_pushfstring(T, "sha256:%s", x->digest);
      lua_setfield(T, -2, "digest");
      sw_op_done(&x->op, 1);
    }
  } else if (x->out) {
    unlink(x->out);     /* cancelled: the half-written tar is of no use */
  }
  sw_sha256_free(x->sha);   /* the work never ran (cancelled before) */
  sw_patterns_free(&x->ps);
  free(x->dir);
  free(x->out);
  free(x);
}

static void tar_cancel(sw_op *op) {
  tar_op *x = (tar_op *)op;
  x->stop = 1;
  uv_cancel((uv_req_t *)&x->req);   /* not started yet: after_work gets ECANCELED */
}

static const char *const tar_opts[] = {"excludes", "out", NULL};

static int docker_tar_context(lua_State *L) {
  const char *dir = sw_check_cstring(L, 1, "docker.tar_context", "dir");
  luaL_checktype(L, 2, LUA_TTABLE);
  sw_check_options(L, 2, "docker.tar_context", tar_opts);
  const char *out = sw_opt_string(L, 2, "out", NULL, "docker.tar_context");
  sw_check_task(L, "docker.tar_context");
  sw_sha256_free(sw_sha256_begin(L));   /* opens libcrypto now: raising later would leak */
  sw_patterns ps;
  lua_getfield(L, 2, "excludes");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  sw_patterns_check(L, lua_gettop(L), &ps, "docker.tar_context");   /* may raise */
  lua_pop(L, 1);
  tar_op *x = calloc(1, sizeof *x);
  if (x == NULL || (x->dir = strdup(dir)) == NULL || (out && (x->out = strdup(out)) == NULL) ||
      (x->sha = sw_sha256_begin(L)) == NULL) {
    sw_patterns_free(&ps);
    if (x) {
      free(x->dir);
      free(x->out);
    }
    free(x);
    return sw_push_errno(L, ENOMEM, "docker.tar_context");
  }
  x->ps = ps;
  x->op.what = "docker.tar_context";
  x->op.cancel = tar_cancel;
  x->req.data = x;
  int rc = uv_queue_work(sw_loop(), &x->req, tar_work, tar_after);
  if (rc < 0) {
    sw_patterns_free(&x->ps);
    sw_sha256_free(x->sha);
    free(x->dir); free(x->out); free(x);
    return sw_push_uverror(L, rc, "docker.tar_context");
  }
  return sw_await(L, &x->op);
}

static const luaL_Reg docker_funcs[] = {
  {"ignore_patterns", docker_ignore_patterns},
  {"ignore_match", docker_ignore_match},
  {"tar_context", docker_tar_context},
  {NULL, NULL}
};

int luaopen_slipway__docker(lua_State *L) {
  sw_archive_require(L);
  luaL_newlib(L, docker_funcs);
  return 1;
}
