/*
 * vercel.c: the wire-level half of slipway.vercel, as the private module
 * slipway._vercel (the script-facing API is stdlib/vercel/). Everything that
 * touches many files runs on the libuv thread pool, so a deploy does not
 * stall the loop that other tasks share.
 *
 *   _vercel.scan(dir, {rules = text, include = {rel, ...}, hash = true,
 *                      max_files = n})                           (awaits)
 *       -> { {file = rel, sha, size, mode [, target]} | {file = rel, mode}, ... }
 *        | nil, msg, code
 *       The files of a deployment. dir is walked without following
 *       symlinks, names in byte order; what the ignore rules exclude is
 *       left out, and an excluded directory is not entered (so a "!"
 *       rule cannot bring back a file below it, as in git). The rules are
 *       gitignore lines, matched without regard to case like the CLI's
 *       `ignore` package: "#" comments, "!" exceptions, a trailing "/" for
 *       directories only, a "/" anywhere else anchors to dir, "*", "?",
 *       "[...]", "**", "\" escapes. Every regular file is then read and
 *       hashed (SHA-1, lower-case hex) by several pool threads at once;
 *       size is the bytes hashed. A symlink's sha and size are those of
 *       its target text (given as `target`); a directory with nothing left in it is an entry
 *       without sha (both as the CLI sends them). `include` names files
 *       taken even when a rule excludes them (.vercel/routes.json). FIFOs,
 *       sockets and devices are left out. hash = false skips the reading.
 *       Errors: ENOENT/ENOTDIR/EACCES/EIO naming the path, ECHANGED (a file
 *       replaced while it was read), ETOOMANY (more than max_files,
 *       default 100000), ENOMEM, ECANCELED.
 *   _vercel.sha1_files({path, ...})                               (awaits)
 *       -> { {sha, size}, ... } | nil, msg, code
 *   _vercel.tgz(dir, {rel, ...}, {out = prefix, part_size = n})   (awaits)
 *       -> { {path, size}, ... } | nil, msg, code
 *       a gzipped tar of those entries of dir (in that order, owner 0:0),
 *       cut into files of at most part_size bytes: prefix1, prefix2, ...
 *   _vercel.ignored(rules_text, rel, is_dir) -> boolean
 *       the rule of scan for one path (its parents are not looked at)
 *
 * libarchive (for tgz: archive_lazy.h) and libcrypto are opened on first use.
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

#define HASH_WORKERS 4                /* libuv's pool has 4 threads by default */
#define READ_BUF (64 * 1024)
#define DEFAULT_MAX_FILES 100000
#define MAX_LINK 4096

/* ------------------------------------------------------------ rules */

typedef struct {
  char *pat;
  unsigned char negate, dir_only, anchored;
} rule;

typedef struct {
  rule *v;
  int n;
} rules;

static void rules_free(rules *rs) {
  for (int i = 0; i < rs->n; i++) free(rs->v[i].pat);
  free(rs->v);
  rs->v = NULL;
  rs->n = 0;
}

/* One gitignore line (without its newline) added to rs; -1 out of memory. */
static int rules_add_line(rules *rs, const char *a, const char *b) {
  if (b > a && b[-1] == '\r') b--;
  if (b - a >= 2 && a[0] == '.' && a[1] == '/') a += 2;   /* the CLI drops "./" */
  if (a == b || *a == '#') return 0;
  while (b > a && b[-1] == ' ' && !(b - a >= 2 && b[-2] == '\\')) b--;  /* unescaped trailing spaces */
  rule r = {0};
  if (a < b && *a == '!') { r.negate = 1; a++; }
  while (b > a && b[-1] == '/') { r.dir_only = 1; b--; }
  if (a == b) return 0;
  r.anchored = memchr(a, '/', (size_t)(b - a)) != NULL;
  if (*a == '/') a++;
  if (a == b) return 0;
  r.pat = (char *)malloc((size_t)(b - a) + 1);
  if (r.pat == NULL) return -1;
  memcpy(r.pat, a, (size_t)(b - a));
  r.pat[b - a] = 0;
  if ((rs->n & 15) == 0) {
    rule *v = (rule *)realloc(rs->v, (size_t)(rs->n + 16) * sizeof *v);
    if (v == NULL) { free(r.pat); return -1; }
    rs->v = v;
  }
  rs->v[rs->n++] = r;
  return 0;
}

