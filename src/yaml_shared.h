/*
 * yaml_shared.h: what the two halves of slipway.yaml share: yaml.c
 * (decoding and the module itself) and yaml_emit.c (key order and
 * encoding).
 */
#ifndef SLIPWAY_YAML_SHARED_H
#define SLIPWAY_YAML_SHARED_H

#include <stddef.h>
#include <lua.h>

#define SW_YAML_MAX_DEPTH 1000
#define SW_YAML_MAX_BYTES (16 * 1024 * 1024)  /* default limit of a decoded text */
#define SW_YAML_ARRAY_MT SW_ARRAY_MT           /* shared with json.c (slipway.h) */
#define SW_YAML_ORDER "slipway.yaml.order"   /* registry: weak table t -> {keys in order} */

/* What a plain scalar resolves to, the way go-yaml v3 reads it. */
enum { R_STR, R_NULL, R_BOOL, R_INT, R_FLOAT, R_MERGE, R_TIME, R_UINT };

typedef struct {
  int kind;
  int b;
  lua_Integer i;
  double f;
  unsigned long long u;   /* R_UINT: above Lua's integers (go-yaml's uint64) */
} sw_yaml_scalar;

/* Resolve plain scalar text (yaml.c). */
void sw_yaml_resolve(const char *s, size_t n, sw_yaml_scalar *r);

/* Push the weak-keyed key-order side table (yaml.c). */
void sw_yaml_push_order(lua_State *L);

/* The Lua functions of yaml_emit.c, and its metatables (called once from
 * luaopen_slipway_yaml). */
int sw_yaml_encode(lua_State *L);
int sw_yaml_keys(lua_State *L);
int sw_yaml_order(lua_State *L);
int sw_yaml_key_less(lua_State *L);
int sw_yaml_format_float(lua_State *L);
void sw_yaml_emit_init(lua_State *L);

#endif
