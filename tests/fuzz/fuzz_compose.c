/*
 * fuzz_compose.c: libFuzzer target for the YAML-to-Stack loader
 * (slipway.compose). An input is a compose file, optionally followed by an
 * override file and a .env file (markers in tests/fuzz/checks.lua); it must
 * load or be rejected with an error naming the file, and a loaded Stack must
 * render and load back to the same Stack (M.compose).
 */
#define FUZZ_TARGET "compose"
#include "fuzz_harness.h"
