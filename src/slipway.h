/*
 * slipway.h: what every native module shares: the await bridge, option and
 * argument checking, durations, and error values.
 */
#ifndef SLIPWAY_H
#define SLIPWAY_H

#include <lua.h>
#include <lauxlib.h>
#include "await.h"

#define SLIPWAY_VERSION "0.1.0"

/* Push the failure triple nil, "<context>: <strerror>", "<ENAME>" for a
 * libuv error code (negative); returns 3 (options.c). */
int sw_push_uverror(lua_State *L, int err, const char *context);

/* Same, for an errno value. */
int sw_push_errno(lua_State *L, int err, const char *context);

/* The user's call site: the innermost Lua frame that is not slipway's own
 * Lua (@lua/..., @stdlib/...) nor C; with source ("@deploy.lua"), the
 * innermost frame of that chunk if it runs. 1 and *ar filled, or 0.
 * (caller.c) */
int sw_caller_frame(lua_State *L, const char *source, lua_Debug *ar);

/* Raise msg prefixed with the file:line of the user's call site, the way
 * every caller mistake is reported. Does not return. (caller.c) */
int sw_raise_at_caller(lua_State *L, const char *msg);

/* Reject unknown keys in the options table at idx (nil is allowed). `allowed`
 * is NULL-terminated. Raises "<fname>: unknown option 'x' (valid: a, b, c)"
 * with the caller's file:line. (options.c) */
void sw_check_options(lua_State *L, int idx, const char *fname,
                      const char *const allowed[]);

/* The first key of the table at idx that `allowed` (NULL-terminated) does
 * not list: pushed, returning 1; or 0 with nothing pushed. (options.c) */
int sw_unknown_option(lua_State *L, int idx, const char *const allowed[]);

/* The string (or number) at idx as a C string for the system: raises
 * "<fname>: <what> must be a string, got T", or "<fname>: <what> contains
 * a NUL byte: "a\0b"" (a C string would silently end there), naming the
 * caller's file:line. A number is converted in place, and so is a Secret
 * (slipway.secret): its plain text is what the system gets. (options.c) */
const char *sw_check_cstring(lua_State *L, int idx, const char *fname,
                             const char *what);

/* Option getters on the table at idx; absent or nil gives the default,
 * a value of the wrong type raises naming fname and the key. A string
 * option is a C string (a string, not a number) that lives as long as the
 * options table: one with a NUL byte raises. A size is a whole
 * number of bytes >= 0. A duration follows sw_duration_problem. (options.c) */
const char *sw_opt_string(lua_State *L, int idx, const char *key,
                          const char *def, const char *fname);
size_t sw_opt_size(lua_State *L, int idx, const char *key, size_t def,
                   const char *fname);
lua_Integer sw_opt_integer(lua_State *L, int idx, const char *key,
                           lua_Integer def, const char *fname);
int sw_opt_boolean(lua_State *L, int idx, const char *key, int def,
                   const char *fname);
/* The option at idx as the index of its value in choices (NULL-terminated
 * strings); absent or nil gives def, another value raises "<fname>: option
 * 'key' must be "a", "b" or "c", got x". (options.c) */
int sw_opt_choice(lua_State *L, int idx, const char *key,
                  const char *const choices[], int def, const char *fname);
double sw_opt_duration(lua_State *L, int idx, const char *key, double def_ms,
                       const char *fname);

/* Write a byte count for people: "64 MiB", "512 KiB", "1000 bytes". */
void sw_format_size(size_t bytes, char *buf, size_t len);

/* Parse "250ms", "5m", "1h30m", "1.5s", "2h", "0" into milliseconds; a plain
 * number means seconds. Returns 0 on success. (duration.c) */
int sw_parse_duration(const char *s, double *ms);

/* The longest duration anything takes: 100 years (36500 days). */
#define SW_DURATION_MAX_MS (36500 * 86400e3)

/* NULL when ms is a usable duration; else why not, to follow "duration":
 * "is not a number", "must not be negative", "is too large (the limit is
 * 100 years)". Every duration slipway reads goes through it. */
const char *sw_duration_problem(double ms);

/* The value at idx as a duration in ms (string or number of seconds); raises
 * "<fname>: bad duration 'x' (expected e.g. 250ms, 5s, 1h30m)", or
 * "<fname>: duration 'x' <sw_duration_problem>". */
