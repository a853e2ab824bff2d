#!/usr/bin/env bash
# CI stage 3: the CPU kernels under AddressSanitizer + UndefinedBehaviorSanitizer.
#   - builds memory_ext CPU-only with -fsanitize=address,undefined (baseline ISA variant only)
#     into build-asan/site, against the torch of .venv (stage 1's venv);
#   - runs the kernel-facing tests and the property tests on that build with libasan and
#     libstdc++ preloaded and PYTHONMALLOC=malloc (freed Python objects are seen by ASan);
#     any ASan or UBSan report fails the run (halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build-asan
T0=$SECONDS
rm -rf "$OUT" && mkdir -p "$OUT"
echo "== asan stage: build"
MEMORY_EXT_CPU_ONLY=1 MEMORY_EXT_SANITIZE=address,undefined MAX_JOBS="${MAX_JOBS:-2}" \
  .venv/bin/pip install -q --no-build-isolation --no-deps --target "$OUT/site" . > "$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log"; echo "asan stage: the sanitizer build failed" >&2; exit 1; }
echo "== asan stage: build done ($((SECONDS - T0)) s)"
TESTS=(test_mlp_memory_forward.py test_mlp_memory_grad.py test_mlp_memory_inplace.py
       test_mlp_memory_errors.py test_mlp_memory_linear.py test_mlp_memory_saved.py
       test_delta_rule.py test_delta_rule_chunk.py test_delta_rule_step.py test_slots.py
       test_hash_table.py test_token_table.py test_elastic_vocab.py test_bad_input.py
       test_bad_input_raw_ops.py)
[ -f tests/test_properties.py ] && TESTS+=(test_properties.py)
# run from $OUT so that `import memory_ext` finds the sanitized build, not the source folder
cd "$OUT"
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" \
PYTHONMALLOC=malloc PYTHONPATH="$PWD/site" MEMORY_EXT_PROPERTY_CASE_TIMEOUT=30 \
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  ../.venv/bin/python -m pytest -q -p no:cacheprovider "${TESTS[@]/#/../tests/}"
echo "== asan stage: done ($((SECONDS - T0)) s)"
