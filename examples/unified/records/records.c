/*
 * records.c: the deployment records endpoint of examples/unified, where the
 * pipeline's `finally` step posts each release summary (what the seed's
 * warehouse INSERT INTO deployments (version, timestamp, status) did).
 *
 *   records PORT FILE        serve HTTP on 127.0.0.1:PORT (0: any free port)
 *     POST /deployments      a JSON body (at most 256 KiB), appended to FILE
 *                            as one line; answers 201
 *     GET  /deployments      FILE (its first 4 MiB): one JSON object per line
 *   It prints "listening on http://127.0.0.1:PORT" once it accepts, and
 *   stops on SIGTERM or SIGINT. One request at a time, each with a 5 s
 *   deadline to arrive whole.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_HEAD (16 * 1024)
#define MAX_BODY (256 * 1024)

static volatile sig_atomic_t stop = 0;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void reply(int fd, int status, const char *reason, const char *body, size_t len) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, reason, status == 200 ? "application/x-ndjson" : "text/plain", len);
  if (n > 0) (void)!write(fd, head, (size_t)n);
  if (len > 0) (void)!write(fd, body, len);
}

static void reply_text(int fd, int status, const char *reason, const char *text) {
  reply(fd, status, reason, text, strlen(text));
}

/* The value of Content-Length in the head, or -1. */
static long content_length(const char *head) {
  const char *p = head;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, "Content-Length:", 15) == 0) return strtol(p + 15, NULL, 10);
  }
  return -1;
}

/* Reads a request into buf (head and body); returns the length of the head
 * (up to and including the blank line) and sets *total, or -1 on a request
 * that is cut short, too large or has no length. */
static long read_request(int c, char *buf, size_t cap, size_t *total) {
  size_t have = 0;
  long head_len = -1, body_len = 0;
  for (;;) {
    if (head_len < 0) {
      char *end = NULL;
      buf[have] = 0;
      if ((end = strstr(buf, "\r\n\r\n")) != NULL) {
        head_len = (long)(end - buf) + 4;
        body_len = strncmp(buf, "POST ", 5) == 0 ? content_length(buf) : 0;
        if (body_len < 0 || body_len > MAX_BODY) return -1;
      } else if (have >= MAX_HEAD) {
        return -1;
      }
    }
    if (head_len >= 0 && have >= (size_t)(head_len + body_len)) break;
    if (have >= cap - 1) return -1;
    ssize_t n = read(c, buf + have, cap - 1 - have);
    if (n <= 0) return -1;
    have += (size_t)n;
  }
  *total = (size_t)(head_len + body_len);
  return head_len;
}

static void post(int c, const char *file, const char *body, size_t len) {
  if (len == 0 || memchr(body, '\n', len) != NULL || body[0] != '{') {
    reply_text(c, 400, "Bad Request", "expected one JSON object, on one line\n");
    return;
  }
  FILE *f = fopen(file, "a");
  if (f == NULL || fwrite(body, 1, len, f) != len || fputc('\n', f) == EOF || fclose(f) != 0) {
    reply_text(c, 500, "Internal Server Error", "cannot write the record\n");
    return;
  }
  reply_text(c, 201, "Created", "recorded\n");
}

static void get(int c, const char *file) {
  static char text[4 * 1024 * 1024];
  FILE *f = fopen(file, "r");
  size_t n = f ? fread(text, 1, sizeof text, f) : 0;
  if (f) fclose(f);
  reply(c, 200, "OK", text, n);
}

static void handle(int c, const char *file) {
  static char buf[MAX_HEAD + MAX_BODY + 1];
  struct timeval tv = { 5, 0 };
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  size_t total = 0;
  long head = read_request(c, buf, sizeof buf, &total);
  if (head < 0)
    reply_text(c, 400, "Bad Request", "a request with a Content-Length of at most 256 KiB\n");
  else if (strncmp(buf, "POST /deployments ", 18) == 0)
    post(c, file, buf + head, total - (size_t)head);
  else if (strncmp(buf, "GET /deployments ", 17) == 0)
    get(c, file);
  else
    reply_text(c, 404, "Not Found", "POST or GET /deployments\n");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: records PORT FILE\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;        /* no SA_RESTART: accept() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  socklen_t alen = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &alen) < 0) {
    fprintf(stderr, "records: port %s: %s\n", argv[1], strerror(errno));
    return 2;
  }
  printf("listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
  fflush(stdout);
  while (!stop) {
    int c = accept(ls, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      perror("records: accept");
      return 1;
    }
    handle(c, argv[2]);
    close(c);
  }
  return 0;
}
