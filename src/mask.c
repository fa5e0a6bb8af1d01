/*
 * mask.c: the output masker (one for the process) and the redaction of
 * passwords in URLs. slipway.secret (secret.c) registers every secret value
 * here and gives Lua the masking functions; natives that must refuse a
 * secret (proc.c: argv) ask here whether a text holds one.
 *
 * A registered value becomes a set of patterns, every form it takes in the
 * text slipway writes or a program prints:
 *   - the value; each line of a multi-line value (a line is what a
 *     line-by-line writer sees);
 *   - JSON-escaped (as slipway.json writes strings), XML-escaped (the
 *     timeline picture), URL-encoded (%20, and + for a space as forms
 *     write it), and the URL-encoded JSON form (a query string holding JSON:
 *     the Docker engine's build arguments);
 *   - base64, standard and URL alphabets, of the value starting at byte 0,
 *     1 or 2 of a larger encoded buffer: the characters that depend on the
 *     value's bytes alone (those straddling a neighbouring byte differ from
 *     one buffer to the next), as actions/runner masks base64.
 * Forms shorter than SW_MASK_MIN bytes are dropped: they would hide
 * ordinary text.
 *
 * Matching: every pattern is at least 4 bytes, and a 65,536-bit filter
 * indexed by a hash of a pattern's first 4 bytes rules out almost every
 * position of a text with one load, a multiply and a bit test, so masking
 * costs about a nanosecond a byte whatever the number of secrets. The few
 * positions that pass are checked against the patterns of that hash.
 * Overlapping and touching matches merge into one "***", so no piece of a
 * value shows between two masks.
 *
 * URLs: in scheme://user:password@host the password becomes ***, for any
 * text, secret or not (the last '@' before the path ends the user part, so
 * a password with a raw '@' goes too).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

#define FILTER_BITS 16

typedef struct {
  char *text;
  size_t len;
  uint32_t head;      /* the first 4 bytes */
  uint32_t hash;      /* hash(head): the filter bit */
} pattern;

static pattern *patterns;     /* sorted by hash */
static size_t npatterns, cap_patterns;
static size_t longest;        /* the longest pattern's length */
static size_t nvalues;
static uint64_t filter[(1u << FILTER_BITS) / 64];

static inline uint32_t head_of(const char *s) {
  uint32_t w;
  memcpy(&w, s, 4);
  return w;
}

static inline uint32_t hash_of(uint32_t head) {
  return (head * 2654435761u) >> (32 - FILTER_BITS);
}

static inline int filter_has(uint32_t h) {
  return (int)((filter[h >> 6] >> (h & 63)) & 1);
}

/* -------------------------------------------------------------- patterns */

/* Keep a copy of s as a pattern (once); 0, or -1 when memory ran out. */
static int add_pattern(const char *s, size_t len) {
  if (len < SW_MASK_MIN) return 0;
  uint32_t head = head_of(s), h = hash_of(head);
  size_t at = 0;
  while (at < npatterns && patterns[at].hash < h) at++;
  for (size_t k = at; k < npatterns && patterns[k].hash == h; k++)
    if (patterns[k].len == len && memcmp(patterns[k].text, s, len) == 0) return 0;
  if (npatterns == cap_patterns) {
    size_t cap = cap_patterns ? cap_patterns * 2 : 64;
    pattern *np = realloc(patterns, cap * sizeof *np);
    if (np == NULL) return -1;
    patterns = np;
    cap_patterns = cap;
  }
  char *copy = malloc(len);
  if (copy == NULL) return -1;
  memcpy(copy, s, len);
  memmove(patterns + at + 1, patterns + at, (npatterns - at) * sizeof *patterns);
  patterns[at] = (pattern){ copy, len, head, h };
  npatterns++;
  if (len > longest) longest = len;
  filter[h >> 6] |= (uint64_t)1 << (h & 63);
  return 0;
}

/* A form under construction: plain malloc'ed bytes. */
typedef struct {
  char *p;
  size_t len, cap;
  int failed;
} form;

static void put(form *f, const char *s, size_t n) {
  if (f->failed || n == 0) return;
  if (f->len + n > f->cap) {
    size_t cap = f->cap ? f->cap : 64;
    while (cap < f->len + n) cap *= 2;
    char *np = realloc(f->p, cap);
    if (np == NULL) { f->failed = 1; return; }
    f->p = np;
    f->cap = cap;
  }
  memcpy(f->p + f->len, s, n);
  f->len += n;
}

static int keep(form *f) {
  int r = f->failed ? -1 : add_pattern(f->p, f->len);
  free(f->p);
  memset(f, 0, sizeof *f);
  return r;
}

static const char hex_lower[] = "0123456789abcdef", hex_upper[] = "0123456789ABCDEF";

/* s as slipway.json writes it inside a string (src/json.c: enc_string) */
static void json_escape(form *f, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    }
    if (esc) {
      put(f, esc, 2);
    } else if (c < 0x20) {
      char u[6] = { '\\', 'u', '0', '0', hex_lower[c >> 4], hex_lower[c & 15] };
      put(f, u, 6);
    } else {
      put(f, (const char *)&c, 1);
    }
  }
}

