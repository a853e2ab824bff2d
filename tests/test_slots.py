"""Slot memory ops (spec section 3) against memory_ext.reference."""
import pytest
import torch

import memory_ext
from memory_ext import reference as ref

SHAPES = [  # (B, N, d, K)
    pytest.param(3, 1, 4, 1, id="N1"),
    pytest.param(4, 37, 20, 3, id="N37-d20-K3"),
    pytest.param(2, 50, 20, 2, id="N50-d20-K2"),
]


def _mem(B, N, d, K, per_hop, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (K, B, N, d) if per_hop else (B, N, d)
    q = torch.randn(B, d, generator=g, dtype=torch.float64)
    M = torch.randn(*shape, generator=g, dtype=torch.float64) / d ** 0.5
    C = torch.randn(*shape, generator=g, dtype=torch.float64)
    count = torch.randint(0, N + 1, (B,), generator=g)
    count[0] = N  # full, and (when B > 1) an empty row
    if B > 1:
        count[1] = 0
    return [t.to(dtype) for t in (q, M, C)] + [count]


@pytest.mark.parametrize("per_hop", [False, True], ids=["shared", "per-hop"])
@pytest.mark.parametrize("with_R", [False, True], ids=["noR", "R"])
@pytest.mark.parametrize("B, N, d, K", SHAPES)
def test_soft_read_matches_reference(B, N, d, K, per_hop, with_R):
    q, M, C, count = _mem(B, N, d, K, per_hop)
    R = torch.randn(d, d, dtype=torch.float64) / d ** 0.5 if with_R else None
    u, a = memory_ext.slot_read(q, M, C, count, K, R=R)
    u_r, a_r = ref.slot_read(q, M, C, count, K, R)
    torch.testing.assert_close(u, u_r, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a, a_r, rtol=1e-12, atol=1e-12)
    if B > 1:  # the empty row returns u^0 (or R^K u^0) and never NaN
        assert torch.isfinite(u).all() and a[1].abs().sum() == 0


def test_soft_read_float32_loose():
    q, M, C, count = _mem(8, 50, 20, 3, True, dtype=torch.float32)
    u, a = memory_ext.slot_read(q, M, C, count, 3)
    u_r, a_r = ref.slot_read(q.double(), M.double(), C.double(), count, 3)
    assert ((u.double() - u_r).norm() / u_r.norm()) < 1e-5
    assert ((a.double() - a_r).abs().max()) < 1e-5


@pytest.mark.parametrize("per_hop", [False, True], ids=["shared", "per-hop"])
def test_soft_read_gradcheck_including_attention_and_R(per_hop):
    q, M, C, count = _mem(3, 5, 3, 2, per_hop)
    R = torch.randn(3, 3, dtype=torch.float64)
    args = [t.clone().requires_grad_() for t in (q, M, C, R)]

    def f(q, M, C, R):
        return memory_ext.slot_read(q, M, C, count, 2, R=R)  # u and attention both get grads

    assert torch.autograd.gradcheck(f, args)


def test_soft_read_gradients_match_reference():
    q, M, C, count = _mem(4, 37, 20, 3, True)
    grads = []
    for fn in (lambda *a: memory_ext.slot_read(*a, count, 3), lambda *a: ref.slot_read(*a, count, 3)):
        args = [t.clone().requires_grad_() for t in (q, M, C)]
        u, a = fn(*args)
        loss = (u * torch.linspace(-1, 1, u.numel(), dtype=u.dtype).view_as(u)).sum() + a[:, -1, 0].sum()
        grads.append(torch.autograd.grad(loss, args))
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("B, N, d, K", SHAPES)
def test_hard_read_matches_reference_with_gradients(B, N, d, K):
    q, M, Q, count = _mem(B, N, d, K, False)
    outs = []
    for fn in (memory_ext.slot_read_hard, ref.slot_read_hard):
        args = [t.clone().requires_grad_() for t in (q, M, Q)]
        idx, s = fn(*args, count, K)
        w = torch.linspace(-1, 1, s.numel(), dtype=s.dtype).view_as(s)
        loss = (s.masked_fill(torch.isinf(s), 0) * w).sum()
        outs.append([idx, s, *torch.autograd.grad(loss, args, allow_unused=True)])
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-12, atol=1e-12)
    for x, y in zip(outs[0][2:], outs[1][2:]):
        torch.testing.assert_close(x, torch.zeros_like(x) if y is None else y, rtol=1e-10, atol=1e-12)


def test_hard_read_ties_go_to_the_lowest_index_and_empty_memory():
    M = torch.ones(2, 4, 3)
    idx, s = memory_ext.slot_read_hard(torch.ones(2, 3), M, torch.zeros(2, 4, 3), torch.tensor([4, 0]), 2)
    assert idx.tolist() == [[0, 0], [-1, -1]] and torch.isinf(s[1]).all()


def test_hard_read_gradcheck():
    q, M, Q, count = _mem(2, 4, 3, 2, False)
    count = torch.tensor([4, 3])
    args = [t.clone().requires_grad_() for t in (q, M, Q)]

    def f(q, M, Q):
        s = memory_ext.slot_read_hard(q, M, Q, count, 2)[1]
        return s.masked_fill(torch.isinf(s), 0)

    assert torch.autograd.gradcheck(f, args)


