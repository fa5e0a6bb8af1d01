/*
 * fs.c: the local file system (module slipway.fs).
 *
 * Synchronous on purpose: these are local-disk operations measured in
 * microseconds, and scripts call them outside tasks too (at the top level
 * of deploy.lua, in matrix functions). Failures from the system are values:
 * nil, "ENOENT: no such file or directory: /x", "ENOENT" (ENOMEM when
 * memory runs out). Bad arguments raise, a path (or glob pattern, tempdir
 * prefix) with a NUL byte among them: the system would read it only up to
 * the NUL, so "safe\0/../x" would name another file.
 *
 *   read(path) -> string            write(path, data, [opts]) -> true
 *   write_atomic(path, data) -> true  append(path, data, [opts]) -> true
 *   (opts: sync = fsync before returning; write's exclusive = O_EXCL)
 *   mkdir(path) -> true (mkdir -p)  remove(path, {recursive}) -> true
 *   list(dir) -> {names...} sorted  stat(path, {follow}) -> {type, size, mode, mtime}
 *   exists(path) -> bool            glob(pattern) -> {paths...} sorted
 *   basename(p), dirname(p), join(...), tempdir([prefix]), realpath(p)
 *
 * The writers take a Secret (slipway.secret) as data, and a file written
 * with data that is or holds a secret is made 0600: only its owner reads it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "slipway.h"

/* ---------------------------------------------------- growable lists */

typedef struct {
  char **v;
  size_t n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s, size_t len) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **nv = (char **)realloc(l->v, cap * sizeof *nv);
    if (nv == NULL) return -1;
    l->v = nv;
    l->cap = cap;
  }
  char *c = (char *)malloc(len + 1);
  if (c == NULL) return -1;
  memcpy(c, s, len);
  c[len] = '\0';
  l->v[l->n++] = c;
  return 0;
}

static void strlist_free(strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort, drop duplicates, push as a Lua array, free. */
static int push_sorted(lua_State *L, strlist *l) {
  if (l->n > 1) qsort(l->v, l->n, sizeof *l->v, cmp_str);
  lua_createtable(L, (int)l->n, 0);
  lua_Integer k = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (i > 0 && strcmp(l->v[i], l->v[i - 1]) == 0) continue;
    lua_pushstring(L, l->v[i]);
    lua_rawseti(L, -2, ++k);
  }
  strlist_free(l);
  return 1;
}

/* -------------------------------------------------------- read/write */

static int fs_read(lua_State *L) {
  const char *path = sw_check_cstring(L, 1, "fs.read", "path");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sw_push_errno(L, errno, path);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (;;) {
    char *p = luaL_prepbuffsize(&b, 65536);
    ssize_t n = read(fd, p, 65536);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return sw_push_errno(L, e, path);
    }
    if (n == 0) break;
    luaL_addsize(&b, (size_t)n);
  }
  close(fd);
  luaL_pushresult(&b);
  return 1;
}

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The data to write (argument 2): a string, or a Secret's plain text.
 * *secret: it is a Secret or holds a secret's value (slipway.secret), so
 * the file is made readable by its owner only (0600). */
static const char *check_data(lua_State *L, size_t *len, int *secret) {
  if (sw_is_secret(L, 2)) {
    *secret = 1;
    return sw_secret_value(L, 2, len);
  }
  const char *data = luaL_checklstring(L, 2, len);
  *secret = sw_mask_contains(data, *len);
  return data;
}

/* The directory part of path into buf ("." when there is none). */
static void dir_of(const char *path, char *buf, size_t size) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) snprintf(buf, size, ".");
  else if (slash == path) snprintf(buf, size, "/");
  else snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

/* fsync the directory that holds path, so that a name just created in it
 * survives a crash. 0 or errno (EINVAL: a file system that cannot). */
