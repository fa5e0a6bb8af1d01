/*
 * hash.c: SHA-1 and SHA-256 of strings and files (the slipway.hash module),
 * computed by OpenSSL's libcrypto, which is opened on the first digest so
 * that it costs nothing at start-up (lazylib.h); and random identifiers
 * from the kernel (random_hex). Natives that hash on the thread pool use
 * sw_hash_require + sw_sha1_fd / sw_sha1_hex, or a streaming SHA-256
 * (sw_sha256_begin/update/finish) that a worker thread can feed (slipway.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "slipway.h"
#include "lazylib.h"

static struct {
  EVP_MD_CTX *(*ctx_new)(void);
  void (*ctx_free)(EVP_MD_CTX *);
  int (*init)(EVP_MD_CTX *, const EVP_MD *, ENGINE *);
  int (*update)(EVP_MD_CTX *, const void *, size_t);
  int (*final)(EVP_MD_CTX *, unsigned char *, unsigned int *);
  const EVP_MD *(*sha1)(void);
  const EVP_MD *(*sha256)(void);
} crypto;

static const struct sw_lazysym crypto_syms[] = {
  {"EVP_MD_CTX_new", (void **)&crypto.ctx_new},
  {"EVP_MD_CTX_free", (void **)&crypto.ctx_free},
  {"EVP_DigestInit_ex", (void **)&crypto.init},
  {"EVP_DigestUpdate", (void **)&crypto.update},
  {"EVP_DigestFinal_ex", (void **)&crypto.final},
  {"EVP_sha1", (void **)&crypto.sha1},
  {"EVP_sha256", (void **)&crypto.sha256},
  {NULL, NULL}
};

static const char *const crypto_sonames[] = {"libcrypto.so.3", "libcrypto.so", NULL};

static const EVP_MD *algorithm(lua_State *L, int which) {
  if (crypto.ctx_new == NULL) sw_lazylib_load(L, crypto_sonames, crypto_syms);
  return which == 256 ? crypto.sha256() : crypto.sha1();
}

static void hex_of(const unsigned char *md, unsigned int n, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (unsigned int i = 0; i < n; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[2 * n] = 0;
}

static void push_hex(lua_State *L, const unsigned char *md, unsigned int n) {
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  hex_of(md, n, hex);
  lua_pushlstring(L, hex, 2 * n);
}

/* Digest of the string at index 1: hex by default, raw bytes with
 * {binary = true}. */
static int digest_string(lua_State *L, int which, const char *fname) {
  static const char *const allowed[] = {"binary", NULL};
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  sw_check_options(L, 2, fname, allowed);
  int binary = sw_opt_boolean(L, 2, "binary", 0, fname);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  const EVP_MD *md_type = algorithm(L, which);
  EVP_MD_CTX *ctx = crypto.ctx_new();
  if (ctx == NULL) return luaL_error(L, "%s: out of memory", fname);
  crypto.init(ctx, md_type, NULL);
  crypto.update(ctx, data, len);
  crypto.final(ctx, md, &n);
  crypto.ctx_free(ctx);
  if (binary) lua_pushlstring(L, (const char *)md, n);
  else push_hex(L, md, n);
  return 1;
}

/* Digest of the file named at index 1 (read in blocks): hex, or the
 * failure triple when it cannot be read. */
static int digest_file(lua_State *L, int which) {
  const char *path = sw_check_cstring(L, 1, which == 1 ? "hash.sha1_file" : "hash.sha256_file", "path");
  const EVP_MD *md_type = algorithm(L, which);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return sw_push_errno(L, errno, path);
  unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  size_t got;
  EVP_MD_CTX *ctx = crypto.ctx_new();
  if (ctx == NULL) {
    fclose(f);
    return sw_push_errno(L, ENOMEM, path);
  }
  crypto.init(ctx, md_type, NULL);
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) crypto.update(ctx, buf, got);
  int failed = ferror(f);
  int err = errno;
  fclose(f);
  crypto.final(ctx, md, &n);
  crypto.ctx_free(ctx);
  if (failed) return sw_push_errno(L, err, path);
  push_hex(L, md, n);
  return 1;
}

/* ------------------------------------------------ for other natives */

void sw_hash_require(lua_State *L) {
  algorithm(L, 1);
}

