"""The C++ Autograd kernels: no graph when none is needed, a full one when any input needs it."""
import pytest
import torch

import memory_ext


def _inputs(requires):
    g = torch.Generator().manual_seed(0)
    B, T, H, n = 2, 3, 2, 5
    W = [torch.randn(B, n, n, generator=g, dtype=torch.float64) * 0.4 for _ in range(2)]
    kw = torch.randn(B, T, H, n, generator=g, dtype=torch.float64)
    kr = torch.randn(B, T, H, n, generator=g, dtype=torch.float64)
    v = torch.randn(B, T, H, n, generator=g, dtype=torch.float64)
    beta = torch.rand(B, T, generator=g, dtype=torch.float64) * 0.3
    named = {"W0": W[0], "kw": kw, "kr": kr, "v": v, "beta": beta}
    for name in requires:
        named[name].requires_grad_()
    return W, kw, kr, v, beta, named


@pytest.mark.parametrize("op", ["read", "write", "step", "scan"])
def test_no_grad_mode_builds_no_graph(op):
    W, kw, kr, v, beta, _ = _inputs(["W0", "kw", "beta"])
    with torch.no_grad():
        out = _call(op, W, kw, kr, v, beta)
    assert all(not t.requires_grad for t in out)


@pytest.mark.parametrize("only", ["W0", "kw", "kr", "v", "beta"])
def test_one_input_requiring_grad_gets_its_gradient(only):
    """Gradient flows when exactly one input requires it, and matches the reference."""
    from memory_ext import reference as ref
    W, kw, kr, v, beta, named = _inputs([only])
    reads, _, recon = memory_ext.mlp_memory_scan(W, kw, v, beta, kr, rule="grad")
    (g,) = torch.autograd.grad(reads.sum() + recon.sum(), named[only])
    reads_r, _, recon_r = ref.mlp_scan(W, kw, v, beta, kr, rule="grad")
    (g_r,) = torch.autograd.grad(reads_r.sum() + recon_r.sum(), named[only])
    torch.testing.assert_close(g, g_r, rtol=1e-10, atol=1e-12)


def _call(op, W, kw, kr, v, beta):
    if op == "read":
        return [memory_ext.mlp_memory_read(W, kr[:, 0])]
    if op == "write":
        return memory_ext.mlp_memory_write(W, kw[:, 0], v[:, 0], beta[:, 0], rule="grad")
    if op == "step":
        w, r, rc = memory_ext.mlp_memory_step(W, kw[:, 0], v[:, 0], beta[:, 0], kr[:, 0], rule="grad")
        return [*w, r, rc]
    r, w, rc = memory_ext.mlp_memory_scan(W, kw, v, beta, kr, rule="grad")
    return [r, *w, rc]
