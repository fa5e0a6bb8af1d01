/*
 * fuzz_yaml.c: libFuzzer target for slipway.yaml (src/yaml.c). An input is
 * YAML text: decode and decode_all must return a value or "file:line:col:"
 * EYAML, and a decoded value must encode to text that decodes back to the
 * same value (tests/fuzz/checks.lua, M.yaml).
 */
#define FUZZ_TARGET "yaml"
#include "fuzz_harness.h"
