/*
 * version.c: slipway.version, the versions of slipway and of the libraries
 * built into it, for `slipway version` and bug reports.
 *
 *   version.slipway, version.lua, version.libuv,
 *   version.libyaml    -- strings, read at load time
 *   version.libcurl()  -- string; loads libcurl (see lazylib.h), so it is a
 *                         function: asking costs the library load
 */
#include <curl/curl.h>
#include <yaml.h>
#include "slipway.h"
#include "lazylib.h"

static curl_version_info_data *(*p_curl_version_info)(CURLversion);

/* libcurl() -> "7.88.1 (OpenSSL/3.0.15)" style: the version and its TLS
 * backend, or raises when libcurl cannot be loaded */
static int version_libcurl(lua_State *L) {
  static const char *const sonames[] = {"libcurl.so.4", "libcurl.so", NULL};
  static const struct sw_lazysym syms[] = {
    {"curl_version_info", (void **)&p_curl_version_info},
    {NULL, NULL}
  };
  if (p_curl_version_info == NULL) sw_lazylib_load(L, sonames, syms);
  curl_version_info_data *info = p_curl_version_info(CURLVERSION_NOW);
  if (info->ssl_version)
    lua_pushfstring(L, "%s (%s)", info->version, info->ssl_version);
  else
    lua_pushstring(L, info->version);
  return 1;
}

static const luaL_Reg version_funcs[] = {
  {"libcurl", version_libcurl},
  {NULL, NULL}
};

int luaopen_slipway_version(lua_State *L) {
  luaL_newlib(L, version_funcs);
  lua_pushstring(L, SLIPWAY_VERSION);
  lua_setfield(L, -2, "slipway");
  lua_pushstring(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, uv_version_string());
  lua_setfield(L, -2, "libuv");
  lua_pushstring(L, yaml_get_version_string());
  lua_setfield(L, -2, "libyaml");
  return 1;
}
