/*
 * pattern.c: .dockerignore-style path patterns, shared by the build context
 * (docker.c) and task inputs (inputs.c); the contracts are in pattern.h.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"
#include "pattern.h"

/* Lexically clean a slash-separated path in place like Go's path.Clean:
 * collapse "//", drop ".", resolve ".." against earlier elements, no
 * trailing "/"; "" becomes ".". */
void sw_clean_path(char *p) {
  int rooted = p[0] == '/';
  size_t n = strlen(p), w = rooted, r = rooted, dotdot = w;
  char *out = p;
  while (r < n) {
    if (p[r] == '/') { r++; continue; }
    if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) { r++; continue; }
    if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
      r += 2;
      if (w > dotdot) {          /* back up over the last element */
        w--;
        while (w > dotdot && out[w] != '/') w--;
      } else if (!rooted) {      /* a leading ".." stays */
        if (w > 0) out[w++] = '/';
        out[w++] = '.'; out[w++] = '.';
        dotdot = w;
      }
      continue;
    }
    if ((rooted && w != 1) || (!rooted && w != 0)) out[w++] = '/';
    while (r < n && p[r] != '/') out[w++] = p[r++];
  }
  if (w == 0) out[w++] = '.';
  out[w] = 0;
}

/* Match one [...] class at *pp against c; advances *pp past "]".
 * Returns 1/0, or -1 for a class without its closing bracket. */
static int match_class(const char **pp, unsigned char c) {
  const char *p = *pp + 1;
  int negate = 0, hit = 0;
  if (*p == '^') { negate = 1; p++; }
  int first = 1;
  while (*p && (*p != ']' || first)) {
    unsigned char lo = (unsigned char)*p, hi;
    if (lo == '\\' && p[1]) lo = (unsigned char)*++p;
    p++;
    hi = lo;
    if (*p == '-' && p[1] && p[1] != ']') {
      hi = (unsigned char)p[1];
      if (hi == '\\' && p[2]) { hi = (unsigned char)p[2]; p++; }
      p += 2;
    }
    if (c >= lo && c <= hi) hit = 1;
    first = 0;
  }
  if (*p != ']') return -1;
  *pp = p + 1;
  return hit != negate;
}

/* The CLI compiles a pattern to an anchored regular expression: "*" is
 * [^/]*, "?" is [^/], "**" (with an optional following "/") is "any
 * prefix ending in a slash, or none", or anything at the end of the
 * pattern. This walks the pattern directly instead.
 * Returns 1 match, 0 no match, -1 bad pattern. */
int sw_glob(const char *p, const char *s) {
  while (*p) {
    if (p[0] == '*' && p[1] == '*') {
      p += 2;
      if (*p == '/') p++;
      if (*p == 0) return 1;
      for (;;) {      /* the rest at s, then after each later "/" */
        int r = sw_glob(p, s);
        if (r != 0) return r;
        const char *slash = strchr(s, '/');
        if (slash == NULL) return 0;
        s = slash + 1;
      }
    }
    if (*p == '*') {
      p++;
      for (;;) {
        int r = sw_glob(p, s);
        if (r != 0) return r;
        if (*s == 0 || *s == '/') return 0;
        s++;
      }
    }
    if (*p == '?') {
      if (*s == 0 || *s == '/') return 0;
      p++; s++;
      continue;
    }
    if (*p == '[') {
      if (*s == 0) return 0;
      int r = match_class(&p, (unsigned char)*s);
      if (r <= 0) return r;
      s++;
      continue;
    }
    if (*p == '\\' && p[1]) p++;
    if (*p != *s) return 0;
    p++; s++;
  }
  return *s == 0;
}


void sw_patterns_free(sw_patterns *ps) {
  for (int i = 0; i < ps->n; i++) free(ps->pats[i]);
  free(ps->pats);
  free(ps->exception);
  ps->pats = NULL; ps->exception = NULL; ps->n = 0;
}

/* Read the Lua list at idx into ps; raises on a bad pattern. */
void sw_patterns_check(lua_State *L, int idx, sw_patterns *ps, const char *fname) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  ps->pats = calloc(n + 1, sizeof(char *));
  ps->exception = calloc(n + 1, 1);
  ps->n = 0;
  ps->has_exceptions = 0;
  if (ps->pats == NULL || ps->exception == NULL) {
    sw_patterns_free(ps);
    luaL_error(L, "%s: out of memory", fname);
  }
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    const char *s = lua_tostring(L, -1);
    if (s == NULL) {
      sw_patterns_free(ps);
      luaL_error(L, "%s: pattern %d is not a string", fname, i);
    }
    while (*s == ' ' || *s == '\t') s++;
    int ex = *s == '!';
    if (ex) s++;
    while (*s == ' ' || *s == '\t') s++;
    char *p = strdup(s);
    if (p == NULL) {
      sw_patterns_free(ps);
      luaL_error(L, "%s: out of memory", fname);
    }
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) p[--len] = 0;
    lua_pop(L, 1);
    if (ex && len == 0) {
      free(p);
      sw_patterns_free(ps);
      luaL_error(L, "%s: illegal exclusion pattern: \"!\"", fname);
    }
    sw_clean_path(p);
    if (sw_glob(p, ".") < 0) {
      lua_pushfstring(L, "%s: syntax error in pattern '%s'", fname, p);
      free(p);
      sw_patterns_free(ps);
      lua_error(L);
    }
    ps->pats[ps->n] = p;
    ps->exception[ps->n] = (char)ex;
    ps->has_exceptions |= ex;
    ps->n++;
  }
}

/* Is path (relative, "/"-separated, clean) excluded? The last pattern
 * matching the path or any parent directory of it decides. -1 when there
 * is no memory for the parents. */
int sw_patterns_excluded(const sw_patterns *ps, const char *path, int *which) {
  int matched = 0;
  if (which) *which = -1;
  size_t len = strlen(path);
  char *buf = malloc(len + 1);
  if (buf == NULL) return -1;
  for (int i = 0; i < ps->n; i++) {
    if (ps->exception[i] != matched) continue;   /* cannot change the answer */
    int m = sw_glob(ps->pats[i], path) == 1;
    for (size_t k = 0; !m && k < len; k++) {
      if (path[k] != '/') continue;
      memcpy(buf, path, k);
      buf[k] = 0;
      m = sw_glob(ps->pats[i], buf) == 1;
    }
    if (m) {
      matched = !ps->exception[i];
      if (which) *which = i;
    }
  }
  free(buf);
  return matched;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}


/* The names in directory d (without . and ..), sorted; NULL with
 * *n = 0 for none, NULL with *n = SIZE_MAX when memory ran out. */
char **sw_sorted_names(DIR *d, size_t *n) {
  char **names = NULL;
  size_t cap = 0;
  struct dirent *de;
  *n = 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    char *name = strdup(de->d_name);
    if (name != NULL && *n == cap) {
      size_t ncap = cap ? cap * 2 : 32;
      char **nn = realloc(names, ncap * sizeof *names);
      if (nn == NULL) { free(name); name = NULL; }
      else { names = nn; cap = ncap; }
    }
    if (name == NULL) {
      for (size_t i = 0; i < *n; i++) free(names[i]);
      free(names);
      *n = SIZE_MAX;
      return NULL;
    }
    names[(*n)++] = name;
  }
  if (*n > 1) qsort(names, *n, sizeof *names, cmp_names);   /* the CLI walks in lexical order */
  return names;
}