static int sync_dir_of(const char *path) {
  char dir[4096];
  dir_of(path, dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return 0;
  int e = fsync(dfd) != 0 ? errno : 0;
  close(dfd);
  return e == EINVAL ? 0 : e;
}

/* write/append(path, data, [opts]): opts.sync fsyncs the file (and, for a
 * file it created, its directory) before returning; opts.exclusive (write
 * only) creates the file or fails with EEXIST, atomically (O_EXCL): two
 * processes cannot both create it. */
static int write_with_flags(lua_State *L, int flags, const char *fname) {
  static const char *const write_opts[] = {"sync", "exclusive", NULL};
  static const char *const append_opts[] = {"sync", NULL};
  const char *path = sw_check_cstring(L, 1, fname, "path");
  size_t len;
  int secret;
  const char *data = check_data(L, &len, &secret);
  int is_write = (flags & O_TRUNC) != 0;
  sw_check_options(L, 3, fname, is_write ? write_opts : append_opts);
  int sync = sw_opt_boolean(L, 3, "sync", 0, fname);
  if (is_write && sw_opt_boolean(L, 3, "exclusive", 0, fname)) flags = O_EXCL;
  int created = (flags & O_EXCL) != 0 || (sync && access(path, F_OK) != 0);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, secret ? 0600 : 0666);
  if (fd < 0) return sw_push_errno(L, errno, path);
  int e = secret && fchmod(fd, 0600) != 0 ? errno : 0;   /* a file that was there */
  if (e == 0) e = write_all(fd, data, len);
  if (e == 0 && sync && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && e == 0) e = errno;
  if (e == 0 && sync && created) e = sync_dir_of(path);
  if (e) return sw_push_errno(L, e, path);
  lua_pushboolean(L, 1);
  return 1;
}

static int fs_write(lua_State *L) {
  return write_with_flags(L, O_TRUNC, "fs.write");
}

static int fs_append(lua_State *L) {
  return write_with_flags(L, O_APPEND, "fs.append");
}

/* write_atomic(path, data): readers see the old content or the new one,
 * never a torn file, and after return the new content survives a crash:
 * temp file in the same directory, fsync, rename over, fsync the directory.
 * An existing file keeps its permission bits, unless the data holds a
 * secret (then 0600). */
static int fs_write_atomic(lua_State *L) {
  const char *path = sw_check_cstring(L, 1, "fs.write_atomic", "path");
  size_t len;
  int secret;
  const char *data = check_data(L, &len, &secret);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  if (*base == '\0') return sw_push_errno(L, EISDIR, path);
  char *tmp = (char *)malloc(strlen(path) + 16);
  if (tmp == NULL) return sw_push_errno(L, ENOMEM, path);
  sprintf(tmp, "%.*s.%s.tmp-XXXXXX", (int)(base - path), path, base);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return sw_push_errno(L, e, path);
  }
  struct stat st;
  mode_t mode;
  if (secret) {
    mode = 0600;
  } else if (stat(path, &st) == 0) {
    mode = st.st_mode & 07777;
  } else {
    mode_t mask = umask(0);    /* read the umask: set it back at once */
    umask(mask);
    mode = 0666 & ~mask;
  }
  int e = write_all(fd, data, len);
  if (e == 0 && fchmod(fd, mode) != 0) e = errno;
  if (e == 0 && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && e == 0) e = errno;
  if (e == 0 && rename(tmp, path) != 0) e = errno;
  if (e) {
    unlink(tmp);
    free(tmp);
    return sw_push_errno(L, e, path);
  }
  free(tmp);
  e = sync_dir_of(path);         /* make the rename itself durable */
  if (e) return sw_push_errno(L, e, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* ----------------------------------------------------- directories */

/* mkdir(path) -> true: every missing parent too; an existing directory is
 * fine, an existing file is EEXIST. */
static int fs_mkdir(lua_State *L) {
  const char *path = sw_check_cstring(L, 1, "fs.mkdir", "path");
  size_t len = strlen(path);
  if (len == 0) return sw_push_errno(L, ENOENT, path);
  char *buf = (char *)malloc(len + 1);
  if (buf == NULL) return sw_push_errno(L, ENOMEM, path);
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        int e = errno;
        free(buf);
        return sw_push_errno(L, e, path);
      }
      *p = c;
      if (c == '\0') break;
    }
  }
  free(buf);
  struct stat st;
  if (stat(path, &st) != 0) return sw_push_errno(L, errno, path);
  if (!S_ISDIR(st.st_mode)) return sw_push_errno(L, EEXIST, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* Remove path and, for a directory, everything in it; symlinks are removed,
 * never followed. Returns 0 or errno, with the failing path in *where. */
static int remove_tree(const char *path, char **where) {
  struct stat st;
  if (lstat(path, &st) != 0) goto fail;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d == NULL) goto fail;
    struct dirent *ent;
    size_t plen = strlen(path);
    int e = 0;
    while (e == 0 && (ent = readdir(d)) != NULL) {
      if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
      char *child = (char *)malloc(plen + strlen(ent->d_name) + 2);
      if (child == NULL) {
        e = ENOMEM;
        if (*where == NULL) *where = strdup(path);
        break;
      }
      sprintf(child, "%s/%s", path, ent->d_name);
      e = remove_tree(child, where);
      free(child);
    }
    closedir(d);
    if (e) return e;
    if (rmdir(path) != 0) goto fail;
    return 0;
  }
  if (unlink(path) != 0) goto fail;
  return 0;
