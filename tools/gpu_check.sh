#!/usr/bin/env bash
# The one command for the day a GPU is lent (an NVIDIA GPU, torch with CUDA, nvcc, no network):
#
#     tools/gpu_check.sh REPORT_DIR
#
# In at most ~8 minutes: builds memory_ext with CUDA in place (FORCE_CUDA=1, sm_90 unless
# TORCH_CUDA_ARCH_LIST says otherwise, ptxas -v), checks the ptxas table for spills, runs the
# CUDA test cases (pytest -m cuda), runs every kernel on small inputs under compute-sanitizer
# (memcheck, racecheck, synccheck, initcheck; tools/gpu_kernel_smoke.py), and runs
# `memory-ext bench --device cuda` (with flash-linear-attention's columns when it imports).
# Writes REPORT_DIR/report.json (tools/gpu_report.py) and one log per step beside it.
# Exit: 0 all steps passed, 1 a step failed, 2 bad arguments, 3 no GPU here.
# PYTHON (default python3) is the interpreter whose torch is used.
set -uo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
if [ $# -ne 1 ]; then
  echo "gpu_check: expected one argument, the report folder (tools/gpu_check.sh REPORT_DIR)" >&2
  exit 2
fi
case "$1" in
  -h|--help) usage; exit 0 ;;
  -*) echo "gpu_check: unknown option $1 (tools/gpu_check.sh REPORT_DIR)" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"
if ! mkdir -p "$OUT" 2>/dev/null || [ ! -w "$OUT" ]; then
  echo "gpu_check: cannot write the report folder $OUT" >&2
  exit 2
fi
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-python3}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-470}"
T0=$SECONDS
: > "$OUT/steps.tsv"

report() {  # report STATUS MESSAGE
  "$PY" "$ROOT/tools/gpu_report.py" "$OUT" --status "$1" --message "$2" --seconds $((SECONDS - T0))
}

# --- a GPU, or a clear stop ---------------------------------------------------------------
why=""
if ! command -v nvidia-smi > /dev/null 2>&1; then
  why="nvidia-smi not found: no NVIDIA driver on this machine"
elif ! nvidia-smi -L > "$OUT/nvidia-smi.log" 2>&1; then
  why="nvidia-smi found no NVIDIA GPU ($(head -n1 "$OUT/nvidia-smi.log"))"
elif ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    > /dev/null 2>&1; then
  why="$PY's torch sees no CUDA device (a CPU build of torch, or no driver)"
fi
if [ -n "$why" ]; then
  echo "gpu_check: no GPU: $why; nothing was run" >&2
  report no_gpu "$why" > /dev/null
  exit 3
fi

# --- the steps -----------------------------------------------------------------------------
step() {  # step NAME TIMEOUT_S COMMAND...: runs with the time left, logs, records rc and time
  local name="$1" limit="$2"; shift 2
  local left=$((BUDGET_S - (SECONDS - T0)))
  if [ "$left" -lt 10 ]; then
    printf '%s\t%s\t%s\n' "$name" "skipped" 0 >> "$OUT/steps.tsv"
    echo "gpu_check: $name skipped: out of time"
    return
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  local t=$SECONDS
  echo "gpu_check: $name (limit ${limit} s)"
  (cd "$ROOT" && timeout "$limit" "$@") > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" $((SECONDS - t)) >> "$OUT/steps.tsv"
  echo "gpu_check: $name rc=$rc in $((SECONDS - t)) s"
}

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
step build 240 env FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
  MEMORY_EXT_PTXAS_VERBOSE=1 "$PY" setup.py build_ext --inplace
step ptxas 20 "$PY" tools/ptxas_report.py "$OUT/build.log" --json "$OUT/ptxas.json" \
  --markdown "$OUT/ptxas.md" --fail-on-spill
step registrations 30 "$PY" -c "import sys, memory_ext; from memory_ext.ops.cuda_kernels import missing_cuda_kernels as m; i = memory_ext.build_info(); print(i); sys.exit(0 if i['cuda'] and not m() else f'cuda={i[\"cuda\"]} missing={m()}')"
step tests 120 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests
for tool in memcheck racecheck synccheck initcheck; do
  step "$tool" 60 compute-sanitizer --tool "$tool" --error-exitcode 9 "$PY" tools/gpu_kernel_smoke.py
done
step bench 150 "$PY" -m memory_ext.cli bench --device cuda --json "$OUT/bench.json"

failed=$(awk -F'\t' '$2 != "0" {printf "%s%s", sep, $1; sep=", "}' "$OUT/steps.tsv")
if [ -z "$failed" ]; then
  report ok "every step passed"
  exit 0
fi
report failed "steps not passed: $failed"
exit 1