static int rules_parse(const char *text, size_t len, rules *rs) {
  const char *p = text, *end = text + len;
  rs->v = NULL;
  rs->n = 0;
  if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;   /* BOM */
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL) eol = end;
    if (rules_add_line(rs, p, eol) != 0) { rules_free(rs); return -1; }
    p = eol + 1;
  }
  return 0;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* The bracket expression starting just after '[' at p, against c: 1 or 0,
 * *end after its ']'; -1 when there is no ']' (the '[' is then literal). */
static int class_match(const char *p, int c, const char **end) {
  int negate = 0, ok = 0;
  if (*p == '!' || *p == '^') { negate = 1; p++; }
  const char *q = p + (*p == ']');          /* a ']' first is a member */
  while (*q && *q != ']') q += (*q == '\\' && q[1]) ? 2 : 1;
  if (*q != ']') return -1;
  *end = q + 1;
  c = lower(c);
  for (const char *r = p; r < q; r++) {
    int lo = (unsigned char)(*r == '\\' && r + 1 < q ? *++r : *r);
    if (r + 2 < q && r[1] == '-') {
      int hi = (unsigned char)(r[2] == '\\' && r + 3 < q ? r[3] : r[2]);
      r += (r[2] == '\\' && r + 3 < q) ? 3 : 2;
      if (c >= lower(lo) && c <= lower(hi)) ok = 1;
    } else if (c == lower(lo)) {
      ok = 1;
    }
  }
  return ok != negate;
}

/* gitignore glob: "*" and "?" stay within one path segment, "**" as a
 * whole segment spans any number of them, case ignored. */
static int glob(const char *pat, const char *p, const char *s) {
  for (;;) {
    int c = (unsigned char)*p;
    if (c == 0) return *s == 0;
    if (c == '*') {
      int whole = (p == pat || p[-1] == '/') && p[1] == '*' && (p[2] == '/' || p[2] == 0);
      if (whole) {
        if (p[2] == 0) return 1;                    /* trailing: everything below */
        for (p += 3;;) {                            /* then a slash: zero or more directories */
          if (glob(pat, p, s)) return 1;
          s = strchr(s, '/');
          if (s == NULL) return 0;
          s++;
        }
      }
      while (*p == '*') p++;
      for (;;) {
        if (glob(pat, p, s)) return 1;
        if (*s == 0 || *s == '/') return 0;
        s++;
      }
    }
    if (*s == 0) return 0;
    if (c == '?') {
      if (*s == '/') return 0;
      p++, s++;
      continue;
    }
    if (c == '[') {
      const char *after;
      int m = class_match(p + 1, (unsigned char)*s, &after);
      if (m >= 0) {
        if (!m || *s == '/') return 0;
        p = after, s++;
        continue;
      }
    }
    if (c == '\\' && p[1]) c = (unsigned char)*++p;
    if (lower(c) != lower((unsigned char)*s)) return 0;
    p++, s++;
  }
}

/* Is rel (a path in the deployment, "/"-separated) excluded? The last rule
 * that matches decides. */
static int rules_ignored(const rules *rs, const char *rel, int is_dir) {
  const char *slash = strrchr(rel, '/');
  const char *base = slash ? slash + 1 : rel;
  int ignored = 0;
  for (int i = 0; i < rs->n; i++) {
    const rule *r = &rs->v[i];
    if (r->negate != ignored) continue;            /* cannot change the answer */
    if (r->dir_only && !is_dir) continue;
    if (glob(r->pat, r->pat, r->anchored ? rel : base)) ignored = !r->negate;
  }
  return ignored;
}

/* ------------------------------------------------------------ entries */

enum { K_FILE, K_LINK, K_DIR };

typedef struct {
  char *rel;              /* path in the deployment, or the path to hash */
  char *target;           /* a symlink's target text */
  int kind;
  unsigned mode;
  long long size;
  dev_t dev;
  ino_t ino;
  char sha[41];
} entry;

typedef struct {
  entry *v;
  size_t n, cap;
} entries;