static void xml_escape(form *f, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    switch (s[i]) {
    case '&': put(f, "&amp;", 5); break;
    case '<': put(f, "&lt;", 4); break;
    case '>': put(f, "&gt;", 4); break;
    case '"': put(f, "&quot;", 6); break;
    case '\'': put(f, "&#39;", 5); break;
    default: put(f, s + i, 1);
    }
  }
}

/* Percent-encoding of everything but RFC 3986's unreserved characters;
 * plus: a space is '+' (HTML forms) instead of %20. */
static void url_encode(form *f, const char *s, size_t n, int plus) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '.' || c == '_' || c == '~') {
      put(f, (const char *)&c, 1);
    } else if (c == ' ' && plus) {
      put(f, "+", 1);
    } else {
      char e[3] = { '%', hex_upper[c >> 4], hex_upper[c & 15] };
      put(f, e, 3);
    }
  }
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The base64 characters that depend only on s when s starts at byte
 * `offset` (0-2) of the encoded buffer. Character k covers bits [6k, 6k+6)
 * of the buffer and s covers bits [8 offset, 8 (offset + n)): the stable
 * characters are those whose six bits all fall inside. */
static int add_base64(const char *s, size_t n, int offset, const char *abc) {
  size_t total = (size_t)offset + n, first = ((size_t)offset * 8 + 5) / 6, end = total * 8 / 6;
  if (end <= first || end - first < SW_MASK_MIN) return 0;
  form f = { 0 };
  for (size_t g = 0; g * 3 < total; g++) {       /* group g: bytes 3g..3g+2 */
    unsigned v = 0;
    for (int b = 0; b < 3; b++) {
      size_t at = g * 3 + (size_t)b;
      unsigned byte = (at >= (size_t)offset && at < total) ? (unsigned char)s[at - (size_t)offset] : 0;
      v = v << 8 | byte;
    }
    for (int c = 0; c < 4; c++) {
      size_t k = g * 4 + (size_t)c;
      if (k >= first && k < end) put(&f, &abc[(v >> (18 - 6 * c)) & 63], 1);
    }
  }
  return keep(&f);
}

/* Every form of value s (see the header). */
static int add_forms(const char *s, size_t n) {
  form f = { 0 };
  int r = add_pattern(s, n);
  /* each line of a multi-line value, without its \r */
  if (memchr(s, '\n', n)) {
    const char *p = s, *end = s + n;
    while (r == 0 && p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *le = nl ? nl : end;
      size_t len = (size_t)(le - p);
      if (len && p[len - 1] == '\r') len--;
      r = add_pattern(p, len);
      p = nl ? nl + 1 : end;
    }
  }
  if (r == 0) { json_escape(&f, s, n); r = keep(&f); }
  if (r == 0) { xml_escape(&f, s, n); r = keep(&f); }
  if (r == 0) { url_encode(&f, s, n, 0); r = keep(&f); }
  if (r == 0) { url_encode(&f, s, n, 1); r = keep(&f); }
  if (r == 0) {          /* the URL-encoded JSON form */
    form j = { 0 };
    json_escape(&j, s, n);
    if (j.failed) r = -1;
    else url_encode(&f, j.p, j.len, 0);
    free(j.p);
    if (r == 0) r = keep(&f);
  }
  for (int offset = 0; offset < 3 && r == 0; offset++) {
    r = add_base64(s, n, offset, b64_std);
    if (r == 0) r = add_base64(s, n, offset, b64_url);
  }
  return r;
}

int sw_mask_add(const char *value, size_t len) {
  if (len < SW_MASK_MIN) return 0;
  if (add_forms(value, len) != 0) return -1;
  nvalues++;
  return 0;
}

int sw_mask_active(void) {
  return npatterns > 0;
}

size_t sw_mask_longest(void) {
  return longest;
}

/* -------------------------------------------------------------- matching */

/* The length of the longest pattern at s (rem bytes left, rem >= 4), or 0. */
static size_t longest_at(const char *s, size_t rem, uint32_t head, uint32_t h) {
  size_t lo = 0, hi = npatterns, best = 0;
  while (lo < hi) {                       /* the first pattern of hash h */
    size_t mid = (lo + hi) / 2;
    if (patterns[mid].hash < h) lo = mid + 1; else hi = mid;
  }
  for (size_t k = lo; k < npatterns && patterns[k].hash == h; k++) {
    const pattern *p = &patterns[k];
    if (p->head == head && p->len <= rem && p->len > best && memcmp(p->text, s, p->len) == 0)
      best = p->len;
  }
  return best;
}

/* The first match in s at or after `from`: its start, and *end the end of
 * the run of matches overlapping or touching it; n when there is none. */
