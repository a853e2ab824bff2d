"""memory_ext.delta_rule_step: one in-place decoding step of the delta rule (spec 2)."""
import pytest
import torch

import memory_ext
from memory_ext import reference as ref


def _inputs(B, H, K, V, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    q, k = mk(B, H, K), ref.l2norm(mk(B, H, K))
    return q, k, mk(B, H, V), torch.rand(B, H, generator=g, dtype=torch.float64).to(dtype), \
        mk(B, H, K, V) * 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B, H, K, V", [(1, 32, 128, 128), (3, 2, 20, 24), (2, 3, 256, 16)])
def test_step_matches_reference(B, H, K, V, dtype):
    q, k, v, beta, S = _inputs(B, H, K, V, dtype)
    S_fused = S.clone()
    out = torch.full((B, H, V), float("nan"), dtype=dtype)
    o = memory_ext.delta_rule_step(q, k, v, beta, S_fused, scale=0.3, out=out)
    assert o is out  # written in place, nothing returned fresh
    o_r, S_r = ref.delta_rule(q[:, None], k[:, None], v[:, None], beta[:, None], scale=0.3,
                              initial_state=S, output_final_state=True)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(o, o_r[:, 0], **tol)
    torch.testing.assert_close(S_fused, S_r, **tol)


def test_decoding_loop_equals_delta_rule():
    B, T, H, K, V = 2, 17, 3, 12, 10
    g = torch.Generator().manual_seed(1)
    q, k = (ref.l2norm(torch.randn(B, T, H, K, generator=g, dtype=torch.float64)) for _ in range(2))
    v = torch.randn(B, T, H, V, generator=g, dtype=torch.float64)
    beta = torch.rand(B, T, H, generator=g, dtype=torch.float64)
    o_all, S_all = memory_ext.delta_rule(q, k, v, beta, output_final_state=True)
    S = torch.zeros(B, H, K, V, dtype=torch.float64)
    ptr = S.data_ptr()
    for t in range(T):
        o_t = memory_ext.delta_rule_step(q[:, t], k[:, t], v[:, t], beta[:, t], S)
        torch.testing.assert_close(o_t, o_all[:, t], rtol=1e-12, atol=1e-12)
    assert S.data_ptr() == ptr
    torch.testing.assert_close(S, S_all, rtol=1e-12, atol=1e-12)


def test_opcheck():
    q, k, v, beta, S = _inputs(2, 2, 8, 6, torch.float32)
    out = torch.empty(2, 2, 6)
    torch.library.opcheck(torch.ops.memory_ext.delta_rule_step_.default,
                          (S, q, k, v, beta, 0.5, out))


def test_torch_compile_fullgraph():
    q, k, v, beta, S = _inputs(2, 2, 8, 6, torch.float32)
    S1, S2 = S.clone(), S.clone()

    def f(q, k, v, beta, S):
        return memory_ext.delta_rule_step(q, k, v, beta, S) * 2

    torch._dynamo.reset()
    want = f(q, k, v, beta, S1)
    got = torch.compile(f, fullgraph=True)(q, k, v, beta, S2)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(S2, S1)


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(k=a["k"][:, :1]), r"k must be \[B, H, K\]"),
    (lambda a: a.update(v=a["v"][:1]), r"v must be \[B, H, V\]"),
    (lambda a: a.update(beta=a["beta"][:, None]), r"beta must be \[B, H\]"),
    (lambda a: a.update(state=a["state"][..., :3]), r"state must be \[B, H, K, V\]"),
    (lambda a: a.update(state=a["state"].transpose(2, 3).contiguous().transpose(2, 3)),
     "state must be contiguous"),
    (lambda a: a.update(state=a["state"].double()), "state must be Float"),
    (lambda a: a.update(q=a["q"].half(), k=a["k"].half(), v=a["v"].half(), beta=a["beta"].half(),
                        state=a["state"].half()), "state must be Float"),  # half inputs: a float32 state
])
def test_bad_inputs_change_nothing(change, match):
    q, k, v, beta, S = _inputs(2, 2, 8, 8, torch.float32)
    a = dict(q=q, k=k, v=v, beta=beta, state=S)
    change(a)
    before = a["state"].clone()
    with pytest.raises(RuntimeError, match=match):
        memory_ext.delta_rule_step(a["q"], a["k"], a["v"], a["beta"], a["state"])
    assert torch.equal(a["state"], before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_inputs_accumulate_in_float32(dtype):
    """fp16 / bf16 q, k, v, beta: upcast, the state float32, o rounded once to v's dtype."""
    q, k, v, beta, S = (t.to(dtype) for t in _inputs(3, 2, 20, 24, torch.float64))
    S = S.float()
    o_r, S_r = ref.delta_rule(q[:, None].double(), k[:, None].double(), v[:, None].double(),
                              beta[:, None].double(), scale=0.3, initial_state=S.double(),
                              output_final_state=True)
    o = memory_ext.delta_rule_step(q, k, v, beta, S, scale=0.3)
    assert o.dtype == dtype and S.dtype == torch.float32
    torch.testing.assert_close(o, o_r[:, 0].to(dtype))  # within the rounding of the dtype
    torch.testing.assert_close(S, S_r.float(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_half_inputs_write_into_out(out_dtype):
    q, k, v, beta, S = (t.bfloat16() for t in _inputs(2, 2, 8, 6, torch.float64))
    S1, S2 = S.float(), S.float()
    want = memory_ext.delta_rule_step(q, k, v.float(), beta, S1)   # a float32 v: o in float32
    out = torch.full((2, 2, 6), float("nan"), dtype=out_dtype)
    o = memory_ext.delta_rule_step(q, k, v, beta, S2, out=out)
    assert o is out
    torch.testing.assert_close(out, want.to(out_dtype), rtol=0, atol=0)
    assert torch.equal(S1, S2)


@pytest.mark.parametrize("out, match", [
    (torch.empty(2, 2, 6, dtype=torch.float16), "out must be torch.bfloat16"),
    (torch.empty(2, 2, 5, dtype=torch.bfloat16), r"out must be \[B, H, V\]"),
])
def test_half_inputs_bad_out_changes_nothing(out, match):
    q, k, v, beta, S = (t.bfloat16() for t in _inputs(2, 2, 8, 6, torch.float64))
    S = S.float()
    before = S.clone()
    with pytest.raises((TypeError, ValueError), match=match):
        memory_ext.delta_rule_step(q, k, v, beta, S, out=out)
    assert torch.equal(S, before)


def test_decoding_loop_in_bfloat16_equals_delta_rule():
    B, T, H, K, V = 2, 9, 3, 12, 10
    g = torch.Generator().manual_seed(2)
    q, k = (ref.l2norm(torch.randn(B, T, H, K, generator=g)).bfloat16() for _ in range(2))
    v = torch.randn(B, T, H, V, generator=g).bfloat16()
    beta = torch.rand(B, T, H, generator=g).bfloat16()
    o_all, S_all = memory_ext.delta_rule(q, k, v, beta, output_final_state=True, mode="recurrent")
    S = torch.zeros(B, H, K, V)
    o = torch.stack([memory_ext.delta_rule_step(q[:, t], k[:, t], v[:, t], beta[:, t], S)
                     for t in range(T)], 1)
    assert o.dtype == torch.bfloat16
    torch.testing.assert_close(o.float(), o_all.float(), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(S, S_all, rtol=1e-5, atol=1e-5)
