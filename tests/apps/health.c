/*
 * health.c: the test program of the Docker tests, built with `gcc -static`
 * into FROM scratch images (tests/apps/Dockerfile).
 *
 *   health [serve]          serve HTTP on $PORT (default 8080):
 *                             GET /health -> 200 "ok" (or 503 once failing)
 *                             GET /       -> 200 "$VERSION\n"
 *   health healthcheck      the container HEALTHCHECK: GET /health on
 *                           127.0.0.1:$PORT, exit 0 on 200 else 1
 *
 * Variants, chosen by environment (so one image serves every test):
 *   MODE=healthy            (default)
 *   MODE=crash              exit 3 at start, after printing why
 *   MODE=exit               print the version and exit 0 (a one-shot job)
 *   MODE=unhealthy          /health answers 503 after FAIL_AFTER seconds
 *                           (default 0: unhealthy from the start)
 *   MODE=degraded           /health answers 200 (the HEALTHCHECK passes) but
 *                           / answers 500: a fault only a smoke test sees
 *   VERSION=v1              the version string served on /
 *
 * It exits at once on SIGTERM/SIGINT so that task stops cost no grace
 * period, and is single-threaded: one request at a time is plenty.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop = 0;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int port_from_env(void) {
  const char *p = getenv("PORT");
  int port = p ? atoi(p) : 8080;
  return (port > 0 && port < 65536) ? port : 8080;
}

static const char *env_or(const char *name, const char *def) {
  const char *v = getenv(name);
  return (v && *v) ? v : def;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void reply(int fd, int status, const char *body) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   status, status == 200 ? "OK" : status == 404 ? "Not Found"
                   : status == 500 ? "Internal Server Error" : "Service Unavailable",
                   strlen(body), body);
  if (n > 0) (void)!write(fd, buf, (size_t)n);
}

static int serve(void) {
  const char *mode = env_or("MODE", "healthy");
  const char *version = env_or("VERSION", "v0");
  double fail_after = atof(env_or("FAIL_AFTER", "0"));
  double started = now_s();
  int port = port_from_env();

  if (strcmp(mode, "exit") == 0) {
    printf("health %s: done\n", version);
    return 0;
  }
  if (strcmp(mode, "crash") == 0) {
    fprintf(stderr, "health: MODE=crash: exiting with status 3\n");
    return 3;
  }
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_ANY) };
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0) {
    fprintf(stderr, "health: port %d: %s\n", port, strerror(errno));
    return 2;
  }
  printf("health %s: mode %s, listening on %d\n", version, mode, port);
  fflush(stdout);
  while (!stop) {
    int c = accept(ls, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      return 2;
    }
    struct timeval tv = { 2, 0 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[2048];
    ssize_t n = read(c, req, sizeof req - 1);
    req[n > 0 ? n : 0] = 0;
    int failing = strcmp(mode, "unhealthy") == 0 && now_s() - started >= fail_after;
    if (strncmp(req, "GET /health", 11) == 0)
      reply(c, failing ? 503 : 200, failing ? "failing\n" : "ok\n");
    else if (strncmp(req, "GET / ", 6) == 0 && strcmp(mode, "degraded") == 0)
      reply(c, 500, "degraded\n");
    else if (strncmp(req, "GET / ", 6) == 0) {
      char body[256];
      snprintf(body, sizeof body, "%s\n", version);
      reply(c, 200, body);
    } else
      reply(c, 404, "not found\n");
    close(c);
  }
  return 0;
}

/* The HEALTHCHECK command: there is no shell or curl in a scratch image. */
static int healthcheck(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port_from_env()) };
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  struct timeval tv = { 2, 0 };
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    printf("healthcheck: connect: %s\n", strerror(errno));
    return 1;
  }
  const char *q = "GET /health HTTP/1.0\r\n\r\n";
  (void)!write(s, q, strlen(q));
  char buf[256];
  ssize_t n = read(s, buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  int ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
  char *eol = strchr(buf, '\r');
  if (eol) *eol = 0;
  printf("healthcheck: %s\n", n > 0 ? buf : "no answer");
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;     /* no SA_RESTART: accept() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 1 && strcmp(argv[1], "healthcheck") == 0) return healthcheck();
  if (argc > 1 && strcmp(argv[1], "serve") != 0) {
    fprintf(stderr, "usage: health [serve|healthcheck]\n");
    return 2;
  }
  return serve();
}
