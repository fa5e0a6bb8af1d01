/*
 * fuzz_interpolate.c: libFuzzer target for the compose interpolation parser
 * (stdlib/compose/interpolate.lua). An input is one template string,
 * substituted on its own and at typed fields of a document, with a fixed
 * set of variables (tests/fuzz/checks.lua, M.interpolate).
 */
#define FUZZ_TARGET "interpolate"
#include "fuzz_harness.h"
