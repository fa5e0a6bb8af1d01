/*
 * outbuf.c: the growable output buffer of the json and yaml encoders. It
 * lives in plain C memory (owned by a userdata whose __gc calls
 * sw_outbuf_free) because a luaL_Buffer must stay at the top of the Lua
 * stack, and an encoder needs the stack for keys and values in between.
 */
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

void sw_outbuf_add(lua_State *L, sw_outbuf *b, const void *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n) cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (nb == NULL) luaL_error(L, "out of memory");
    b->buf = nb;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
}

void sw_outbuf_push(lua_State *L, sw_outbuf *b) {
  lua_pushlstring(L, b->buf ? b->buf : "", b->len);
  sw_outbuf_free(b);
}

void sw_outbuf_free(sw_outbuf *b) {
  free(b->buf);
  b->buf = NULL;
  b->len = b->cap = 0;
}