static entry *entries_add(entries *es, const char *rel) {
  if (es->n == es->cap) {
    size_t cap = es->cap ? es->cap * 2 : 256;
    entry *v = (entry *)realloc(es->v, cap * sizeof *v);
    if (v == NULL) return NULL;
    es->v = v;
    es->cap = cap;
  }
  entry *e = &es->v[es->n];
  memset(e, 0, sizeof *e);
  if ((e->rel = strdup(rel)) == NULL) return NULL;
  es->n++;
  return e;
}

static void entries_free(entries *es) {
  for (size_t i = 0; i < es->n; i++) {
    free(es->v[i].rel);
    free(es->v[i].target);
  }
  free(es->v);
  es->v = NULL;
  es->n = es->cap = 0;
}

/* ------------------------------------------------------------ jobs */

enum { J_SCAN, J_SHA1, J_TGZ };

typedef struct {
  char *path;
  long long size;
} part;

typedef struct job {
  sw_op op;                 /* first: the await bridge sees an sw_op */
  int what;
  const char *fname;
  char *dir;
  int dirfd;                /* scan: dir, open while files are hashed */
  rules rs;
  char **include;
  int ninclude;
  int hash;
  size_t max_files;
  entries es;
  size_t next;              /* next entry a hash worker takes (atomic) */
  int pending;              /* work requests queued, not yet after'd */
  int walking;              /* scan: the walk is queued, the hashing not yet */
  uv_work_t reqs[HASH_WORKERS];
  volatile int stop;
  /* tgz */
  char *out;
  long long part_size;
  part *parts;
  int nparts;
  FILE *cur;
  /* the first failure (hash workers may fail at once: the first to set
   * `failed` writes err and code) */
  int failed;
  char err[600];
  char code[16];
} job;

static int fail(job *j, const char *code, const char *what, const char *why) {
  if (__atomic_exchange_n(&j->failed, 1, __ATOMIC_ACQ_REL) == 0) {
    snprintf(j->err, sizeof j->err, "%s: %s", what, why);
    snprintf(j->code, sizeof j->code, "%s", code);
  }
  j->stop = 1;
  return -1;
}

static const char *errno_code(int e) {
  switch (e) {
  case ENOENT: return "ENOENT";
  case ENOTDIR: return "ENOTDIR";
  case EACCES: return "EACCES";
  case ENOMEM: return "ENOMEM";
  case ECANCELED: return "ECANCELED";
  default: return "EIO";
  }
}

static int fail_errno(job *j, const char *what, int e) {
  return fail(j, errno_code(e), what, strerror(e));
}

static void job_free(job *j) {
  rules_free(&j->rs);
  for (int i = 0; i < j->ninclude; i++) free(j->include[i]);
  free(j->include);
  entries_free(&j->es);
  for (int i = 0; i < j->nparts; i++) free(j->parts[i].path);
  free(j->parts);
  if (j->cur) fclose(j->cur);
  if (j->dirfd >= 0) close(j->dirfd);
  free(j->dir);
  free(j->out);
  free(j);
}

/* ------------------------------------------------------------ the walk */

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_rel(const char *rel, const char *name) {
  size_t n = strlen(rel) + strlen(name) + 2;
  char *r = (char *)malloc(n);
  if (r) snprintf(r, n, "%s%s%s", rel, *rel ? "/" : "", name);
  return r;
}

static entry *add_entry(job *j, const char *rel) {
  if (j->es.n >= j->max_files) {
    char why[64];
    snprintf(why, sizeof why, "more than %zu files", j->max_files);
    fail(j, "ETOOMANY", j->dir, why);
    return NULL;
  }
  entry *e = entries_add(&j->es, rel);
  if (e == NULL) fail(j, "ENOMEM", j->dir, "out of memory");
  return e;
}

/* A symlink: its target text is what is deployed and hashed. */
static int add_link(job *j, int dfd, const char *name, const char *rel, const struct stat *st) {
  char target[MAX_LINK];
  ssize_t n = readlinkat(dfd, name, target, sizeof target);
  if (n < 0) return fail_errno(j, rel, errno);
  if (n == (ssize_t)sizeof target) return fail(j, "ENAMETOOLONG", rel, "symlink target too long");
  entry *e = add_entry(j, rel);
  if (e == NULL) return -1;
  e->kind = K_LINK;
  e->mode = st->st_mode;
  e->size = n;
  if ((e->target = (char *)malloc((size_t)n + 1)) == NULL) return fail(j, "ENOMEM", rel, "out of memory");
  memcpy(e->target, target, (size_t)n);
  e->target[n] = 0;
  if (sw_sha1_hex(target, (size_t)n, e->sha) != 0) return fail(j, "ENOMEM", rel, "out of memory");
  return 0;
}

