/*
 * pattern.h: .dockerignore-style path patterns (src/pattern.c), used by the
 * build context tar (docker.c) and the inputs of cached tasks (inputs.c).
 *
 * A pattern is "/"-separated and relative: "*" and "?" stop at "/", "**"
 * spans directories, "[...]" classes, "\" escapes; a leading "!" makes it
 * an exception. Over a list, the last pattern that matches a path or one
 * of its parent directories decides (excluded for .dockerignore, selected
 * for task inputs).
 */
#ifndef SW_PATTERN_H
#define SW_PATTERN_H

#include <dirent.h>
#include <stddef.h>
#include <lua.h>

typedef struct {
  char **pats;        /* cleaned patterns without their "!" */
  char *exception;    /* 1 where the pattern started with "!" */
  int n;
  int has_exceptions;
} sw_patterns;

/* Lexically clean p in place like Go's path.Clean ("" becomes "."). */
void sw_clean_path(char *p);
/* Does pattern p match the whole of s? 1, 0, or -1 for a bad pattern. */
int sw_glob(const char *p, const char *s);
/* Read the Lua list of patterns at idx into ps (cleaned); raises on a bad
 * one (naming fname). Free with sw_patterns_free. */
void sw_patterns_check(lua_State *L, int idx, sw_patterns *ps, const char *fname);
void sw_patterns_free(sw_patterns *ps);
/* Does the list match path (clean, relative)? 1/0, -1 out of memory;
 * *which (when not NULL): the index of the pattern that decided, -1 for
 * none. */
int sw_patterns_excluded(const sw_patterns *ps, const char *path, int *which);
/* The names in directory d (without . and ..), sorted bytewise; NULL with
 * *n = 0 for none, NULL with *n = SIZE_MAX when memory ran out. The caller
 * frees each name and the array. */
char **sw_sorted_names(DIR *d, size_t *n);

#endif
