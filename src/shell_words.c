/*
 * shell_words.c: when a shell command line can run without the shell, the
 * way GNU make decides it for a recipe line (job.c,
 * construct_command_argv_internal), and what the shell would have done to
 * the environment. proc.c uses it for the string form of proc.run/spawn
 * (and so sh "cmd"): a line the shell would only split into words and run
 * is run directly, one process instead of two.
 *
 * The rule is stricter than make's where make parses more itself:
 *   - any of  # ; & | < > ( ) $ ` \ " ' * ? [ ] ~ ! { } ^  anywhere, or a
 *     control character (newline, CR, ...) sends the line to the shell:
 *     quoting, expansion, redirection, globbing, lists, comments;
 *   - words are split on blanks (space, tab), the shell's own split of an
 *     unquoted command line;
 *   - a first word that is a shell builtin or reserved word (dash's, bash's
 *     and make's lists: cd, export, exit, echo, test, if, ...) or that
 *     contains "=" (an assignment before a command) goes to the shell too:
 *     a builtin's behaviour (echo, printf, kill, pwd) may differ from the
 *     program of the same name.
 * Everything else means the same to the shell and to execvp.
 */
#include <stdlib.h>
#include <string.h>
#include "shell_words.h"

static const char SHELL_CHARS[] = "#;&|<>()$`\\\"'*?[]~!{}^";

/* dash's builtins and reserved words, with make's sh_cmds and bash's
 * keywords that dash lacks; sorted for bsearch. */
static const char *const SHELL_WORDS[] = {
  "!", ".", ":", "[", "[[", "]]", "alias", "bg", "bind", "break", "builtin",
  "case", "cd", "chdir", "command", "continue", "declare", "do", "done",
  "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false",
  "fc", "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs",
  "kill", "let", "local", "login", "logout", "printf", "pwd", "read",
  "readonly", "return", "select", "set", "shift", "source", "test", "then",
  "time", "times", "trap", "true", "type", "typeset", "ulimit", "umask",
  "unalias", "unset", "until", "wait", "while", "{", "}",
};

static int cmp_word(const void *key, const void *elem) {
  return strcmp((const char *)key, *(const char *const *)elem);
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

int sw_shell_words(const char *line, size_t len, char *buf, char **argv, size_t max) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)line[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f || strchr(SHELL_CHARS, c) != NULL) return 0;
  }
  size_t n = 0, w = 0;
  for (size_t i = 0; i < len;) {
    while (i < len && is_blank(line[i])) i++;
    if (i == len) break;
    if (n + 1 >= max) return 0;
    argv[n++] = buf + w;
    while (i < len && !is_blank(line[i])) buf[w++] = line[i++];
    buf[w++] = 0;
  }
  if (n == 0) return 0;
  argv[n] = NULL;
  if (strchr(argv[0], '=') != NULL) return 0;
  if (bsearch(argv[0], SHELL_WORDS, sizeof SHELL_WORDS / sizeof *SHELL_WORDS,
              sizeof *SHELL_WORDS, cmp_word) != NULL)
    return 0;
  return (int)n;
}

int sw_shell_env_name(const char *entry) {
  const char *eq = strchr(entry, '=');
  if (eq == NULL || eq == entry) return 0;
  if (!((*entry >= 'A' && *entry <= 'Z') || (*entry >= 'a' && *entry <= 'z') || *entry == '_'))
    return 0;
  for (const char *p = entry + 1; p < eq; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
          *p == '_'))
      return 0;
  return 1;
}