static int walk(job *j, int dfd, const char *rel, size_t *added);

static int walk_dir(job *j, int dfd, const char *name, const char *rel, const struct stat *st,
                    size_t *added) {
  int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) return fail(j, "ECHANGED", rel, "replaced while it was read");
  if (fd < 0) return fail_errno(j, rel, errno);
  struct stat now;
  if (fstat(fd, &now) != 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
    close(fd);
    return fail(j, "ECHANGED", rel, "replaced while it was read");
  }
  size_t below = 0;
  if (walk(j, fd, rel, &below) != 0) return -1;
  if (below == 0) {                  /* nothing left in it: the directory itself */
    entry *e = add_entry(j, rel);
    if (e == NULL) return -1;
    e->kind = K_DIR;
    e->mode = st->st_mode;
    below = 1;
  }
  *added += below;
  return 0;
}

/* The entries of the directory open as dfd (closed here), whose path in
 * the deployment is rel ("" at the top). Reached through directory fds
 * only, so a directory swapped for a symlink cannot lead outside dir. */
static int walk(job *j, int dfd, const char *rel, size_t *added) {
  int listfd = dup(dfd);
  DIR *d = listfd < 0 ? NULL : fdopendir(listfd);
  if (d == NULL) {
    int e = errno;
    if (listfd >= 0) close(listfd);
    close(dfd);
    return fail_errno(j, *rel ? rel : j->dir, e);
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 32;
      char **v = (char **)realloc(names, cap * sizeof *v);
      if (v == NULL) { rc = fail(j, "ENOMEM", j->dir, "out of memory"); break; }
      names = v;
    }
    if ((names[n] = strdup(de->d_name)) == NULL) { rc = fail(j, "ENOMEM", j->dir, "out of memory"); break; }
    n++;
  }
  closedir(d);
  if (rc == 0 && n > 1) qsort(names, n, sizeof *names, cmp_names);
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (j->stop) { rc = fail(j, "ECANCELED", j->dir, "cancelled"); break; }
    char *r = join_rel(rel, names[i]);
    struct stat st;
    if (r == NULL) {
      rc = fail(j, "ENOMEM", j->dir, "out of memory");
    } else if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
      rc = fail_errno(j, r, errno);
    } else if (!rules_ignored(&j->rs, r, S_ISDIR(st.st_mode))) {
      if (S_ISDIR(st.st_mode)) {
        rc = walk_dir(j, dfd, names[i], r, &st, added);
      } else if (S_ISLNK(st.st_mode)) {
        rc = add_link(j, dfd, names[i], r, &st);
        if (rc == 0) (*added)++;
      } else if (S_ISREG(st.st_mode)) {
        entry *e = add_entry(j, r);
        if (e == NULL) {
          rc = -1;
        } else {
          e->kind = K_FILE, e->mode = st.st_mode, e->size = st.st_size;
          e->dev = st.st_dev, e->ino = st.st_ino;
          (*added)++;
        }
      }
    }
    free(r);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  close(dfd);
  return rc;
}

