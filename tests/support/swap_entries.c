/*
 * swap_entries A1 B1 [A2 B2 ...]: exchange each path Ai with Bi again and
 * again (renameat2 RENAME_EXCHANGE: both names exist at every moment)
 * until killed. The build context spec runs it to swap files and
 * directories of a context for symlinks while the context is written.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc < 3 || argc % 2 == 0) {
    fprintf(stderr, "usage: swap_entries A1 B1 [A2 B2 ...]\n");
    return 2;
  }
  for (;;)
    for (int i = 1; i + 1 < argc; i += 2)
      if (renameat2(AT_FDCWD, argv[i], AT_FDCWD, argv[i + 1], RENAME_EXCHANGE) != 0) {
        perror("renameat2");
        return 1;
      }
}
