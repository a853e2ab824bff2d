"""The fused chunk kernels (torch.ops.memory_ext.delta_rule_chunk / _delta_rule_chunk_bwd)
against the chunk form written in torch ops and against memory_ext.reference.delta_rule."""
import sys

import pytest
import torch

import memory_ext
from memory_ext import reference as ref
from memory_ext.ops.delta_rule.chunk import delta_rule_chunk_fused, delta_rule_chunk_torch


def _inputs(N, T, H, K, V, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(N, T, H, K, generator=g, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(N, T, H, K, generator=g, dtype=torch.float64), dim=-1)
    v = torch.randn(N, T, H, V, generator=g, dtype=torch.float64)
    beta = torch.rand(N, T, H, generator=g, dtype=torch.float64)
    s0 = torch.randn(N, H, K, V, generator=g, dtype=torch.float64) * 0.3
    return [t.to(dtype) for t in (q, k, v, beta, s0)]


def _run(fn, inputs, chunk, weights):
    """Outputs and the gradients of a fixed weighted sum of them, for every input."""
    args = [t.clone().requires_grad_() for t in inputs]
    o, s = fn(*args[:4], 0.6, args[4], chunk)
    loss = (o * weights[0]).sum() + (s * weights[1]).sum()
    return [o, s, *torch.autograd.grad(loss, args)]


@pytest.mark.parametrize("N, T, H, K, V, chunk", [
    (2, 37, 3, 20, 24, 8),   # ragged last chunk, K != V
    (1, 64, 2, 16, 16, 16),  # T a multiple of the chunk
    (3, 5, 1, 33, 17, 16),   # T < chunk: one short chunk
    (1, 13, 2, 7, 9, 1),     # chunk 1: the recurrence itself
])
def test_fused_equals_torch_ops_form_with_gradients(N, T, H, K, V, chunk):
    inputs = _inputs(N, T, H, K, V)
    g = torch.Generator().manual_seed(1)
    weights = (torch.randn(N, T, H, V, generator=g, dtype=torch.float64),
               torch.randn(N, H, K, V, generator=g, dtype=torch.float64))
    fused = _run(delta_rule_chunk_fused, inputs, chunk, weights)
    plain = _run(delta_rule_chunk_torch, inputs, chunk, weights)
    for name, a, b in zip(["o", "S", "dq", "dk", "dv", "dbeta", "dS0"], fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11, msg=name)


def test_float32_close_to_float64_reference_over_long_sequence():
    q, k, v, beta, s0 = _inputs(2, 300, 2, 32, 32, dtype=torch.float32)
    o, s = delta_rule_chunk_fused(q, k, v, beta, 0.5, s0, 16)
    o_r, s_r = ref.delta_rule(*(t.double() for t in (q, k, v, beta)), scale=0.5,
                              initial_state=s0.double(), output_final_state=True)
    assert ((o.double() - o_r).norm() / o_r.norm()).item() < 1e-5
    assert ((s.double() - s_r).norm() / s_r.norm()).item() < 1e-5


def test_gradcheck_op_with_final_state_gradient():
    q, k, v, beta, s0 = _inputs(1, 7, 2, 3, 4)
    fold = lambda x: x.permute(0, 2, 1, 3).reshape(2, 7, -1).contiguous()  # noqa: E731
    args = [fold(q), fold(k), fold(v), beta[0].t().contiguous(), s0[0]]
    args = [a.clone().requires_grad_() for a in args]

    def f(q, k, v, b, s0):
        o, s, _ = torch.ops.memory_ext.delta_rule_chunk(q, k, v, b, s0, 0.8, 3, True)
        return o, s

    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("save_states", [True, False])
@pytest.mark.parametrize("with_s0", [True, False])
def test_opcheck(save_states, with_s0):
    q, k, v, beta, s0 = _inputs(2, 9, 1, 4, 5)
    fold = lambda x: x[:, :, 0].contiguous()  # noqa: E731
    args = (fold(q), fold(k), fold(v), beta[:, :, 0].contiguous(), s0[:, 0] if with_s0 else None,
            0.5, 4, save_states)
    torch.library.opcheck(torch.ops.memory_ext.delta_rule_chunk.default, args)
    _, _, states = torch.ops.memory_ext.delta_rule_chunk(*args[:7], True)
    bwd = (*args[:4], states, torch.randn(2, 9, 5, dtype=torch.float64),
           torch.randn(2, 4, 5, dtype=torch.float64), 0.5, 4)
    torch.library.opcheck(torch.ops.memory_ext._delta_rule_chunk_bwd.default, bwd)


def test_empty_sequence_and_no_heads():
    q, k, v, beta, s0 = _inputs(2, 0, 3, 4, 5)
    o, s = delta_rule_chunk_fused(q, k, v, beta, 0.5, s0, 16)
    assert o.shape == (2, 0, 3, 5)
    torch.testing.assert_close(s, s0)
    o, s, st = torch.ops.memory_ext.delta_rule_chunk(
        torch.zeros(0, 4, 3), torch.zeros(0, 4, 3), torch.zeros(0, 4, 2), torch.zeros(0, 4),
        None, 1.0, 2, True)
    assert o.shape == (0, 4, 2) and s.shape == (0, 3, 2) and st.shape == (0, 2, 3, 2)


def test_backward_without_saved_states_is_an_error():
    q, k, v, beta, _ = (t[:, :, 0].contiguous() for t in _inputs(1, 6, 1, 4, 4))
    q.requires_grad_()
    o, _, _ = torch.ops.memory_ext.delta_rule_chunk(q, k, v, beta, None, 1.0, 4, False)
    with pytest.raises(RuntimeError, match="save_states=False"):
        o.sum().backward()


def test_states_saved_only_when_a_backward_can_follow(monkeypatch):
    seen = []
    real = torch.ops.memory_ext.delta_rule_chunk
    monkeypatch.setattr(torch.ops.memory_ext, "delta_rule_chunk",
                        lambda *a: seen.append(a[-1]) or real(*a))
    q, k, v, beta, _ = _inputs(1, 40, 2, 4, 4)
    delta_rule_chunk_fused(q, k, v, beta, 1.0, None, 16)
    q.requires_grad_()
    with torch.no_grad():
        delta_rule_chunk_fused(q, k, v, beta, 1.0, None, 16)
    delta_rule_chunk_fused(q, k, v, beta, 1.0, None, 16)
    assert seen == [False, False, True]


@pytest.mark.parametrize("bad, match", [
    (dict(k=torch.randn(2, 6, 5)), r"k must be \[BH, T, K\] = \[2, 6, 4\]"),
    (dict(v=torch.randn(2, 5, 3)), r"v must be \[BH, T, V\] = \[2, 6, 3\]"),
    (dict(beta=torch.rand(2, 5)), r"beta must be \[BH, T\] = \[2, 6\]"),
    (dict(s0=torch.randn(2, 4, 4)), r"initial_state must be \[BH, K, V\] = \[2, 4, 3\]"),
    (dict(chunk=0), r"chunk_size must be >= 1, got 0"),
    (dict(beta=torch.rand(2, 6, dtype=torch.float64)), r"beta must have dtype Float like q, got Double"),
    (dict(q=torch.randn(2, 6, 4).half(), k=torch.randn(2, 6, 4).half()), r"q must be float32"),
])
def test_op_bad_inputs(bad, match):
    a = dict(q=torch.randn(2, 6, 4), k=torch.randn(2, 6, 4), v=torch.randn(2, 6, 3),
             beta=torch.rand(2, 6), s0=None, chunk=4)
    a.update(bad)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.memory_ext.delta_rule_chunk(a["q"], a["k"], a["v"], a["beta"], a["s0"], 1.0,
                                              a["chunk"], True)


def test_default_mode_on_cpu_is_the_fused_chunk_form(monkeypatch):
    dr = sys.modules["memory_ext.ops.delta_rule.front"]  # the module of the delta_rule front
    calls = []
    real = dr.delta_rule_chunk_fused
    monkeypatch.setattr(dr, "delta_rule_chunk_fused", lambda *a: calls.append(a[-1]) or real(*a))
    q, k, v, beta, _ = _inputs(1, 20, 2, 8, 8, dtype=torch.float32)
    memory_ext.delta_rule(q, k, v, beta)
    assert calls == [16]  # the default chunk size on the CPU
    memory_ext.delta_rule(q, k, v, beta, mode="recurrent")
    assert calls == [16]