/* Files named by `include` that the rules left out. */
static int add_included(job *j) {
  for (int i = 0; i < j->ninclude; i++) {
    const char *rel = j->include[i];
    int present = 0;
    for (size_t k = 0; k < j->es.n && !present; k++) present = strcmp(j->es.v[k].rel, rel) == 0;
    struct stat st;
    if (present || fstatat(j->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    entry *e = add_entry(j, rel);
    if (e == NULL) return -1;
    e->kind = K_FILE, e->mode = st.st_mode, e->size = st.st_size;
    e->dev = st.st_dev, e->ino = st.st_ino;
  }
  return 0;
}

static void scan_work(uv_work_t *req) {
  job *j = (job *)req->data;
  int fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);   /* dir itself may be a symlink */
  if (fd < 0) {
    fail_errno(j, j->dir, errno);
    return;
  }
  j->dirfd = dup(fd);
  if (j->dirfd < 0) {
    close(fd);
    fail_errno(j, j->dir, errno);
    return;
  }
  size_t added = 0;
  if (walk(j, fd, "", &added) == 0) add_included(j);
}

/* ------------------------------------------------------------ hashing */

/* Open entry e for reading: relative to the scanned directory, not
 * following a final symlink, and still the file the walk saw. */
static int open_entry(job *j, entry *e) {
  int fd = j->dirfd >= 0 ? openat(j->dirfd, e->rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
                         : open(e->rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && errno == ELOOP) return fail(j, "ECHANGED", e->rel, "replaced while it was read");
  if (fd < 0) return fail_errno(j, e->rel, errno);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (e->ino != 0 && (st.st_ino != e->ino || st.st_dev != e->dev))) {
    close(fd);
    return fail(j, "ECHANGED", e->rel, "replaced while it was read");
  }
  fcntl(fd, F_SETFL, 0);      /* O_NONBLOCK was for the open only (a FIFO must not hang it) */
  return fd;
}

static void hash_work(uv_work_t *req) {
  job *j = (job *)req->data;
  unsigned char *buf = (unsigned char *)malloc(READ_BUF);
  if (buf == NULL) {
    fail(j, "ENOMEM", "sha1", "out of memory");
    return;
  }
  while (!j->stop) {
    size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
    if (i >= j->es.n) break;
    entry *e = &j->es.v[i];
    if (e->kind != K_FILE) continue;
    int fd = open_entry(j, e);
    if (fd < 0) break;
    int err = sw_sha1_fd(fd, e->sha, &e->size, buf, READ_BUF, &j->stop);
    close(fd);
    if (err) {
      if (err == ECANCELED) fail(j, "ECANCELED", j->fname, "cancelled");
      else fail_errno(j, e->rel, err);
      break;
    }
  }
  free(buf);
}

/* ------------------------------------------------------------ tgz */


/* libarchive's output, cut into part files. */
static la_ssize_t part_write(struct archive *a, void *cd, const void *buf, size_t n) {
  job *j = (job *)cd;
  const char *p = (const char *)buf;
  size_t left = n;
  while (left > 0) {
    part *cur = j->nparts ? &j->parts[j->nparts - 1] : NULL;
    if (j->cur == NULL || cur->size >= j->part_size) {
      if (j->cur && fclose(j->cur) != 0) { j->cur = NULL; return fail_errno(j, cur->path, errno); }
      j->cur = NULL;
      part *v = (part *)realloc(j->parts, (size_t)(j->nparts + 1) * sizeof *v);
      if (v == NULL) return fail(j, "ENOMEM", "tgz", "out of memory");
      j->parts = v;
      cur = &j->parts[j->nparts];
      size_t len = strlen(j->out) + 24;
      if ((cur->path = (char *)malloc(len)) == NULL) return fail(j, "ENOMEM", "tgz", "out of memory");
      snprintf(cur->path, len, "%s%d", j->out, j->nparts + 1);
      cur->size = 0;
      j->nparts++;
      if ((j->cur = fopen(cur->path, "wbe")) == NULL) return fail_errno(j, cur->path, errno);
    }
    size_t room = (size_t)(j->part_size - cur->size);
    size_t chunk = left < room ? left : room;
    if (fwrite(p, 1, chunk, j->cur) != chunk) return fail_errno(j, cur->path, errno);
    cur->size += (long long)chunk;
    p += chunk;
    left -= chunk;
  }
  return (la_ssize_t)n;
}

static int part_close(struct archive *a, void *cd) {
  job *j = (job *)cd;
  if (j->cur && fclose(j->cur) != 0 && j->code[0] == 0) fail_errno(j, j->out, errno);
  j->cur = NULL;
  return ARCHIVE_OK;
}

/* Add the entry rel of the directory open as dirfd. */
static int tgz_entry(job *j, struct archive *a, struct archive_entry *ae, const char *rel,
                     unsigned char *buf) {
  struct stat st;
  if (fstatat(j->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) return fail_errno(j, rel, errno);
  sw_la.entry_clear(ae);
  sw_la.entry_copy_stat(ae, &st);
  sw_la.entry_set_pathname(ae, rel);
  sw_la.entry_set_uid(ae, 0);
  sw_la.entry_set_gid(ae, 0);
  if (!S_ISREG(st.st_mode)) sw_la.entry_set_size(ae, 0);
  int fd = -1;
  if (S_ISLNK(st.st_mode)) {
    char target[MAX_LINK];
    ssize_t n = readlinkat(j->dirfd, rel, target, sizeof target - 1);
    if (n < 0) return fail_errno(j, rel, errno);
    target[n] = 0;
    sw_la.entry_set_symlink(ae, target);
  } else if (S_ISREG(st.st_mode)) {
    entry e = {.rel = (char *)rel, .dev = st.st_dev, .ino = st.st_ino};
    if ((fd = open_entry(j, &e)) < 0) return -1;
  } else if (!S_ISDIR(st.st_mode)) {
    return 0;
  }
  if (sw_la.write_header(a, ae) != ARCHIVE_OK) {
    if (fd >= 0) close(fd);
    return fail(j, "EIO", rel, sw_la.error_string(a));
  }
  while (fd >= 0 && !j->stop) {
    ssize_t n = read(fd, buf, READ_BUF);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { int e = errno; close(fd); return fail_errno(j, rel, e); }
    if (n == 0) break;
    if (sw_la.write_data(a, buf, (size_t)n) < 0) {
      close(fd);
      return fail(j, "EIO", rel, sw_la.error_string(a));
    }
  }
  if (fd >= 0) close(fd);
  return 0;
}

static void tgz_work(uv_work_t *req) {
  job *j = (job *)req->data;
  j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (j->dirfd < 0) {
    fail_errno(j, j->dir, errno);
    return;
  }
  struct archive *a = sw_la.write_new();
  struct archive_entry *ae = sw_la.entry_new();
  unsigned char *buf = (unsigned char *)malloc(READ_BUF);
  if (a == NULL || ae == NULL || buf == NULL) {
    fail(j, "ENOMEM", "tgz", "out of memory");
  } else {
    sw_la.add_filter_gzip(a);
    sw_la.set_format_pax_restricted(a);
    sw_la.set_bytes_in_last_block(a, 1);         /* no zeros after the gzip stream */
    if (sw_la.open(a, j, NULL, part_write, part_close) != ARCHIVE_OK) {
      fail(j, "EIO", j->out, sw_la.error_string(a));
    } else {
      for (size_t i = 0; i < j->es.n && !j->stop; i++)
        if (tgz_entry(j, a, ae, j->es.v[i].rel, buf) != 0) break;
      if (sw_la.write_close(a) != ARCHIVE_OK) fail(j, "EIO", j->out, sw_la.error_string(a));
    }
  }
  if (j->stop && j->code[0] == 0) fail(j, "ECANCELED", "tgz", "cancelled");
  if (j->code[0])                             /* half-written parts are of no use */
    for (int i = 0; i < j->nparts; i++) unlink(j->parts[i].path);
  free(buf);
  if (ae) sw_la.entry_free(ae);
  if (a) sw_la.write_free(a);
}

/* ------------------------------------------------------------ results */

static void push_result(job *j, lua_State *T) {
  lua_createtable(T, (int)(j->what == J_TGZ ? (size_t)j->nparts : j->es.n), 0);
  if (j->what == J_TGZ) {
    for (int i = 0; i < j->nparts; i++) {
      lua_createtable(T, 0, 2);
      lua_pushstring(T, j->parts[i].path);
      lua_setfield(T, -2, "path");
      lua_pushinteger(T, j->parts[i].size);
      lua_setfield(T, -2, "size");
      lua_rawseti(T, -2, i + 1);
    }
    return;
  }
  for (size_t i = 0; i < j->es.n; i++) {
    entry *e = &j->es.v[i];
    lua_createtable(T, 0, 4);
    if (j->what == J_SCAN) {
      lua_pushstring(T, e->rel);
      lua_setfield(T, -2, "file");
      lua_pushinteger(T, e->mode);
      lua_setfield(T, -2, "mode");
    }
    if (e->kind != K_DIR && (e->kind == K_LINK || j->hash)) {
      lua_pushstring(T, e->sha);
      lua_setfield(T, -2, "sha");
    }
    if (e->kind != K_DIR) {
      lua_pushinteger(T, e->size);
      lua_setfield(T, -2, "size");
    }
    if (e->kind == K_LINK) {
      lua_pushstring(T, e->target);
      lua_setfield(T, -2, "target");
    }
    lua_rawseti(T, -2, (lua_Integer)i + 1);
  }
}

static void job_after(uv_work_t *req, int status);

/* Queue the hash workers (loop thread). 0, or a libuv error. */
static int start_hashing(job *j) {
  size_t files = 0;
  for (size_t i = 0; i < j->es.n; i++) files += j->es.v[i].kind == K_FILE;
  int n = files == 0 ? 0 : files < HASH_WORKERS ? (int)files : HASH_WORKERS;
  j->next = 0;
  for (int i = 0; i < n; i++) {
    j->reqs[i].data = j;
    int rc = uv_queue_work(sw_loop(), &j->reqs[i], hash_work, job_after);
    if (rc < 0) {
      j->stop = 1;
      return j->pending > 0 ? 0 : rc;   /* the queued ones end it */
    }
    j->pending++;
  }
  return 0;
}

static void finish(job *j) {
  if (j->op.task) {
    lua_State *T = sw_op_thread(&j->op);
    if (j->code[0]) {
      lua_pushnil(T);
      lua_pushfstring(T, "%s: %s", j->fname, j->err);
      lua_pushstring(T, j->code);
      sw_op_done(&j->op, 3);
    } else {
      push_result(j, T);
      sw_op_done(&j->op, 1);
    }
  }
  job_free(j);
}

static void job_after(uv_work_t *req, int status) {
  job *j = (job *)req->data;
  if (status == UV_ECANCELED) fail(j, "ECANCELED", j->fname, "cancelled");
  if (--j->pending > 0) return;
  if (j->walking) {                             /* the walk is done: hash what it found */
    j->walking = 0;
    if (j->code[0] == 0 && j->hash && !j->stop) {
      int rc = start_hashing(j);
      if (rc < 0) fail(j, "EIO", j->fname, uv_strerror(rc));
      if (j->pending > 0) return;
    }
  }
  finish(j);
}

static void job_cancel(sw_op *op) {
  job *j = (job *)op;
  j->stop = 1;
  for (int i = 0; i < HASH_WORKERS; i++)
    if (j->reqs[i].data) uv_cancel((uv_req_t *)&j->reqs[i]);  /* not started: after gets ECANCELED */
}

/* ------------------------------------------------------------ Lua */

static job *job_new(lua_State *L, int what, const char *fname) {
  job *j = (job *)calloc(1, sizeof *j);
  if (j == NULL) luaL_error(L, "%s: out of memory", fname);
  j->what = what;
  j->fname = fname;
  j->dirfd = -1;
  j->hash = 1;
  j->max_files = DEFAULT_MAX_FILES;
  j->op.what = fname;
  j->op.cancel = job_cancel;
  return j;
}

/* Queue the job's first work and park the task on it. */
static int job_start(lua_State *L, job *j, uv_work_cb work) {
  j->reqs[0].data = j;
  int rc;
  if (work == hash_work) {
    rc = start_hashing(j);
    if (rc == 0 && j->pending == 0) {   /* nothing to hash */
      push_result(j, L);
      job_free(j);
      return 1;
    }
  } else {
    rc = uv_queue_work(sw_loop(), &j->reqs[0], work, job_after);
    if (rc == 0) j->pending = 1;
    j->walking = work == scan_work;
  }
  if (rc < 0) {
    job_free(j);
    return sw_push_uverror(L, rc, "vercel");
  }
  return sw_await(L, &j->op);
}

/* A list of strings at idx as malloc'ed copies (an entry NULL when memory
 * ran out); raises on anything else, before allocating. */
static char **string_list(lua_State *L, int idx, const char *fname, const char *what, int *n) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer len = luaL_len(L, idx);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, i);
    sw_check_cstring(L, -1, fname, what);
    lua_pop(L, 1);
  }
  char **v = (char **)calloc((size_t)len + 1, sizeof *v);
  if (v == NULL) luaL_error(L, "%s: out of memory", fname);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, i);
    v[i - 1] = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  *n = (int)len;
  return v;
}

