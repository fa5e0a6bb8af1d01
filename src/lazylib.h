/*
 * lazylib.h: shared libraries opened on first use. libcurl and libcrypto
 * pull in dozens of libraries (OpenSSL, GnuTLS, Kerberos, LDAP...) whose
 * loading would dominate start-up, so the binary does not link them; the
 * modules that need them resolve their functions through a table of
 * pointers filled by sw_lazylib_load() the first time they are required.
 */
#ifndef SLIPWAY_LAZYLIB_H
#define SLIPWAY_LAZYLIB_H

#include <stddef.h>
#include <lua.h>

struct sw_lazysym {
  const char *name;
  void **slot;           /* where the resolved address is stored */
};

/* Open the first library in `sonames` (NULL-terminated) that loads and
 * resolve every symbol in `syms` (terminated by a {NULL, NULL} entry).
 * Returns 0, or raises a Lua error naming the library and symbol. */
int sw_lazylib_load(lua_State *L, const char *const sonames[],
                    const struct sw_lazysym syms[]);

#endif
