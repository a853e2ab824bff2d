"""Both CPU kernel builds (baseline x86-64 and AVX2+FMA) agree with the reference."""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, torch, memory_ext
from memory_ext import reference as ref
g = torch.Generator().manual_seed(0)
B, T, H, n = 2, 9, 3, [16, 24, 8]
out = {"isa": memory_ext.build_info()["cpu_isa"], "err": {}}
for dt in (torch.float32, torch.float64):
    W = [(torch.randn(B, n[l + 1], n[l], generator=g) * n[l] ** -0.5).to(dt).requires_grad_() for l in range(2)]
    kw = torch.randn(B, T, H, n[0], generator=g).to(dt).requires_grad_()
    v = torch.randn(B, T, H, n[-1], generator=g).to(dt)
    beta = (torch.rand(B, T, generator=g) * 0.3).to(dt)
    for rule in ("local", "grad"):
        tg = [torch.randn(B, T, H, n[1], generator=g).to(dt), v] if rule == "local" else v
        res = []
        for f in (memory_ext.mlp_memory_scan, ref.mlp_scan):
            r, w, _ = f(W, kw, tg, beta, kw, rule=rule)
            gr = torch.autograd.grad(r.square().sum() + sum(x.sum() for x in w), [*W, kw])
            res.append([r, *gr])
        err = max(((a - b).norm() / b.norm()).item() for a, b in zip(*res))
        out["err"][f"{dt}-{rule}"] = err
    # the chunkwise delta rule kernels (K = 20: also the AVX2 dot kernel's remainder path)
    q, k = (torch.randn(2, 37, 2, 20, generator=g).to(dt).requires_grad_() for _ in range(2))
    v = torch.randn(2, 37, 2, 12, generator=g).to(dt).requires_grad_()
    b = torch.rand(2, 37, 2, generator=g).to(dt).requires_grad_()
    res = []
    for f in (memory_ext.delta_rule, ref.delta_rule):
        kw_ = {"mode": "chunk", "chunk_size": 8} if f is memory_ext.delta_rule else {}
        o, s = f(q, k, v, b, output_final_state=True, use_qk_l2norm=True, **kw_)
        res.append([o, s, *torch.autograd.grad(o.square().sum() + s.sum(), [q, k, v, b])])
    out["err"][f"{dt}-delta-chunk"] = max(((x - y).norm() / y.norm()).item() for x, y in zip(*res))
print(json.dumps(out))
"""


@pytest.mark.parametrize("isa", ["base", "default"])
def test_cpu_kernel_variant_matches_reference(isa, tmp_path):
    env = dict(os.environ)
    env.pop("MEMORY_EXT_CPU_ISA", None)
    if isa == "base":
        env["MEMORY_EXT_CPU_ISA"] = "base"
    # cwd outside the checkout: `python -c` puts the cwd first on sys.path
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if isa == "base":
        assert out["isa"] == "base"
    for name, err in out["err"].items():
        assert err <= (1e-12 if "float64" in name else 1e-5), (name, err)
