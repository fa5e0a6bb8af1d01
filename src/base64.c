/*
 * base64.c: Base64 encoding and decoding (RFC 4648), standard and URL-safe
 * alphabets: the slipway.base64 module.
 */
#include <string.h>
#include "slipway.h"

static const char std_alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int url_option(lua_State *L, const char *fname) {
  static const char *const allowed[] = {"url", NULL};
  sw_check_options(L, 2, fname, allowed);
  return sw_opt_boolean(L, 2, "url", 0, fname);
}

/* encode(data, {url = false}) -> text; the URL alphabet has no padding */
static int base64_encode(lua_State *L) {
  size_t len;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &len);
  int url = url_option(L, "base64.encode");
  const char *abc = url ? url_alphabet : std_alphabet;
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, 4 * ((len + 2) / 3));
  size_t o = 0, i = 0;
  for (; i + 2 < len; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    out[o++] = abc[v & 63];
  }
  if (i < len) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    if (i + 1 < len) out[o++] = abc[(v >> 6) & 63];
    else if (!url) out[o++] = '=';
    if (!url) out[o++] = '=';
  }
  luaL_pushresultsize(&b, o);
  return 1;
}

static int sextet(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* decode(text) -> data | nil, "base64: invalid character at byte N", "EINVAL"
 * Accepts both alphabets, with or without padding; whitespace is skipped. */
static int base64_decode(lua_State *L) {
  size_t len;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len / 4 * 3 + 3);
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0, pad = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = in[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') { pad++; continue; }
    int v = sextet(c);
    if (v < 0 || pad) {
      lua_pushnil(L);
      lua_pushfstring(L, "base64: invalid character at byte %d", (int)i + 1);
      lua_pushliteral(L, "EINVAL");
      return 3;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xFF);
    }
  }
  if (bits >= 6) {   /* a lone sextet cannot encode a byte */
    lua_pushnil(L);
    lua_pushliteral(L, "base64: truncated input");
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  luaL_pushresultsize(&b, o);
  return 1;
}

static const luaL_Reg base64_funcs[] = {
  {"encode", base64_encode},
  {"decode", base64_decode},
  {NULL, NULL}
};

int luaopen_slipway_base64(lua_State *L) {
  luaL_newlib(L, base64_funcs);
  return 1;
}
