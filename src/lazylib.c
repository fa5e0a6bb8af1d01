/*
 * lazylib.c: dlopen a shared library on first use and fill a table of
 * function pointers from it (see lazylib.h for why).
 */
#include <dlfcn.h>
#include "slipway.h"
#include "lazylib.h"

int sw_lazylib_load(lua_State *L, const char *const sonames[],
                    const struct sw_lazysym syms[]) {
  void *handle = NULL;
  const char *used = NULL;
  for (int i = 0; sonames[i] && handle == NULL; i++) {
    handle = dlopen(sonames[i], RTLD_LAZY | RTLD_LOCAL);  /* binding all of libcurl's 38 libraries eagerly costs ~1 ms */
    used = sonames[i];
  }
  if (handle == NULL)
    return luaL_error(L, "cannot load %s: %s", sonames[0], dlerror());
  for (int i = 0; syms[i].name; i++) {
    void *p = dlsym(handle, syms[i].name);
    if (p == NULL)
      return luaL_error(L, "%s: missing symbol %s", used, syms[i].name);
    *syms[i].slot = p;
  }
  return 0;   /* the handle stays open for the life of the process */
}