static const char *const scan_opts[] = {"rules", "include", "hash", "max_files", NULL};

static int vercel_scan(lua_State *L) {
  const char *F = "vercel.scan";
  const char *dir = sw_check_cstring(L, 1, F, "dir");
  luaL_checktype(L, 2, LUA_TTABLE);
  sw_check_options(L, 2, F, scan_opts);
  sw_check_task(L, F);
  size_t rlen = 0;
  int rt = lua_getfield(L, 2, "rules");
  if (rt != LUA_TNIL && rt != LUA_TSTRING) luaL_error(L, "%s: option 'rules' must be a string", F);
  const char *text = rt == LUA_TNIL ? "" : lua_tolstring(L, -1, &rlen);
  int hash = sw_opt_boolean(L, 2, "hash", 1, F);
  size_t max_files = sw_opt_size(L, 2, "max_files", DEFAULT_MAX_FILES, F);
  int ninclude = 0;
  char **include = NULL;
  if (lua_getfield(L, 2, "include") != LUA_TNIL) include = string_list(L, lua_gettop(L), F, "an include path", &ninclude);
  for (int i = 0; i < ninclude; i++)
    if (include[i] == NULL) luaL_error(L, "%s: out of memory", F);
  sw_hash_require(L);
  job *j = job_new(L, J_SCAN, F);
  j->include = include;
  j->ninclude = ninclude;
  j->hash = hash;
  j->max_files = max_files;
  if ((j->dir = strdup(dir)) == NULL || rules_parse(text, rlen, &j->rs) != 0) {
    job_free(j);
    return sw_push_errno(L, ENOMEM, F);
  }
  return job_start(L, j, scan_work);
}

