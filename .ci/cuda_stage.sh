#!/usr/bin/env bash
# CI stage 2: the CUDA build a GPU user gets, built and checked on a machine without a GPU.
#   - a separate venv (.venv-cuda) with the CUDA build of torch 2.14.1 (CUDA 13.0);
#   - FORCE_CUDA=1 build for sm_80 and sm_90: every .cu file with --Werror=all-warnings and
#     ptxas --warn-on-spills (a warning or a spill fails the build), ptxas -v into the log;
#   - fails when build_info() does not say CUDA with exactly these archs, when an op of
#     memory_ext/ops/cuda_kernels.py has no CUDA kernel in the dispatcher, or ptxas reports a spill;
#   - runs the test suite against that build (CUDA cases skip: no GPU here), all but the
#     emulator tests (they build their own binaries from the sources; stage 1 runs them).
# Output: build-cuda/ (build log, ptxas table as markdown and JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-cuda
OUT=build-cuda
ARCHS="8.0;9.0"
WANT_ARCHS="80,90"
mkdir -p "$OUT"
stage() { echo "== cuda stage: $1 ($((SECONDS - T0)) s so far)"; }
T0=$SECONDS

stage "venv with the CUDA torch"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.14.1 pybind11 ninja 'cmake>=3.25.2' setuptools wheel
"$VENV/bin/python" -c "import torch, sys; v = torch.version.cuda; print('torch', torch.__version__, 'CUDA', v); sys.exit(0 if v else 'torch 2.14.1 here is a CPU build: the CUDA stage needs the CUDA build')"

stage "FORCE_CUDA=1 build for $ARCHS"
if ! FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCHS" MEMORY_EXT_PTXAS_VERBOSE=1 MAX_JOBS="${MAX_JOBS:-2}" \
    "$VENV/bin/pip" install -v --no-build-isolation ".[test]" > "$OUT/build.log" 2>&1; then
  grep -n -E "error|warning" "$OUT/build.log" | head -40 || true
  echo "cuda stage: the CUDA build failed (log: $OUT/build.log)" >&2
  exit 1
fi

stage "ptxas table (fails on a spill)"
"$VENV/bin/python" tools/ptxas_report.py "$OUT/build.log" --markdown "$OUT/ptxas.md" \
    --json "$OUT/ptxas.json" --fail-on-spill

stage "build_info and the CUDA registrations"
# run from $OUT: from the repository root, `import memory_ext` would find the source folder
(cd "$OUT" && "../$VENV/bin/python" - "$WANT_ARCHS") <<'PY'
import sys
import memory_ext
from memory_ext.ops.cuda_kernels import CUDA_KERNEL_OPS, missing_cuda_kernels
info = memory_ext.build_info()
print("build_info:", info)
if info["cuda"] is not True:
    sys.exit(f"cuda stage: build_info()['cuda'] is {info['cuda']!r}, not True")
if info["cuda_archs"] != sys.argv[1]:
    sys.exit(f"cuda stage: build_info()['cuda_archs'] is {info['cuda_archs']!r}, want {sys.argv[1]!r}")
missing = missing_cuda_kernels()
if missing:
    sys.exit(f"cuda stage: no CUDA kernel registered for {missing}")
print(f"all {len(CUDA_KERNEL_OPS)} ops of memory_ext/ops/cuda_kernels.py have a CUDA kernel")
PY

stage "test suite against the CUDA build"
# all of it but the CUDA emulator, which builds its own binaries from the sources (not from this
# build) and ran in stage 1 already
(cd "$OUT" && "../$VENV/bin/pytest" -q -p no:cacheprovider ../tests --ignore=../tests/test_cuda_emulation.py)
stage "done"
