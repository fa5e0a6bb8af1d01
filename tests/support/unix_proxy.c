/*
 * unix_proxy LISTEN TARGET: relay every connection made to the unix socket
 * LISTEN to the unix socket TARGET (the Docker engine's), byte for byte.
 * For each request it prints "request N <request line>" on stdout. On
 * SIGUSR1 it drops (closes both ends of) every connection that carries a
 * request for /events: a stream that breaks in the middle
 * of a wait, as when a proxy or the network cuts it. The converge spec
 * runs it between slipway and the engine. Exits on SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PAIRS 128

static struct pair {
  int client, engine;
  int events;             /* it carries a request for /events */
  char line[256];
} pairs[MAX_PAIRS];
static int npairs = 0, serial = 0;
static volatile sig_atomic_t drop = 0, stop = 0;

static void on_usr1(int sig) { (void)sig; drop = 1; }
static void on_term(int sig) { (void)sig; stop = 1; }

static int unix_socket(const char *path, int listen_on) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (listen_on) {
    unlink(path);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) return -1;
  } else if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void close_pair(int i) {
  close(pairs[i].client);
  close(pairs[i].engine);
  pairs[i] = pairs[--npairs];
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Print the request lines a client sends ("request N GET /v1.41/... HTTP/1.1");
 * a connection kept alive carries several. Requests are small GETs and
 * POSTs: a request line never straddles two reads here. */
static void note_request(struct pair *p, const char *buf, size_t n) {
  static const char *const methods[] = {"GET ", "POST ", "DELETE ", "HEAD ", "PUT ", NULL};
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && buf[i - 1] != '\n') continue;
    for (int m = 0; methods[m]; m++) {
      size_t ml = strlen(methods[m]);
      if (n - i < ml || memcmp(buf + i, methods[m], ml) != 0) continue;
      size_t e = i;
      while (e < n && buf[e] != '\r' && buf[e] != '\n') e++;
      size_t len = e - i < sizeof p->line - 1 ? e - i : sizeof p->line - 1;
      memcpy(p->line, buf + i, len);
      p->line[len] = 0;
      if (strstr(p->line, "/events") != NULL) p->events = 1;
      printf("request %d %s\n", ++serial, p->line);
      fflush(stdout);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: unix_proxy LISTEN TARGET\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  int lfd = unix_socket(argv[1], 1);
  if (lfd < 0) {
    perror(argv[1]);
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  char buf[65536];
  while (!stop) {
    if (drop) {
      drop = 0;
      for (int i = npairs - 1; i >= 0; i--)
        if (pairs[i].events) close_pair(i);
    }
    struct pollfd fds[1 + 2 * MAX_PAIRS];
    fds[0].fd = lfd;
    fds[0].events = POLLIN;
    for (int i = 0; i < npairs; i++) {
      fds[1 + 2 * i].fd = pairs[i].client;
      fds[2 + 2 * i].fd = pairs[i].engine;
      fds[1 + 2 * i].events = fds[2 + 2 * i].events = POLLIN;
    }
    int n = poll(fds, (nfds_t)(1 + 2 * npairs), -1);
    if (n < 0) continue;            /* EINTR: a signal */
    for (int i = npairs - 1; i >= 0; i--) {
      for (int side = 0; side < 2; side++) {
        struct pollfd *f = &fds[1 + 2 * i + side];
        if (!(f->revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t r = read(f->fd, buf, sizeof buf);
        int to = side == 0 ? pairs[i].engine : pairs[i].client;
        if (r > 0 && side == 0) note_request(&pairs[i], buf, (size_t)r);
        if (r <= 0 || write_all(to, buf, (size_t)r) != 0) {
          close_pair(i);
          break;
        }
      }
    }
    if ((fds[0].revents & POLLIN) && npairs < MAX_PAIRS) {
      int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        int e = unix_socket(argv[2], 0);
        if (e < 0) {
          close(c);
        } else {
          memset(&pairs[npairs], 0, sizeof pairs[npairs]);
          pairs[npairs].client = c;
          pairs[npairs].engine = e;
          npairs++;
        }
      }
    }
  }
  unlink(argv[1]);
  return 0;
}
