"""Runs every CUDA kernel of memory_ext once on small inputs, forward and backward, and checks
each result against the CPU kernels. Meant to run under compute-sanitizer (tools/gpu_check.sh):

    compute-sanitizer --tool memcheck --error-exitcode 9 python3 tools/gpu_kernel_smoke.py

Covers: the MLP ops (read, write, step, scan, both rules, on-chip and global-workspace sizes, the
in-place step and its backward), delta_rule_step, the slot reads (soft and hard, with backward),
the hash table (insert with duplicates, find, erase, rebuild) and gather_rows. Exits 0 when every
result matches, 1 (naming the case) when one does not, 2 without a GPU.
`--device cpu` compares the CPU with itself: the tests use it to check this script runs.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import memory_ext  # noqa: E402
from _inputs import Shape, make_inputs, run_fused  # noqa: E402

OPS = torch.ops.memory_ext
FAILED = []
DEV = "cuda"  # the device under test (--device)


def close(name, got, want, tol=1e-4):
    got = [g for g in (got if isinstance(got, (list, tuple)) else [got]) if g is not None]
    want = [w for w in (want if isinstance(want, (list, tuple)) else [want]) if w is not None]
    ok = len(got) == len(want) and all(
        g.shape == w.shape and torch.allclose(g.cpu().double(), w.cpu().double(), rtol=tol, atol=tol)
        for g, w in zip(got, want))
    print(f"{'ok  ' if ok else 'FAIL'} {name}", flush=True)
    if not ok:
        FAILED.append(name)


def grads(op, inp, device):
    """Outputs and input gradients of memory_ext.<op> on inp moved to device."""
    leaves = inp.map(lambda t: t.detach().to(device).float().clone().requires_grad_())
    out = run_fused(op, leaves)
    outs = [o for o in out.values() if o is not None and o.requires_grad]
    gs = [torch.ones_like(o) * 0.1 for o in outs]
    gr = torch.autograd.grad(outs, leaves.tensors(), gs, allow_unused=True)
    return [o.detach() for o in out.values() if o is not None] + list(gr)


def mlp_cases():
    small, wide = (12, 40, 24), (24, 200, 200, 24)  # wide: weights beyond the opt-in limit
    for widths in (small, wide, (16,)*2):
        for rule in ("local", "grad"):
            for op in ("read", "write", "step", "scan"):
                shape = Shape(B=2, H=2, Hr=3, widths=widths, T=5 if op == "scan" else 1)
                inp = make_inputs(shape, rule=rule, time=(op == "scan"), recon=(op != "read"),
                                  alpha="tensor", dtype=torch.float32)
                want = grads(op, inp, "cpu")
                close(f"mlp {op} {rule} n={widths}", grads(op, inp, DEV), want)


def inplace_case():
    shape = Shape(B=2, H=2, Hr=2, widths=(12, 40, 24))
    inp = make_inputs(shape, rule="local", recon=True, alpha="tensor", dtype=torch.float32)
    res = {}
    for dev in ("cpu", DEV):
        d = inp.map(lambda t: t.to(dev))
        W = [w.clone() for w in d.weights]
        r, rc, saved = OPS._mlp_memory_step_(W, d.write_keys, d.targets, d.beta, d.read_keys,
                                             d.alpha, d.recon_values, "local", "tanh")
        G = [torch.ones_like(w) for w in W]
        back = OPS._mlp_memory_step_bwd_(W, G, saved, d.write_keys, d.targets, d.beta,
                                         d.read_keys, d.alpha, d.recon_values, torch.ones_like(r),
                                         torch.ones_like(rc), "local", "tanh")
        res[dev] = [r, rc, *W, *G, *back]
    close("mlp in-place step and backward", res[DEV], res["cpu"])


def delta_step_case():
    res = {}
    for dev in ("cpu", DEV):
        g = torch.Generator().manual_seed(1)
        q, k, v = (torch.randn(2, 3, 24, generator=g).to(dev) for _ in range(3))
        beta = torch.rand(2, 3, generator=g).to(dev)
        S = torch.randn(2, 3, 24, 24, generator=g).to(dev) * 0.1
        o = memory_ext.delta_rule_step(q, k, v, beta, S)
        res[dev] = [o, S]
    close("delta_rule_step", res[DEV], res["cpu"])


def slot_cases():
    res = {}
    for dev in ("cpu", DEV):
        g = torch.Generator().manual_seed(2)
        B, N, d, K = 3, 7, 20, 3
        q = torch.randn(B, d, generator=g).to(dev).requires_grad_()
        M = torch.randn(K, B, N, d, generator=g).to(dev).requires_grad_()
        C = torch.randn(K, B, N, d, generator=g).to(dev).requires_grad_()
        count = torch.tensor([0, 4, 9]).to(dev)  # empty, partly full, full
        u, att = memory_ext.slot_read(q, M, C, count, hops=K)
        gs = torch.autograd.grad(u.sum() + att.square().sum(), [q, M, C])
        Q = torch.randn(B, N, d, generator=g).to(dev).requires_grad_()
        idx, scores = memory_ext.slot_read_hard(q, M[0], Q, count.clamp(min=1), hops=2)
        gh = torch.autograd.grad(scores.sum(), [q, M, Q], allow_unused=True)
        res[dev] = [u, att, *gs, idx, scores, *gh]
    close("slot_read and slot_read_hard, forward and backward", res[DEV], res["cpu"])


def vocab_cases():
    res = {}
    for dev in ("cpu", DEV):
        t = memory_ext.IntHashTable(capacity=64, device=dev)
        keys = torch.tensor([5, 9, 5, 5, 11, 9, 2 ** 40, -3] * 4, device=dev)
        ids, _ = t.lookup_or_insert(keys)
        ids2, _ = t.lookup_or_insert(torch.arange(100, 140, device=dev))  # grows: rebuild
        erased = t.erase(torch.tensor([9, 12345], device=dev))
        found = t.find(keys)
        counts = t.counts(keys)
        src = torch.tensor([3, 0, 4, 2], device=dev)
        rows = [torch.randn(5, 6, generator=torch.Generator().manual_seed(3)).to(dev),
                torch.arange(5, device=dev)]
        gathered = OPS.gather_rows(rows, src, 6)
        res[dev] = [ids, ids2, erased, found, counts, *gathered]
    # new ids are handed out in a different order on the GPU: compare what does not depend on it
    cu, cp = res[DEV], res["cpu"]
    same_groups = all(bool(((a[:, None] == a[None, :]) == (b[:, None] == b[None, :])).all())
                      for a, b in ((cu[0].cpu(), cp[0]), (cu[1].cpu(), cp[1])))
    close("hash table: equal keys share ids", [torch.tensor(same_groups)], [torch.tensor(True)])
    close("hash table: erase, counts", [cu[2], cu[4]], [cp[2], cp[4]])
    close("gather_rows", cu[5:], cp[5:])


def main(argv=None):
    global DEV
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--device", "cuda"], ["--device", "cpu"]):
        print("usage: gpu_kernel_smoke.py [--device cuda|cpu]", file=sys.stderr)
        return 2
    DEV = args[1] if args else "cuda"
    if DEV == "cuda" and not torch.cuda.is_available():
        print("gpu_kernel_smoke: no CUDA device visible to torch", file=sys.stderr)
        return 2
    if DEV == "cuda" and not memory_ext.build_info()["cuda"]:
        print("gpu_kernel_smoke: memory_ext was built without CUDA (FORCE_CUDA=1 to build it)",
              file=sys.stderr)
        return 2
    for case in (mlp_cases, inplace_case, delta_step_case, slot_cases, vocab_cases):
        case()
    if DEV == "cuda":
        torch.cuda.synchronize()
    print(f"gpu_kernel_smoke: {len(FAILED)} failed" + (f": {FAILED}" if FAILED else ""))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
