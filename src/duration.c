/*
 * duration.c: durations as people write them ("250ms", "5m", "1h30m",
 * "1.5s") and as Go prints them ("1m30s"); the slipway.duration module.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slipway.h"

static const struct { const char *unit; double ms; } units[] = {
  {"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1.0}, {"s", 1e3},
  {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}, {NULL, 0}
};

int sw_parse_duration(const char *s, double *ms) {
  double total = 0;
  if (s == NULL || *s == '\0') return -1;
  if (strcmp(s, "0") == 0) { *ms = 0; return 0; }
  while (*s) {
    char *end;
    if (!(*s >= '0' && *s <= '9') && *s != '.') return -1;
    double v = strtod(s, &end);
    if (end == s) return -1;
    s = end;
    size_t best = 0;
    double scale = 0;
    for (int i = 0; units[i].unit; i++) {
      size_t n = strlen(units[i].unit);
      if (n > best && strncmp(s, units[i].unit, n) == 0) { best = n; scale = units[i].ms; }
    }
    if (best == 0) return -1;
    total += v * scale;
    s += best;
  }
  *ms = total;
  return 0;
}

/* Every timer slipway starts takes whole milliseconds as a uint64_t or a
 * long: far beyond this limit a double no longer converts to either (1e300
 * seconds became a timer that fired at once, or never). */
const char *sw_duration_problem(double ms) {
  if (ms != ms) return "is not a number";
  if (ms < 0) return "must not be negative";
  if (ms > SW_DURATION_MAX_MS) return "is too large (the limit is 100 years)";
  return NULL;
}

/* The string or number at idx in milliseconds; 0 and ms set, or -1 for a
 * string that is not a duration, or the problem with the value. */
static int to_duration(lua_State *L, int idx, double *ms, const char **why) {
  size_t len;
  *why = NULL;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *ms = lua_tonumber(L, idx) * 1000.0;
  } else {
    const char *s = lua_tolstring(L, idx, &len);
    /* "5s\0..." must not read as 5s */
    if (s == NULL || strlen(s) != len || sw_parse_duration(s, ms) != 0) return -1;
  }
  *why = sw_duration_problem(*ms);
  return 0;
}

double sw_check_duration(lua_State *L, int idx, const char *fname) {
  double ms;
  const char *why;
  if (to_duration(L, idx, &ms, &why) != 0)
    sw_raise_at_caller(L, lua_pushfstring(L, "%s: bad duration '%s' (expected e.g. 250ms, 5s, 1h30m)",
                                          fname, luaL_tolstring(L, idx, NULL)));
  if (why)
    sw_raise_at_caller(L, lua_pushfstring(L, "%s: duration '%s' %s", fname,
                                          luaL_tolstring(L, idx, NULL), why));
  return ms;
}

/* Go's time.Duration.String(): "1h0m0s", "1m30s", "1.5s", "250ms", "0s". */
void sw_format_duration(double ms, char *buf, size_t len) {
  long long ns = llround(ms * 1e6);
  if (ns == 0) { snprintf(buf, len, "0s"); return; }
  const char *sign = ns < 0 ? "-" : "";
  if (ns < 0) ns = -ns;
  if (ns < 1000000000LL) {
    const char *unit = "ns";
    double v = (double)ns;
    if (ns >= 1000000) { unit = "ms"; v = ns / 1e6; }
    else if (ns >= 1000) { unit = "\xc2\xb5s"; v = ns / 1e3; }
    snprintf(buf, len, "%s%.9g%s", sign, v, unit);
    return;
  }
  long long h = ns / 3600000000000LL;
  long long m = (ns / 60000000000LL) % 60;
  double s = (ns % 60000000000LL) / 1e9;
  char sec[40];
  snprintf(sec, sizeof sec, "%.9f", s);       /* trim trailing zeros */
  char *dot = strchr(sec, '.');
  if (dot) {
    char *e = sec + strlen(sec) - 1;
    while (e > dot && *e == '0') *e-- = '\0';
    if (e == dot) *e = '\0';
  }
  if (h) snprintf(buf, len, "%s%lldh%lldm%ss", sign, h, m, sec);
  else if (m) snprintf(buf, len, "%s%lldm%ss", sign, m, sec);
  else snprintf(buf, len, "%s%ss", sign, sec);
}

/* parse(s) -> milliseconds | nil, "message": a number means seconds; the
 * same rule as every duration option (not negative, at most 100 years). */
static int duration_parse(lua_State *L) {
  double ms;
  const char *why;
  if (lua_type(L, 1) != LUA_TNUMBER) luaL_checkstring(L, 1);
  int bad = to_duration(L, 1, &ms, &why) != 0;
  if (bad || why) {
    const char *shown = luaL_tolstring(L, 1, NULL);
    lua_pushnil(L);
    if (bad) lua_pushfstring(L, "bad duration '%s' (expected e.g. 250ms, 5s, 1h30m)", shown);
    else lua_pushfstring(L, "duration '%s' %s", shown, why);
    return 2;
  }
  lua_pushnumber(L, ms);
  return 1;
}

/* format(ms) -> Go-style string */
static int duration_format(lua_State *L) {
  char buf[64];
  sw_format_duration(luaL_checknumber(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg duration_funcs[] = {
  {"parse", duration_parse},
  {"format", duration_format},
  {NULL, NULL}
};

int luaopen_slipway_duration(lua_State *L) {
  luaL_newlib(L, duration_funcs);
  return 1;
}