fail:
  if (*where == NULL) *where = strdup(path);
  return errno;
}

static const char *const remove_options[] = {"recursive", NULL};

/* remove(path, {recursive = false}) -> true */
static int fs_remove(lua_State *L) {
  const char *path = sw_check_cstring(L, 1, "fs.remove", "path");
  sw_check_options(L, 2, "fs.remove", remove_options);
  int recursive = sw_opt_boolean(L, 2, "recursive", 0, "fs.remove");
  if (recursive) {
    char *where = NULL;
    int e = remove_tree(path, &where);
    if (e) {
      sw_push_errno(L, e, where ? where : path);
      free(where);
      return 3;
    }
  } else if (remove(path) != 0) {
    return sw_push_errno(L, errno, path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* list(dir) -> sorted names, without . and .. */
static int fs_list(lua_State *L) {
  const char *path = sw_check_cstring(L, 1, "fs.list", "path");
  DIR *d = opendir(path);
  if (d == NULL) return sw_push_errno(L, errno, path);
  strlist l = {0};
  struct dirent *ent;
  int failed = 0;
  while (!failed && (ent = readdir(d)) != NULL) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    failed = strlist_add(&l, ent->d_name, strlen(ent->d_name)) != 0;
  }
  closedir(d);
  if (failed) {              /* a list with names missing would be a lie */
    strlist_free(&l);
    return sw_push_errno(L, ENOMEM, path);
  }
  return push_sorted(L, &l);
}

static const char *type_name(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISLNK(m)) return "link";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  if (S_ISCHR(m)) return "char";
  if (S_ISBLK(m)) return "block";
  return "unknown";
}

static const char *const stat_options[] = {"follow", NULL};

/* stat(path, {follow = false}) -> {type, size, mode, mtime}; a symlink is
 * type "link" unless follow is set. mode is the permission bits (0644),
 * mtime seconds since the epoch with the fraction. */
static int fs_stat(lua_State *L) {
  const char *path = sw_check_cstring(L, 1, "fs.stat", "path");
  sw_check_options(L, 2, "fs.stat", stat_options);
  int follow = sw_opt_boolean(L, 2, "follow", 0, "fs.stat");
  struct stat st;
  if ((follow ? stat(path, &st) : lstat(path, &st)) != 0)
    return sw_push_errno(L, errno, path);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, type_name(st.st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushnumber(L, (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  return 1;
}

/* exists(path) -> whether path names something (symlinks followed) */
static int fs_exists(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(sw_check_cstring(L, 1, "fs.exists", "path"), &st) == 0);
  return 1;
}

/* -------------------------------------------------------------- glob */

typedef struct {
  char **seg;        /* pattern segments ("" ones dropped) */
  int nseg;
  int out_of_memory; /* the walk stopped: the result would miss paths */
  strlist out;
} globber;

static int has_magic(const char *s) {
  return strpbrk(s, "*?[\\") != NULL;
}

/* fs path for a display path ("" means the current directory) */
static const char *fs_path(const char *p) {
  return *p ? p : ".";
}

/* a/b in new memory; NULL (and g->out_of_memory set) when there is none */
static char *path_join(globber *g, const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *r = (char *)malloc(la + lb + 2);
  if (r == NULL) {
    g->out_of_memory = 1;
    return NULL;
  }
  if (la == 0) memcpy(r, b, lb + 1);
  else if (a[la - 1] == '/') sprintf(r, "%s%s", a, b);
  else sprintf(r, "%s/%s", a, b);
  return r;
}

static int is_dir_entry(const char *path, struct dirent *ent, int follow) {
  struct stat st;
  if (ent && ent->d_type == DT_DIR) return 1;
  if (ent && ent->d_type != DT_UNKNOWN && ent->d_type != DT_LNK) return 0;
  if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) return 0;
  return S_ISDIR(st.st_mode);
}

static void glob_at(globber *g, const char *dir, int i);

static void glob_add(globber *g, const char *path) {
  if (strlist_add(&g->out, path, strlen(path)) != 0) g->out_of_memory = 1;
}

/* `**` at segment i: zero or more directories below dir. Hidden directories
 * are not entered and symlinks are not followed (no cycles). When `**` is
 * the last segment it yields every entry below dir. */
static void glob_any_depth(globber *g, const char *dir, int i) {
  int last = (i == g->nseg - 1);
  if (!last) glob_at(g, dir, i + 1);
  DIR *d = opendir(fs_path(dir));
  if (d == NULL) return;
  struct dirent *ent;
  while (!g->out_of_memory && (ent = readdir(d)) != NULL) {
    if (ent->d_name[0] == '.') continue;
    char *child = path_join(g, dir, ent->d_name);
    if (child == NULL) break;
    if (last) glob_add(g, child);
    if (is_dir_entry(child, ent, 0)) glob_any_depth(g, child, i);
    free(child);
  }
  closedir(d);
}

/* Match segments i.. below dir (a display path). */
static void glob_at(globber *g, const char *dir, int i) {
  if (g->out_of_memory) return;
  if (i == g->nseg) {
    if (*dir) glob_add(g, dir);
    return;
  }
  const char *seg = g->seg[i];
  int last = (i == g->nseg - 1);
  if (strcmp(seg, "**") == 0) {
    glob_any_depth(g, dir, i);
    return;
  }
  if (!has_magic(seg)) {           /* a literal name: no directory scan */
    char *child = path_join(g, dir, seg);
    if (child == NULL) return;
    struct stat st;
    if (lstat(child, &st) == 0 && (last || is_dir_entry(child, NULL, 1)))
      glob_at(g, child, i + 1);
    free(child);
    return;
  }
  DIR *d = opendir(fs_path(dir));
  if (d == NULL) return;
  struct dirent *ent;
  while (!g->out_of_memory && (ent = readdir(d)) != NULL) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    if (fnmatch(seg, ent->d_name, FNM_PERIOD) != 0) continue;
    char *child = path_join(g, dir, ent->d_name);
    if (child == NULL) break;
    if (last || is_dir_entry(child, ent, 1)) glob_at(g, child, i + 1);
    free(child);
  }
  closedir(d);
}

/* glob(pattern) -> sorted list of existing paths. `*`, `?` and `[...]`
 * match within one path segment and not a leading dot; `**` as a whole
 * segment matches any number of directories. Relative patterns give
 * relative paths. Unreadable directories are skipped, as a shell does. */
static int fs_glob(lua_State *L) {
  const char *pattern = sw_check_cstring(L, 1, "fs.glob", "pattern");
  size_t len = strlen(pattern);
  globber g;
  memset(&g, 0, sizeof g);
  char *copy = (char *)malloc(len + 1);
  g.seg = (char **)malloc((len / 2 + 2) * sizeof *g.seg);
  if (copy == NULL || g.seg == NULL) {
    free(copy);
    free(g.seg);
    return sw_push_errno(L, ENOMEM, pattern);
  }
  memcpy(copy, pattern, len + 1);
  for (char *tok = strtok(copy, "/"); tok; tok = strtok(NULL, "/"))
    g.seg[g.nseg++] = tok;
  if (g.nseg == 0) {
    if (pattern[0] == '/') glob_add(&g, "/");
  } else {
    glob_at(&g, pattern[0] == '/' ? "/" : "", 0);
  }
  free(g.seg);
  free(copy);
  if (g.out_of_memory) {
    strlist_free(&g.out);
    return sw_push_errno(L, ENOMEM, pattern);
  }
  return push_sorted(L, &g.out);
}

/* ------------------------------------------------------------- paths */

/* basename(path): the last component, trailing slashes ignored */
static int fs_basename(lua_State *L) {
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  while (len > 1 && p[len - 1] == '/') len--;
  if (len == 0) { lua_pushliteral(L, "."); return 1; }
  if (len == 1 && p[0] == '/') { lua_pushliteral(L, "/"); return 1; }
  size_t start = len;
  while (start > 0 && p[start - 1] != '/') start--;
  lua_pushlstring(L, p + start, len - start);
  return 1;
}

/* dirname(path): everything before the last component ("." if none) */
static int fs_dirname(lua_State *L) {
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  while (len > 1 && p[len - 1] == '/') len--;
  while (len > 0 && p[len - 1] != '/') len--;
  if (len == 0) { lua_pushliteral(L, "."); return 1; }
  while (len > 1 && p[len - 1] == '/') len--;
  lua_pushlstring(L, p, len);
  return 1;
}

/* join(a, b, ...): parts joined by one "/"; an absolute part starts over */
static int fs_join(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return luaL_error(L, "fs.join: expected at least one path");
  luaL_Buffer b;
  size_t blen = 0;
  int start = 1;
  for (int i = 1; i <= n; i++) {
    const char *s = luaL_checkstring(L, i);
    if (s[0] == '/') start = i;
  }
  luaL_buffinit(L, &b);
  for (int i = start; i <= n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    if (len == 0) continue;
    if (blen > 0 && luaL_buffaddr(&b)[blen - 1] != '/') { luaL_addchar(&b, '/'); blen++; }
    luaL_addlstring(&b, s, len);
    blen += len;
  }
  luaL_pushresult(&b);
  return 1;
}

/* tempdir([prefix]) -> a new private directory under $TMPDIR or /tmp */
static int fs_tempdir(lua_State *L) {
  const char *prefix = lua_isnoneornil(L, 1) ? "slipway-" : sw_check_cstring(L, 1, "fs.tempdir", "prefix");
  if (strchr(prefix, '/')) return luaL_error(L, "fs.tempdir: prefix must not contain '/'");
  const char *base = getenv("TMPDIR");
  if (base == NULL || *base == '\0') base = "/tmp";
  lua_pushfstring(L, "%s/%sXXXXXX", base, prefix);
  char *tmpl = strdup(lua_tostring(L, -1));
  if (tmpl == NULL) return sw_push_errno(L, ENOMEM, lua_tostring(L, -1));
  if (mkdtemp(tmpl) == NULL) {
    int e = errno;
    free(tmpl);
    return sw_push_errno(L, e, lua_tostring(L, -1));
  }
  lua_pushstring(L, tmpl);
  free(tmpl);
  return 1;
}

/* realpath(path) -> the absolute path with symlinks, . and .. resolved */
static int fs_realpath(lua_State *L) {
  const char *path = sw_check_cstring(L, 1, "fs.realpath", "path");
  char *r = realpath(path, NULL);
  if (r == NULL) return sw_push_errno(L, errno, path);
  lua_pushstring(L, r);
  free(r);
  return 1;
}

static const luaL_Reg fs_funcs[] = {
  {"read", fs_read},
  {"write", fs_write},
  {"write_atomic", fs_write_atomic},
  {"append", fs_append},
  {"mkdir", fs_mkdir},
  {"remove", fs_remove},
  {"list", fs_list},
  {"stat", fs_stat},
  {"exists", fs_exists},
  {"glob", fs_glob},
  {"basename", fs_basename},
  {"dirname", fs_dirname},
  {"join", fs_join},
  {"tempdir", fs_tempdir},
  {"realpath", fs_realpath},
  {NULL, NULL}
};

int luaopen_slipway_fs(lua_State *L) {
  luaL_newlib(L, fs_funcs);
  return 1;
}