static int vercel_sha1_files(lua_State *L) {
  const char *F = "vercel.sha1_files";
  int n = 0;
  char **paths = string_list(L, 1, F, "a path", &n);
  sw_check_task(L, F);
  sw_hash_require(L);
  job *j = job_new(L, J_SHA1, F);
  for (int i = 0; i < n; i++) {
    entry *e = paths[i] ? entries_add(&j->es, paths[i]) : NULL;
    if (e == NULL) {
      for (int k = 0; k < n; k++) free(paths[k]);
      free(paths);
      job_free(j);
      return sw_push_errno(L, ENOMEM, F);
    }
    e->kind = K_FILE;
  }
  for (int k = 0; k < n; k++) free(paths[k]);
  free(paths);
  return job_start(L, j, hash_work);
}

static const char *const tgz_opts[] = {"out", "part_size", NULL};

static int vercel_tgz(lua_State *L) {
  const char *F = "vercel.tgz";
  const char *dir = sw_check_cstring(L, 1, F, "dir");
  int n = 0;
  char **rels = string_list(L, 2, F, "an entry", &n);
  luaL_checktype(L, 3, LUA_TTABLE);
  sw_check_options(L, 3, F, tgz_opts);
  const char *out = sw_opt_string(L, 3, "out", NULL, F);
  size_t part_size = sw_opt_size(L, 3, "part_size", (size_t)100 << 20, F);
  if (out == NULL || part_size == 0) luaL_error(L, "%s: options 'out' and 'part_size' (> 0) are required", F);
  sw_check_task(L, F);
  sw_archive_require(L);
  job *j = job_new(L, J_TGZ, F);
  j->part_size = (long long)part_size;
  int ok = (j->dir = strdup(dir)) != NULL && (j->out = strdup(out)) != NULL;
  for (int i = 0; i < n; i++) {
    if (ok && (rels[i] == NULL || entries_add(&j->es, rels[i]) == NULL)) ok = 0;
    free(rels[i]);
  }
  free(rels);
  if (!ok) {
    job_free(j);
    return sw_push_errno(L, ENOMEM, F);
  }
  return job_start(L, j, tgz_work);
}

static int vercel_ignored(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *rel = sw_check_cstring(L, 2, "vercel.ignored", "path");
  int is_dir = lua_toboolean(L, 3);
  rules rs;
  if (rules_parse(text, len, &rs) != 0) return luaL_error(L, "vercel.ignored: out of memory");
  lua_pushboolean(L, rules_ignored(&rs, rel, is_dir));
  rules_free(&rs);
  return 1;
}

static const luaL_Reg vercel_funcs[] = {
  {"scan", vercel_scan},
  {"sha1_files", vercel_sha1_files},
  {"tgz", vercel_tgz},
  {"ignored", vercel_ignored},
  {NULL, NULL}
};

int luaopen_slipway__vercel(lua_State *L) {
  luaL_newlib(L, vercel_funcs);
  return 1;
}
