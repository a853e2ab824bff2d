"""What a scan keeps for its backward: the weights every C steps, never every W_t (spec 1.8)."""
import math

import pytest
import torch

import memory_ext


def _saved_for_backward(T, C, B=2, H=2, d=8, L=3):
    """Tensors the autograd graph of one scan saves (identities of the inputs excluded)."""
    g = torch.Generator().manual_seed(0)
    W = [(torch.randn(B, d, d, generator=g) * 0.3).requires_grad_() for _ in range(L)]
    kw = torch.randn(B, T, H, d, generator=g, requires_grad=True)
    kr = torch.randn(B, T, H, d, generator=g)
    z = [torch.randn(B, T, H, d, generator=g) for _ in range(L)]
    beta = torch.rand(B, T, generator=g)
    inputs = {id(t) for t in (*W, kw, kr, *z, beta)}
    saved = []

    def pack(t):
        if id(t) not in inputs:
            saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        reads, final, _ = memory_ext.mlp_memory_scan(W, kw, z, beta, kr, checkpoint_every=C)
    reads.sum().backward()  # the graph is usable
    assert W[0].grad is not None and kw.grad is not None
    return saved, (B, d, L)


@pytest.mark.parametrize("T, C", [(64, 16), (128, 16), (50, 7), (8, 32)])
def test_scan_saves_only_checkpoints(T, C):
    saved, (B, d, L) = _saved_for_backward(T, C)
    nc = math.ceil(T / C)
    assert sorted(tuple(t.shape) for t in saved) == [(B, nc, d, d)] * L


def test_saved_memory_grows_with_t_over_c():
    small, _ = _saved_for_backward(64, 16)
    large, _ = _saved_for_backward(128, 16)
    bytes_ = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    assert bytes_(large) == 2 * bytes_(small)
