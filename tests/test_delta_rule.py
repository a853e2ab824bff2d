"""memory_ext.delta_rule (spec section 2) against memory_ext.reference.delta_rule."""
import functools

import pytest
import torch

import memory_ext
from memory_ext import reference as ref

SHAPES = [  # (B, T, H, K, V)
    pytest.param(2, 37, 3, 20, 24, id="K20-V24-T37"),
    pytest.param(1, 64, 2, 16, 16, id="K16-T64"),
    pytest.param(3, 9, 1, 33, 17, id="K33-V17"),
]


def _inputs(B, T, H, K, V, dtype=torch.float64, seed=0, l2=True):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=g, dtype=torch.float64)
    k = torch.randn(B, T, H, K, generator=g, dtype=torch.float64)
    if not l2:  # keep the recurrence stable without normalisation: ||k||^2 beta < 2
        k = k / K ** 0.5
    v = torch.randn(B, T, H, V, generator=g, dtype=torch.float64)
    beta = torch.rand(B, T, H, generator=g, dtype=torch.float64)
    s0 = torch.randn(B, H, K, V, generator=g, dtype=torch.float64) * 0.1
    return [t.to(dtype) for t in (q, k, v, beta)] + [s0]


MODES = ["recurrent", "chunk"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("l2", [False, True], ids=["raw", "l2norm"])
@pytest.mark.parametrize("B, T, H, K, V", SHAPES)
def test_matches_reference_float64(B, T, H, K, V, l2, mode):
    q, k, v, beta, s0 = _inputs(B, T, H, K, V, l2=l2)
    o, s = memory_ext.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                                 use_qk_l2norm=l2, scale=0.7, mode=mode)
    o_r, s_r = ref.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                              use_qk_l2norm=l2, scale=0.7)
    torch.testing.assert_close(o, o_r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s, s_r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_inputs_accumulate_in_float32(dtype, mode):
    q, k, v, beta, s0 = _inputs(2, 48, 2, 32, 32, dtype=dtype)
    o, s = memory_ext.delta_rule(q, k, v, beta, output_final_state=True, use_qk_l2norm=True,
                                 mode=mode)
    assert o.dtype == dtype and s.dtype == torch.float32
    o_r, s_r = ref.delta_rule(*(t.double() for t in (q, k, v, beta)), output_final_state=True,
                              use_qk_l2norm=True)
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # the inputs' own rounding for 16-bit
    assert ((o.double() - o_r).norm() / o_r.norm()).item() < tol
    assert ((s.double() - s_r).norm() / s_r.norm()).item() < 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_all_inputs_and_final_state(mode):
    q, k, v, beta, s0 = _inputs(1, 5, 2, 4, 3)
    args = [t.clone().requires_grad_() for t in (q, k, v, beta, s0)]

    def f(q, k, v, beta, s0):
        o, s = memory_ext.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                                     use_qk_l2norm=True, mode=mode, chunk_size=2)
        return o, s

    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_reference(mode):
    q, k, v, beta, s0 = _inputs(2, 20, 2, 8, 6)
    outs = []
    for fn in (functools.partial(memory_ext.delta_rule, mode=mode, chunk_size=8), ref.delta_rule):
        args = [t.clone().requires_grad_() for t in (q, k, v, beta, s0)]
        o, s = fn(*args[:4], initial_state=args[4], output_final_state=True, use_qk_l2norm=True)
        loss = (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() + s.square().sum()
        outs.append(torch.autograd.grad(loss, args))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("mode", MODES)
def test_cu_seqlens_equals_separate_calls(mode):
    lens = [5, 11, 1, 7]
    T = sum(lens)
    q, k, v, beta, _ = _inputs(1, T, 2, 8, 6)
    s0 = torch.randn(len(lens), 2, 8, 6, dtype=torch.float64) * 0.1
    cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), dtype=torch.int64)
    o, s = memory_ext.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                                 use_qk_l2norm=True, cu_seqlens=cu, mode=mode)
    start = 0
    for i, n in enumerate(lens):
        sl = slice(start, start + n)
        o_i, s_i = memory_ext.delta_rule(q[:, sl], k[:, sl], v[:, sl], beta[:, sl],
                                         initial_state=s0[i:i + 1], output_final_state=True,
                                         use_qk_l2norm=True, mode=mode)
        torch.testing.assert_close(o[:, sl], o_i, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(s[i:i + 1], s_i, rtol=1e-12, atol=1e-12)
        start += n
    o_r, s_r = ref.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                              use_qk_l2norm=True, cu_seqlens=cu)
    torch.testing.assert_close(o, o_r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s, s_r, rtol=1e-10, atol=1e-12)