double sw_check_duration(lua_State *L, int idx, const char *fname);

/* Format ms the way durations are written back ("1.5s", "2m0s"). */
void sw_format_duration(double ms, char *buf, size_t len);

/* Metatables that mark decoded JSON/YAML lists and maps (array_rule.c). */
#define SW_ARRAY_MT "json.array"
#define SW_OBJECT_MT "json.object"

/* 1 and the length if the table at idx is a list by the encoders' rule
 * (see array_rule.c), else 0. */
int sw_table_is_array(lua_State *L, int idx, lua_Integer *len);

/* An unsigned 64-bit integer above Lua's integers (uint64.c): a userdata
 * "slipway.Uint64" (tostring: its digits; == < <= by value). test returns
 * 1 and the value if idx holds one, else 0; format writes the digits. */
void sw_uint64_push(lua_State *L, unsigned long long v);
void sw_uint64_push_metatable(lua_State *L);
int sw_uint64_test(lua_State *L, int idx, unsigned long long *v);
void sw_uint64_format(unsigned long long v, char *buf, size_t len);

/* A growable output buffer in C memory (outbuf.c): add raises "out of
 * memory"; push leaves the contents as a string and frees the buffer. */
typedef struct {
  char *buf;
  size_t len, cap;
} sw_outbuf;
void sw_outbuf_add(lua_State *L, sw_outbuf *b, const void *s, size_t n);
void sw_outbuf_push(lua_State *L, sw_outbuf *b);
void sw_outbuf_free(sw_outbuf *b);

/* Secrets (secret.c): whether the value at idx is a slipway.Secret, and
 * the string it holds (NULL when it is none; alive while the Secret is). */
int sw_is_secret(lua_State *L, int idx);
const char *sw_secret_value(lua_State *L, int idx, size_t *len);

/* SHA-1 for natives that hash off the loop (hash.c). sw_hash_require loads
 * libcrypto (raises if it cannot); afterwards the others may run on any
 * thread. sw_sha1_fd digests what fd gives until EOF, reading through buf
 * (len bytes, the caller's), and stores 40 lower-case hex digits + NUL in
 * hex and the bytes read in *size; *stop set meanwhile ends it. Both return
 * 0 or an errno value (ECANCELED when stopped). */
void sw_hash_require(lua_State *L);
int sw_sha1_hex(const void *data, size_t len, char hex[41]);
int sw_sha1_fd(int fd, char hex[41], long long *size, unsigned char *buf, size_t len,
               volatile int *stop);

/* The output masker (mask.c). sw_mask_add registers a secret value (every
 * form of it: see mask.c; a value under SW_MASK_MIN bytes is ignored):
 * 0, or -1 when memory ran out. sw_mask_active: anything registered?
 * sw_mask_contains: does s hold a registered value in any form?
 * sw_mask_text and sw_redact_urls write s with every registered value,
 * respectively every password in a URL, replaced by "***" into *out
 * (malloc'ed, the caller frees it) and return 1; 0 when there was nothing
 * to replace (*out untouched); -1 when memory ran out. */
#define SW_MASK_MIN 4
int sw_mask_add(const char *value, size_t len);
int sw_mask_active(void);
size_t sw_mask_longest(void);
int sw_mask_contains(const char *s, size_t n);
int sw_mask_text(const char *s, size_t n, char **out, size_t *outlen);
int sw_redact_urls(const char *s, size_t n, char **out, size_t *outlen);

/* A streaming SHA-256 (hash.c, libcrypto opened on first use). begin
 * runs on the loop thread and raises when libcrypto cannot be loaded (NULL:
 * out of memory); update and finish may then run on any one thread.
 * finish writes 64 hex digits and a NUL, and frees; free drops an
 * unfinished one (NULL is fine); next writes the digest so far like finish
 * and starts a new one in h (same thread rules as update). */
typedef struct sw_sha256 sw_sha256;
sw_sha256 *sw_sha256_begin(lua_State *L);
void sw_sha256_update(sw_sha256 *h, const void *data, size_t len);
void sw_sha256_finish(sw_sha256 *h, char hex[65]);
void sw_sha256_next(sw_sha256 *h, char hex[65]);
void sw_sha256_free(sw_sha256 *h);

#endif
