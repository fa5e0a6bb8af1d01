/*
 * fuzz_json.c: libFuzzer target for slipway.json (src/json.c). An input is
 * JSON text; the check (tests/fuzz/checks.lua, M.json) decodes it and
 * encodes what it got back.
 */
#define FUZZ_TARGET "json"
#include "fuzz_harness.h"