int sw_sha1_hex(const void *data, size_t len, char hex[41]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_MD_CTX *ctx = crypto.ctx_new();
  if (ctx == NULL) return ENOMEM;
  crypto.init(ctx, crypto.sha1(), NULL);
  crypto.update(ctx, data, len);
  crypto.final(ctx, md, &n);
  crypto.ctx_free(ctx);
  hex_of(md, n, hex);
  return 0;
}

int sw_sha1_fd(int fd, char hex[41], long long *size, unsigned char *buf, size_t len,
               volatile int *stop) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  long long total = 0;
  int err = 0;
  EVP_MD_CTX *ctx = crypto.ctx_new();
  if (ctx == NULL) return ENOMEM;
  crypto.init(ctx, crypto.sha1(), NULL);
  for (;;) {
    if (stop && *stop) { err = ECANCELED; break; }
    ssize_t got = read(fd, buf, len);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) { err = errno; break; }
    if (got == 0) break;
    crypto.update(ctx, buf, (size_t)got);
    total += got;
  }
  crypto.final(ctx, md, &n);
  crypto.ctx_free(ctx);
  if (err) return err;
  hex_of(md, n, hex);
  *size = total;
  return 0;
}

static int hash_sha1(lua_State *L) { return digest_string(L, 1, "hash.sha1"); }
static int hash_sha256(lua_State *L) { return digest_string(L, 256, "hash.sha256"); }
static int hash_sha1_file(lua_State *L) { return digest_file(L, 1); }
static int hash_sha256_file(lua_State *L) { return digest_file(L, 256); }

/* The streaming SHA-256 of slipway.h: begin on the loop thread (it may
 * open libcrypto, raising when it cannot), update and finish anywhere. */
struct sw_sha256 {
  EVP_MD_CTX *ctx;
};

sw_sha256 *sw_sha256_begin(lua_State *L) {
  const EVP_MD *md_type = algorithm(L, 256);
  sw_sha256 *h = malloc(sizeof *h);
  if (h == NULL) return NULL;
  h->ctx = crypto.ctx_new();
  if (h->ctx == NULL || crypto.init(h->ctx, md_type, NULL) != 1) {
    if (h->ctx) crypto.ctx_free(h->ctx);
    free(h);
    return NULL;
  }
  return h;
}

void sw_sha256_update(sw_sha256 *h, const void *data, size_t len) {
  if (len > 0) crypto.update(h->ctx, data, len);
}

static void final_hex(sw_sha256 *h, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  crypto.final(h->ctx, md, &n);
  hex_of(md, n < 32 ? n : 32, hex);
}

void sw_sha256_finish(sw_sha256 *h, char hex[65]) {
  final_hex(h, hex);
  sw_sha256_free(h);
}

void sw_sha256_next(sw_sha256 *h, char hex[65]) {
  final_hex(h, hex);
  crypto.init(h->ctx, crypto.sha256(), NULL);   /* libcrypto is loaded: begin did */
}

void sw_sha256_free(sw_sha256 *h) {
  if (h == NULL) return;
  crypto.ctx_free(h->ctx);
  free(h);
}

/* random_hex(nbytes) -> 2 * nbytes hex digits from the kernel's random
 * source (getrandom), e.g. for ids that must not repeat even when ASLR is
 * off or every process starts alike. At most 64 bytes. */
static int hash_random_hex(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= EVP_MAX_MD_SIZE, 1, "expected 1 to 64 bytes");
  unsigned char bytes[EVP_MAX_MD_SIZE];
  int err = uv_random(NULL, NULL, bytes, (size_t)n, 0, NULL);
  if (err < 0) return luaL_error(L, "hash.random_hex: %s", uv_strerror(err));
  push_hex(L, bytes, (unsigned int)n);
  return 1;
}

static const luaL_Reg hash_funcs[] = {
  {"sha1", hash_sha1},
  {"sha256", hash_sha256},
  {"sha1_file", hash_sha1_file},
  {"sha256_file", hash_sha256_file},
  {"random_hex", hash_random_hex},
  {NULL, NULL}
};

int luaopen_slipway_hash(lua_State *L) {
  luaL_newlib(L, hash_funcs);
  return 1;
}
