#!/usr/bin/env bash
# CI stage 4: the distribution round trip (issue 18), from the committed tree:
#   sdist (python -m build --no-isolation, against stage 1's torch) -> wheel built from that sdist
#   -> installed into a fresh venv -> smoke test (import, one op on the CPU, memory-ext info).
# CPU-only build (MEMORY_EXT_CPU_ONLY=1): the CUDA build is stage 2's job.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$PWD/build-dist"
T0=$SECONDS
rm -rf "$OUT" && mkdir -p "$OUT/src"
git archive HEAD | tar -x -C "$OUT/src"   # the clean clone: tracked files only
.venv/bin/pip install -q build
echo "== dist stage: sdist and wheel"
(cd "$OUT/src" && MEMORY_EXT_CPU_ONLY=1 MAX_JOBS="${MAX_JOBS:-2}" \
  ../../.venv/bin/python -m build --no-isolation --outdir "$OUT/dist" > "$OUT/build.log" 2>&1) \
  || { tail -40 "$OUT/build.log"; echo "dist stage: python -m build failed" >&2; exit 1; }
ls -l "$OUT/dist"
SDIST=$(ls "$OUT"/dist/*.tar.gz) WHEEL=$(ls "$OUT"/dist/*.whl)
# the sdist carries the build inputs; the wheel the compiled core and the checkpoint
# (listings into files: `tar | grep -q` would fail under pipefail when grep stops early)
tar -tzf "$SDIST" > "$OUT/sdist.txt"
python3 -m zipfile -l "$WHEEL" > "$OUT/wheel.txt"
for f in CMakeLists.txt LICENSE python/build_config.py csrc/ops/registration.cpp csrc/cuda/mlp_memory.cu \
         docs/spec.md memory_ext/chat/data/chatbot.pt; do
  grep -q "/$f\$" "$OUT/sdist.txt" || { echo "dist stage: the sdist lacks $f" >&2; exit 1; }
done
if grep -q "/tests/\|/build/\|\.so\$" "$OUT/sdist.txt"; then
  echo "dist stage: the sdist carries tests, a build tree or a compiled file" >&2; exit 1
fi
for f in "memory_ext/_C\..*\.so" memory_ext/_built_with.py memory_ext/chat/data/chatbot.pt; do
  grep -q "$f" "$OUT/wheel.txt" || { echo "dist stage: the wheel lacks $f" >&2; exit 1; }
done
echo "== dist stage: built ($((SECONDS - T0)) s); install into a fresh venv"
python3 -m venv "$OUT/venv"
TORCH=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
"$OUT/venv/bin/pip" install -q "torch==$TORCH" numpy tqdm
"$OUT/venv/bin/pip" install -q --no-deps "$WHEEL"
cd "$OUT"   # not the repository: import the installed wheel
"$OUT/venv/bin/python" - <<'PY'
import torch, memory_ext
W = [torch.randn(2, 8, 4), torch.randn(2, 4, 8)]
keys = torch.randn(2, 3, 4)
r = memory_ext.mlp_memory_read(W, keys)
torch.testing.assert_close(r, memory_ext.reference.mlp_read(W, keys, "tanh"))
print("smoke: mlp_memory_read agrees with the reference;", memory_ext.__file__)
PY
"$OUT/venv/bin/memory-ext" info
echo "== dist stage: done ($((SECONDS - T0)) s)"