def test_write_append_and_ring_wraparound_order():
    B, N, d = 2, 3, 2
    M, C = torch.zeros(B, N, d), torch.zeros(B, N, d)
    count = torch.zeros(B, dtype=torch.int64)
    for t in range(3):
        memory_ext.slot_write_(M, C, count, torch.full((B, d), float(t)), torch.full((B, d), -float(t)))
    assert M[0, :, 0].tolist() == [0, 1, 2] and count.tolist() == [3, 3]
    with pytest.raises(RuntimeError, match=r"memory full \(3 slots\) in batch rows \[0, 1\]"):
        memory_ext.slot_write_(M, C, count, torch.ones(B, d), torch.ones(B, d))
    assert M[0, :, 0].tolist() == [0, 1, 2] and count.tolist() == [3, 3]  # nothing written
    for t in (3, 4):
        memory_ext.slot_write_(M, C, count, torch.full((B, d), float(t)), torch.full((B, d), 0.0), "ring")
    assert M[0, :, 0].tolist() == [3, 4, 2] and count.tolist() == [5, 5]  # the oldest went first
    Mr, Cr, nr = ref.slot_write(torch.zeros(B, N, d), torch.zeros(B, N, d), torch.tensor([1, 4]),
                                torch.ones(B, d), torch.ones(B, d), "ring")
    assert Mr[0, 1].tolist() == [1, 1] and Mr[1, 1].tolist() == [1, 1] and nr.tolist() == [2, 5]


def test_write_touches_only_its_rows():
    M, C = torch.zeros(3, 4, 2), torch.zeros(3, 4, 2)
    count = torch.tensor([0, 2, 1])
    memory_ext.slot_write_(M, C, count, torch.ones(3, 2), 2 * torch.ones(3, 2))
    assert M.sum(-1).tolist() == [[2, 0, 0, 0], [0, 0, 2, 0], [0, 2, 0, 0]]
    assert C.sum().item() == 12 and count.tolist() == [1, 3, 2]


def test_opcheck_and_compile():
    q, M, C, count = _mem(3, 6, 4, 2, True, dtype=torch.float32)
    torch.library.opcheck(torch.ops.memory_ext.slot_read.default, (q, M, C, count, 2, None))
    torch.library.opcheck(torch.ops.memory_ext.slot_read.default, (q, M[0], C[0], count, 2, torch.eye(4)))
    torch.library.opcheck(torch.ops.memory_ext.slot_read_hard.default, (q, M[0], C[0], count, 2))
    torch.library.opcheck(torch.ops.memory_ext.slot_write_.default,
                          (M[0].clone(), C[0].clone(), torch.zeros(3, dtype=torch.long), q, q, "append"))
    args = [t.clone().requires_grad_() for t in (q, M, C)]

    def f(q, M, C):
        u, a = memory_ext.slot_read(q, M, C, count, 2)
        return u.square().sum() + a.sum()

    torch._dynamo.reset()
    eager = torch.autograd.grad(f(*args), args)
    compiled = torch.autograd.grad(torch.compile(f, fullgraph=True)(*args), args)
    for x, y in zip(eager, compiled):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (dict(q=torch.randn(3)), r"query must be \[B, d\]"),
    (dict(M=torch.randn(2, 5, 4)), r"M must be \[B, N, d\] = \[3, N, 4\] or \[K, B, N, d\], got \[2, 5, 4\]"),
    (dict(C=torch.randn(3, 5, 3)), r"C must have M's shape"),
    (dict(count=torch.tensor([1, 2])), r"count must be int64 \[B\] = \[3\]"),
    (dict(count=torch.tensor([1, -2, 0])), r"count must be >= 0"),
    (dict(R=torch.randn(3, 3)), r"R must be \[d, d\] = \[4, 4\]"),
    (dict(hops=0), r"hops must be an int >= 1"),
])
def test_bad_inputs(bad, match):
    a = dict(q=torch.randn(3, 4), M=torch.randn(3, 5, 4), C=torch.randn(3, 5, 4),
             count=torch.tensor([1, 2, 0]), R=None, hops=2)
    a.update(bad)
    with pytest.raises((RuntimeError, ValueError), match=match):
        memory_ext.slot_read(a["q"], a["M"], a["C"], a["count"], a["hops"], R=a["R"])


def test_write_bad_inputs_change_nothing():
    M, C, count = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long)
    with pytest.raises(RuntimeError, match=r"m must be \[B, d\] = \[2, 4\]"):
        memory_ext.slot_write_(M, C, count, torch.ones(2, 5), torch.ones(2, 5))
    with pytest.raises(RuntimeError, match="policy must be 'append' or 'ring'"):
        memory_ext.slot_write_(M, C, count, torch.ones(2, 4), torch.ones(2, 4), "lifo")
    assert M.abs().sum() == 0 and count.tolist() == [0, 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    q, M, C, count = _mem(4, 37, 20, 3, True, dtype=torch.float32)
    args = [t.clone().requires_grad_() for t in (q, M, C)]
    u, a = memory_ext.slot_read(*args, count, 3)
    g_cpu = torch.autograd.grad(u.square().sum(), args)
    dargs = [t.detach().cuda().requires_grad_() for t in (q, M, C)]
    ud, ad = memory_ext.slot_read(*dargs, count.cuda(), 3)
    g_cuda = torch.autograd.grad(ud.square().sum(), dargs)
    torch.testing.assert_close(ud.cpu(), u, rtol=1e-4, atol=1e-5)
    for x, y in zip(g_cuda, g_cpu):
        torch.testing.assert_close(x.cpu(), y, rtol=1e-4, atol=1e-5)
    idx, s = memory_ext.slot_read_hard(q, M[0], C[0], count, 2)
    idx_d, s_d = memory_ext.slot_read_hard(q.cuda(), M[0].cuda(), C[0].cuda(), count.cuda(), 2)
    assert torch.equal(idx_d.cpu(), idx)