def test_equals_mlp_memory_grad_rule_at_one_layer():
    """Spec 1.4: one head of the delta rule is the L = 1 memory with rule "grad",
    beta_mlp = beta n_1 / 2, W = S^T, read key scale * q."""
    B, T, K, V = 2, 12, 6, 5
    q, k, v, beta, s0 = _inputs(B, T, 1, K, V, l2=False)
    o, s = memory_ext.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                                 scale=0.5)
    reads, (W,), _ = memory_ext.mlp_memory_scan(
        [s0[:, 0].transpose(1, 2)], k, v, beta[..., 0] * V / 2, q * 0.5, rule="grad",
        activation="identity")
    torch.testing.assert_close(o, reads, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s[:, 0], W.transpose(1, 2), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_torch_compile_fullgraph(mode):
    q, k, v, beta, s0 = _inputs(2, 10, 2, 8, 8, dtype=torch.float32)
    args = [t.clone().requires_grad_() for t in (q, k, v, beta)]

    def f(q, k, v, beta):
        o, s = memory_ext.delta_rule(q, k, v, beta, output_final_state=True, use_qk_l2norm=True,
                                     mode=mode, chunk_size=4)
        return o.square().sum() + s.sum()

    torch._dynamo.reset()
    eager = torch.autograd.grad(f(*args), args)
    compiled = torch.autograd.grad(torch.compile(f, fullgraph=True)(*args), args)
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (dict(k=torch.randn(2, 5, 3, 7)), r"k must be \[B, T, H, K\]"),
    (dict(v=torch.randn(2, 4, 3, 6)), r"v must be \[B, T, H, V\]"),
    (dict(beta=torch.rand(2, 5)), r"beta must be \[B, T, H\]"),
    (dict(initial_state=torch.randn(2, 3, 8, 8)), r"initial_state must be \[N, H, K, V\]"),
    (dict(mode="chunk", chunk_size=0), r"chunk_size must be an int >= 1 or None"),
    (dict(mode="parallel"), r"mode must be 'recurrent', 'chunk' or None"),
])
def test_bad_inputs(bad, match):
    args = dict(q=torch.randn(2, 5, 3, 8), k=torch.randn(2, 5, 3, 8), v=torch.randn(2, 5, 3, 6),
                beta=torch.rand(2, 5, 3))
    args.update(bad)
    kw = {n: args.pop(n) for n in ("initial_state", "mode", "chunk_size") if n in args}
    with pytest.raises(ValueError, match=match):
        memory_ext.delta_rule(args["q"], args["k"], args["v"], args["beta"], **kw)


def test_bad_cu_seqlens():
    q = torch.randn(1, 6, 2, 4)
    with pytest.raises(ValueError, match="cu_seqlens must rise from 0 to T = 6"):
        memory_ext.delta_rule(q, q, q, torch.rand(1, 6, 2), cu_seqlens=torch.tensor([0, 4, 3, 6]))


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 64])
@pytest.mark.parametrize("B, T, H, K, V", SHAPES)
def test_chunk_form_matches_reference(B, T, H, K, V, chunk_size):
    q, k, v, beta, s0 = _inputs(B, T, H, K, V)
    o, s = memory_ext.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                                 use_qk_l2norm=True, mode="chunk", chunk_size=chunk_size)
    o_r, s_r = ref.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                              use_qk_l2norm=True)
    torch.testing.assert_close(o, o_r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s, s_r, rtol=1e-10, atol=1e-12)


def test_chunk_equals_recurrent_with_gradients_and_varlen():
    lens = [9, 20, 3]
    q, k, v, beta, _ = _inputs(1, sum(lens), 2, 8, 6)
    s0 = torch.randn(len(lens), 2, 8, 6, dtype=torch.float64) * 0.1
    cu = torch.tensor([0, 9, 29, 32])
    grads = []
    for mode in ("recurrent", "chunk"):
        args = [t.clone().requires_grad_() for t in (q, k, v, beta, s0)]
        o, s = memory_ext.delta_rule(*args[:4], initial_state=args[4], output_final_state=True,
                                     use_qk_l2norm=True, cu_seqlens=cu, mode=mode, chunk_size=8)
        loss = (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() + s.square().sum()
        grads.append([o, s, *torch.autograd.grad(loss, args)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