static size_t next_match(const char *s, size_t n, size_t from, size_t *end) {
  size_t start = n;
  for (size_t i = from; i + SW_MASK_MIN <= n; i++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (start == n) {
      /* eight positions a test while the filter rules them all out: the
       * common case, with no branch between the eight */
      while (i + 8 + SW_MASK_MIN <= n) {
        uint64_t w, x;
        memcpy(&w, s + i, 8);
        memcpy(&x, s + i + 4, 8);
        uint64_t any =
          (filter[hash_of((uint32_t)w) >> 6] >> (hash_of((uint32_t)w) & 63)) |
          (filter[hash_of((uint32_t)(w >> 8)) >> 6] >> (hash_of((uint32_t)(w >> 8)) & 63)) |
          (filter[hash_of((uint32_t)(w >> 16)) >> 6] >> (hash_of((uint32_t)(w >> 16)) & 63)) |
          (filter[hash_of((uint32_t)(w >> 24)) >> 6] >> (hash_of((uint32_t)(w >> 24)) & 63)) |
          (filter[hash_of((uint32_t)x) >> 6] >> (hash_of((uint32_t)x) & 63)) |
          (filter[hash_of((uint32_t)(x >> 8)) >> 6] >> (hash_of((uint32_t)(x >> 8)) & 63)) |
          (filter[hash_of((uint32_t)(x >> 16)) >> 6] >> (hash_of((uint32_t)(x >> 16)) & 63)) |
          (filter[hash_of((uint32_t)(x >> 24)) >> 6] >> (hash_of((uint32_t)(x >> 24)) & 63));
        if (any & 1) break;
        i += 8;
      }
    }
#endif
    if (start != n && i > *end) break;
    uint32_t head = head_of(s + i), h = hash_of(head);
    if (!filter_has(h)) continue;
    size_t len = longest_at(s + i, n - i, head, h);
    if (len == 0) continue;
    if (start == n) {
      start = i;
      *end = i + len;
    } else if (i + len > *end) {
      *end = i + len;
    }
  }
  return start;
}

int sw_mask_contains(const char *s, size_t n) {
  if (npatterns == 0) return 0;
  size_t end;
  return next_match(s, n, 0, &end) < n;
}

/* Hand over the bytes of f as *out, *outlen; 1, or -1 when memory ran out. */
static int hand_over(form *f, char **out, size_t *outlen) {
  if (f->failed) {
    free(f->p);
    return -1;
  }
  *out = f->p;
  *outlen = f->len;
  return 1;
}

int sw_mask_text(const char *s, size_t n, char **out, size_t *outlen) {
  if (npatterns == 0) return 0;
  size_t copied = 0, end = 0, start = next_match(s, n, 0, &end);
  if (start == n) return 0;
  form f = { 0 };
  while (start < n) {
    put(&f, s + copied, start - copied);
    put(&f, "***", 3);
    copied = end;
    start = next_match(s, n, end, &end);
  }
  put(&f, s + copied, n - copied);
  return hand_over(&f, out, outlen);
}

/* ------------------------------------------------------------------ URLs */

static int is_scheme_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '-' || c == '.';
}

/* Where the authority of a URL starting at s ends (its path, query,
 * fragment, or the end of the URL in running text). */
static size_t authority_end(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c == '/' || c == '?' || c == '#' || c == '"' || c == '\'' || c == '<' ||
        c == '>' || c == '`' || c == '\\' || c == 127)
      break;
    i++;
  }
  return i;
}

/* The next password in a URL of s at or after from: [*pw, *pw_end);
 * returns 0 when there is none. */
static int next_password(const char *s, size_t n, size_t from, size_t *pw, size_t *pw_end) {
  while (from + 3 <= n) {
    /* memchr, then a look at the next two bytes: memmem's setup costs more
     * than a short line's whole scan */
    const char *sep = memchr(s + from, ':', n - from - 2);
    if (sep == NULL) return 0;
    size_t at = (size_t)(sep - s), a = at + 3;
    from = at + 1;
    if (sep[1] != '/' || sep[2] != '/') continue;
    from = a;
    if (at == 0 || !is_scheme_char((unsigned char)s[at - 1])) continue;
    size_t len = authority_end(s + a, n - a);
    const char *last_at = NULL;
    for (size_t i = 0; i < len; i++)
      if (s[a + i] == '@') last_at = s + a + i;
    if (last_at == NULL) continue;
    const char *colon = memchr(s + a, ':', (size_t)(last_at - (s + a)));
    if (colon == NULL || colon + 1 == last_at) continue;     /* no password */
    size_t p0 = (size_t)(colon + 1 - s), p1 = (size_t)(last_at - s);
    from = p1;
    if (p1 - p0 == 3 && memcmp(s + p0, "***", 3) == 0) continue;   /* done already */
    *pw = p0;
    *pw_end = p1;
    return 1;
  }
  return 0;
}

int sw_redact_urls(const char *s, size_t n, char **out, size_t *outlen) {
  size_t p0, p1;
  if (n < 6 || !next_password(s, n, 0, &p0, &p1)) return 0;
  size_t copied = 0;
  form f = { 0 };
  do {
    put(&f, s + copied, p0 - copied);
    put(&f, "***", 3);
    copied = p1;
  } while (next_password(s, n, p1, &p0, &p1));
  put(&f, s + copied, n - copied);
  return hand_over(&f, out, outlen);
}
