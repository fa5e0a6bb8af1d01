/*
 * shell_words.h: when a shell command line can run without the shell
 * (shell_words.c has the rule).
 */
#ifndef SLIPWAY_SHELL_WORDS_H
#define SLIPWAY_SHELL_WORDS_H

#include <stddef.h>

/* Split line (len bytes) into the argv the shell would run, when the shell
 * would do nothing but split it: the words are written NUL-terminated into
 * buf (at least len + 1 bytes) and pointed to by argv (max slots, NULL
 * after the last). Returns the number of words, or 0 when the line needs
 * the shell (syntax, a builtin, an assignment, no words, more than
 * max - 1 words). */
int sw_shell_words(const char *line, size_t len, char *buf, char **argv, size_t max);

/* Whether the shell passes the environment entry "NAME=value" on to the
 * programs it runs (dash drops names that are not identifiers). */
int sw_shell_env_name(const char *entry);

#endif
