/*
 * term.c: slipway.term, what the reporters need to know about the terminal.
 *
 *   term.isatty(fd)  -> boolean (fd 0, 1 or 2)
 *   term.size([fd])  -> columns, rows of the terminal on fd (default 1),
 *                       or nil when fd is not a terminal
 */
#include <sys/ioctl.h>
#include <unistd.h>
#include "slipway.h"

static int term_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int term_size(lua_State *L) {
  struct winsize ws;
  int fd = (int)luaL_optinteger(L, 1, 1);
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 0;
  lua_pushinteger(L, ws.ws_col);
  lua_pushinteger(L, ws.ws_row);
  return 2;
}

static const luaL_Reg term_funcs[] = {
  {"isatty", term_isatty},
  {"size", term_size},
  {NULL, NULL}
};

int luaopen_slipway_term(lua_State *L) {
  luaL_newlib(L, term_funcs);
  return 1;
}
