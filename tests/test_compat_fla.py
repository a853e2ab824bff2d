"""memory_ext.compat.fla: flash-linear-attention's delta-rule calls on memory_ext.

A port (our own code) of the cases of fla's tests/ops/test_delta.py -- the chunk form against
the recurrent form, chunk sizes, varlen, the in-kernel l2norm, plus decoding with T = 1 and an
initial state -- with fla's ratio tolerance (rms(diff) / rms(ref)), every result also against the
float64 reference. Each backward runs on fresh leaves (fla's test_chunk_varlen ran two backward
passes into the same .grad and so compared each gradient with itself). When fla's sources are
installed, its naive CPU recurrence gets the same calls and its public signatures are compared
with ours; on CUDA with fla importable, its Triton kernels too. Small shapes throughout.
"""
import ast
import importlib.util
import inspect
import os

import pytest
import torch
import torch.nn.functional as F

import memory_ext
from memory_ext import reference as ref
from memory_ext.bench.fla_peer import load_fla_naive
from memory_ext.compat.fla import FlaAssertionError, chunk_delta_rule, fused_recurrent_delta_rule

F16, BF16, F32, F64 = torch.float16, torch.bfloat16, torch.float32, torch.float64


def assert_ratio(name, want, got, ratio, err_atol=1e-6):
    """fla's tolerance, written afresh: pass when max |diff| <= err_atol, else when
    rms(got - want) / rms(want) < ratio (and neither side has a NaN)."""
    want, got = want.detach().double(), got.detach().double()
    assert want.shape == got.shape, (name, want.shape, got.shape)
    diff = (got - want).flatten()
    if diff.numel() == 0 or diff.abs().max().item() <= err_atol:
        return
    assert not want.isnan().any() and not got.isnan().any(), f"{name}: NaN"
    err = diff.square().mean().sqrt().item() / (want.flatten().square().mean().sqrt().item() + 1e-8)
    assert err < ratio, f"{name}: error ratio {err:.6f} >= {ratio} (max diff {diff.abs().max().item():.3g})"


def _inputs(B, T, H, K, V, dtype, *, normalize_k=True, N=None, seed=42):
    """fla's test inputs: q, k, v randn (k l2-normalised in float32 unless the kernel does it),
    beta = sigmoid(randn), h0 float32 [N, H, K, V]; the gradients do [B, T, H, V], dht."""
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    q, k, v = rn(B, T, H, K), rn(B, T, H, K), rn(B, T, H, V)
    if normalize_k:
        k = F.normalize(k, p=2, dim=-1)
    beta = rn(B, T, H).sigmoid()
    h0 = rn(N or B, H, K, V)
    do, dht = rn(B, T, H, V), torch.rand(N or B, H, K, V, generator=g)
    return [t.to(dtype) for t in (q, k, v, beta)] + [h0, do.to(dtype), dht]


def _run(fn, tensors, do, dht, *args, **kw):
    """fn(q, k, v, beta, *args, initial_state=h0, **kw) on fresh leaf copies of tensors =
    (q, k, v, beta, h0), then the backward of (o * do).sum() + (ht * dht).sum(). Returns
    [o, ht, dq, dk, dv, dbeta, dh0]. Fresh leaves per call: no gradient accumulates twice."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    o, ht = fn(*leaves[:4], *args, initial_state=leaves[4], **kw)
    ((o * do.to(o.dtype)).sum() + (ht * dht).sum()).backward()
    return [o, ht] + [t.grad for t in leaves]


NAMES = ["o", "ht", "dq", "dk", "dv", "dbeta", "dh0"]


def _truth(q, k, v, beta, h0, do, dht, *, scale=None, l2=False, cu_seqlens=None):
    """The float64 reference (memory_ext.reference.delta_rule) with its gradients, on the
    inputs' values (o then rounded to q's dtype, as the results are); l2: q and k normalised
    and rounded to their dtype first, as fla does."""
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v, beta, h0)]
    q64, k64 = leaves[:2]
    if l2:
        q64, k64 = (ref.l2norm(x).to(t.dtype).double() for x, t in ((q64, q), (k64, k)))
    o, ht = ref.delta_rule(q64, k64, leaves[2], leaves[3], scale=scale, initial_state=leaves[4],
                           output_final_state=True, cu_seqlens=cu_seqlens)
    ((o * do.double()).sum() + (ht * dht.double()).sum()).backward()
    return [o.detach().to(q.dtype), ht] + [t.grad for t in leaves]


def _compare(prefix, want, got, ratios):
    """fla's ratio check of each of [o, ht, dq, dk, dv, dbeta, dh0]; o in the dtype of want's,
    the final state float32."""
    assert got[0].dtype == want[0].dtype and got[1].dtype == F32
    for name, w, g, r in zip(NAMES, want, got, ratios):
        assert_ratio(f"{prefix} {name}", w, g, r)


# --- fla's test_chunk: the chunk form against the recurrent form, both against float64 --------
@pytest.mark.parametrize("B, T, H, D, scale, l2, dtype", [
    (1, 63, 1, 64, 1, False, F16),
    (2, 100, 2, 60, 0.1, False, F16),
    (2, 70, 2, 32, 1, True, F16),
    (2, 50, 2, 48, 0.1, False, BF16),
    (1, 40, 2, 32, 1, True, BF16),
])
def test_chunk(B, T, H, D, scale, l2, dtype):
    q, k, v, beta, h0, do, dht = _inputs(B, T, H, D, D, dtype, normalize_k=False)
    if not l2:  # fla's test normalises outside the kernel (in the input dtype) when not inside
        q, k = F.normalize(q, p=2, dim=-1), F.normalize(k, p=2, dim=-1)
    kw = dict(scale=scale, output_final_state=True, use_qk_l2norm_in_kernel=l2)
    tri = _run(chunk_delta_rule, (q, k, v, beta, h0), do, dht, **kw)
    rec = _run(fused_recurrent_delta_rule, (q, k, v, beta, h0), do, dht, **kw)
    assert tri[0].dtype == dtype and tri[1].dtype == F32
    _compare("chunk~recurrent", rec, tri, [0.006, 0.006] + [0.008] * 5)
    truth = _truth(q, k, v, beta, h0, do, dht, scale=scale, l2=l2)
    _compare("chunk~f64", truth, tri, [0.006] * 7)
    _compare("recurrent~f64", truth, rec, [0.006] * 7)


# --- fla's test_chunk_with_chunk_size --------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [16, 32, 64])
def test_chunk_with_chunk_size(chunk_size):
    q, k, v, beta, h0, do, dht = _inputs(1, 64, 2, 64, 64, F16)
    tri = _run(chunk_delta_rule, (q, k, v, beta, h0), do, dht, output_final_state=True,
               chunk_size=chunk_size)
    rec = _run(fused_recurrent_delta_rule, (q, k, v, beta, h0), do, dht, output_final_state=True)
    _compare(f"chunk{chunk_size}~recurrent", rec, tri, [0.005] * 7)
    truth = _truth(q, k, v, beta, h0, do, dht)
    _compare(f"chunk{chunk_size}~f64", truth, tri, [0.005] * 7)


# --- fla's test_chunk_varlen (each backward on its own leaves) -------------------------------
@pytest.mark.parametrize("H, D, bounds, dtype", [
    (2, 64, [0, 15], F16),
    (3, 30, [0, 41, 100], F16),
    (2, 32, [0, 15, 50, 120, 128], BF16),
])
def test_chunk_varlen(H, D, bounds, dtype):
    N, T = len(bounds) - 1, bounds[-1]
    cu = torch.tensor(bounds, dtype=torch.int32)
    q, k, v, beta, h0, do, dht = _inputs(1, T, H, D, D, dtype, N=N)
    h0 = h0.to(dtype)  # fla's varlen test passes the initial state in the input dtype
    rec = _run(fused_recurrent_delta_rule, (q, k, v, beta, h0), do, dht, output_final_state=True,
               cu_seqlens=cu)
    tri = _run(chunk_delta_rule, (q, k, v, beta, h0), do, dht, output_final_state=True,
               cu_seqlens=cu)
    _compare("varlen chunk~recurrent", rec, tri, [0.005, 0.005] + [0.008] * 5)
    truth = _truth(q, k, v, beta, h0, do, dht, cu_seqlens=cu)
    _compare("varlen chunk~f64", truth, tri, [0.005] * 7)
    # cu_seqlens_cpu (read instead of cu_seqlens: no device sync) gives the same, bit for bit
    same = _run(chunk_delta_rule, (q, k, v, beta, h0), do, dht, output_final_state=True,
                cu_seqlens=cu.long(), cu_seqlens_cpu=cu.long().cpu())
    for name, a, b in zip(NAMES, tri, same):
        assert torch.equal(a, b), name


def test_shapes_flas_kernels_refuse_and_empty_sequences():
    """K > 256 and odd K, V (fla's chunk kernels assert against them), an empty sequence."""
    bounds = [0, 5, 5, 12]
    q, k, v, beta, h0, do, dht = _inputs(1, 12, 2, 257, 5, BF16, N=3)
    cu = torch.tensor(bounds)
    truth = _truth(q, k, v, beta, h0, do, dht, cu_seqlens=cu)
    for fn in (chunk_delta_rule, fused_recurrent_delta_rule):
        got = _run(fn, (q, k, v, beta, h0), do, dht, output_final_state=True, cu_seqlens=cu)
        _compare(f"{fn.__name__} K257 V5", truth, got, [0.006] * 7)
        assert torch.equal(got[1][1], h0[1])  # the empty sequence keeps its initial state


# --- fla's test_l2_in_kernel: in-kernel l2norm == normalising outside and rounding ------------
@pytest.mark.parametrize("B, T, H, D", [(2, 15, 2, 64), (2, 63, 2, 32), (1, 100, 2, 100)])
def test_l2_in_kernel(B, T, H, D):
    q, k, v, beta, h0, do, dht = _inputs(B, T, H, D, D, BF16, normalize_k=False)
    outside = lambda x: F.normalize(x.float(), p=2, dim=-1).to(BF16)  # noqa: E731
    for fn, ratio in ((chunk_delta_rule, 0.01), (fused_recurrent_delta_rule, 0.002)):
        inside = _run(fn, (q, k, v, beta, h0), do, dht, scale=0.1, output_final_state=True,
                      use_qk_l2norm_in_kernel=True)
        out = _run(lambda q, k, *a, **kw: fn(outside(q), outside(k), *a, **kw),
                   (q, k, v, beta, h0), do, dht, scale=0.1, output_final_state=True)
        _compare(f"{fn.__name__} l2 in kernel~outside", out, inside, [ratio] * 7)
        truth = _truth(q, k, v, beta, h0, do, dht, scale=0.1, l2=True)
        _compare(f"{fn.__name__} l2 in kernel~f64", truth, inside, [0.006] * 7)


def test_l2_in_kernel_rounds_q_and_k_to_the_input_dtype():
    """fla stores the normalised q and k in the input dtype: the in-kernel form equals passing
    the rounded normalised q and k (bit for bit here: the same ops underneath)."""
    q, k, v, beta, h0, *_ = _inputs(2, 20, 2, 32, 32, BF16, normalize_k=False)
    rounded = lambda x: ref.l2norm(x.float()).to(BF16)  # noqa: E731
    for fn in (chunk_delta_rule, fused_recurrent_delta_rule):
        a = fn(q, k, v, beta, 0.3, h0, True, True)
        b = fn(rounded(q), rounded(k), v, beta, 0.3, h0, True, False)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --- decoding: T = 1 with an initial state, as fla users decode ------------------------------
@pytest.mark.parametrize("dtype", [F32, BF16, F16])
def test_decoding_step_by_step_equals_the_sequence(dtype):
    B, T, H, K, V = 2, 12, 3, 16, 8
    q, k, v, beta, h0, *_ = _inputs(B, T, H, K, V, dtype)
    o_all, h_all = fused_recurrent_delta_rule(q, k, v, beta, initial_state=h0, output_final_state=True)
    h, S = h0.clone(), h0.clone()
    for t in range(T):
        sl = slice(t, t + 1)
        o_t, h = fused_recurrent_delta_rule(q[:, sl], k[:, sl], v[:, sl], beta[:, sl],
                                            initial_state=h, output_final_state=True)
        assert o_t.shape == (B, 1, H, V) and o_t.dtype == dtype and h.dtype == F32
        # ... and agrees with memory_ext.delta_rule_step (updates S in place; o in v's dtype)
        o_s = memory_ext.delta_rule_step(q[:, t], k[:, t], v[:, t], beta[:, t], S)
        torch.testing.assert_close(o_t[:, 0], o_s, rtol=0, atol=0)
        torch.testing.assert_close(h, S, rtol=0, atol=0)
        assert_ratio(f"o[{t}]", o_all[:, t], o_t[:, 0], 0.004)
    assert_ratio("final state", h_all, h, 1e-5)
    truth = _truth(q, k, v, beta, h0, torch.zeros(B, T, H, V), torch.zeros_like(h0))
    assert_ratio("final state~f64", truth[1], h, 1e-5)


def test_decoding_with_autograd_equals_the_step_without():
    q, k, v, beta, h0, *_ = _inputs(2, 1, 2, 16, 16, BF16)
    with torch.no_grad():
        fast = fused_recurrent_delta_rule(q, k, v, beta, initial_state=h0, output_final_state=True)
    h0g = h0.clone().requires_grad_()
    slow = fused_recurrent_delta_rule(q, k, v, beta, initial_state=h0g, output_final_state=True)
    chunk = chunk_delta_rule(q, k, v, beta, initial_state=h0, output_final_state=True)
    for other in (slow, chunk):
        assert_ratio("o", fast[0], other[0], 0.004)
        assert_ratio("ht", fast[1], other[1].detach(), 1e-6)
    slow[1].sum().backward()
    assert h0g.grad is not None
    assert torch.equal(h0, h0g.detach())  # the initial state is never written


# --- call forms, defaults, dtypes -------------------------------------------------------------
def test_positional_and_keyword_calls_agree():
    q, k, v, beta, h0, *_ = _inputs(1, 30, 2, 16, 16, BF16, N=2)
    cu = torch.tensor([0, 12, 30])
    a = chunk_delta_rule(q, k, v, beta, 0.2, h0, True, True, cu, cu)
    b = chunk_delta_rule(q=q, k=k, v=v, beta=beta, scale=0.2, initial_state=h0,
                         output_final_state=True, use_qk_l2norm_in_kernel=True, cu_seqlens=cu,
                         cu_seqlens_cpu=cu, chunk_size=64)
    c = fused_recurrent_delta_rule(q, k, v, beta, 0.2, h0, True, True, cu)
    d = fused_recurrent_delta_rule(q=q, k=k, v=v, beta=beta, scale=0.2, initial_state=h0,
                                   output_final_state=True, use_qk_l2norm_in_kernel=True,
                                   cu_seqlens=cu)
    for x, y in ((a, b), (c, d)):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
    assert_ratio("chunk~recurrent", c[0], a[0], 0.006)
    # output_final_state defaults to False: the state is None
    assert chunk_delta_rule(q, k, v, beta)[1] is None
    assert fused_recurrent_delta_rule(q, k, v, beta)[1] is None


def test_recurrent_beta_defaults_to_ones():
    q, k, v, _, h0, *_ = _inputs(2, 10, 2, 8, 8, F32)
    a = fused_recurrent_delta_rule(q, k, v, initial_state=h0, output_final_state=True)
    b = fused_recurrent_delta_rule(q, k, v, torch.ones(2, 10, 2), None, h0, True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("fn, dtypes", [
    (chunk_delta_rule, [F16, BF16, F64]),
    (fused_recurrent_delta_rule, [F32, F16, BF16, F64]),
])
def test_o_in_q_dtype_and_state_float32(fn, dtypes):
    for dtype in dtypes:
        q, k, v, beta, h0, *_ = _inputs(1, 20, 2, 8, 8, dtype)
        h0 = h0.to(dtype)  # fla takes an initial state of any dtype
        o, ht = fn(q, k, v, beta, initial_state=h0, output_final_state=True)
        assert o.dtype == dtype and ht.dtype == F32
        o_r, s_r = ref.delta_rule(*(t.double() for t in (q, k, v, beta)), initial_state=h0.double(),
                                  output_final_state=True)
        assert_ratio(f"{dtype} o", o_r, o, 1e-12 if dtype == F64 else 0.006)
        assert_ratio(f"{dtype} ht", s_r, ht, 1e-6 if dtype in (F32, F64) else 0.006)


def test_recurrent_mixed_dtypes_round_o_once_to_q_dtype():
    q, k, v, beta, h0, *_ = _inputs(1, 20, 2, 8, 8, F32)
    o, _ = fused_recurrent_delta_rule(q, k.bfloat16(), v.bfloat16(), beta.half(), initial_state=h0)
    assert o.dtype == F32
    o_r, _ = ref.delta_rule(q.double(), *(t.double() for t in (k.bfloat16(), v.bfloat16(), beta.half())),
                            initial_state=h0.double())
    assert_ratio("o", o_r, o, 1e-6)  # not rounded through bfloat16 on the way


# --- per-element beta [B, T, H, V] (fused_recurrent only, as in fla) --------------------------
def _per_element_truth(q, k, v, beta, h0, scale):
    """The recurrence of fla's naive form with a beta per value element, in float64."""
    S, outs = h0, []
    for t in range(q.shape[1]):
        u = (v[:, t] - torch.einsum("bhk,bhkv->bhv", k[:, t], S)) * beta[:, t]
        S = S + k[:, t, :, :, None] * u[:, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    return torch.stack(outs, 1), S


@pytest.mark.parametrize("l2", [False, True])
def test_per_element_beta_matches_float64_with_gradients(l2):
    B, T, H, K, V = 2, 9, 2, 5, 3
    q, k, v, _, h0, do, dht = _inputs(B, T, H, K, V, F64)
    beta, h0 = torch.rand(B, T, H, V, dtype=F64), h0.double()
    got = _run(fused_recurrent_delta_rule, (q, k, v, beta, h0), do, dht, scale=0.4,
               output_final_state=True, use_qk_l2norm_in_kernel=l2)
    leaves = [t.clone().requires_grad_() for t in (q, k, v, beta, h0)]
    qq, kk = (ref.l2norm(x) for x in leaves[:2]) if l2 else leaves[:2]
    o, S = _per_element_truth(qq, kk, *leaves[2:], 0.4)
    ((o * do).sum() + (S * dht).sum()).backward()
    want = [o, S.float()] + [t.grad for t in leaves]
    for name, w, g in zip(NAMES, want, got):
        assert_ratio(f"per-element {name}", w, g, 1e-6 if name == "ht" else 1e-10)


def test_per_element_beta_equal_columns_is_the_headwise_rule_and_varlen_works():
    q, k, v, beta, h0, *_ = _inputs(1, 30, 2, 8, 6, F32, N=2)
    cu = torch.tensor([0, 11, 30])
    wide = beta[..., None].expand(1, 30, 2, 6)
    a = fused_recurrent_delta_rule(q, k, v, beta, None, h0, True, False, cu)
    b = fused_recurrent_delta_rule(q, k, v, wide, None, h0, True, False, cu)
    assert_ratio("o", a[0], b[0], 1e-6)
    assert_ratio("ht", a[1], b[1], 1e-6)


# --- argument checks: fla's, each naming the argument -----------------------------------------
def _args(dtype=BF16, B=1, N=None):
    q, k, v, beta, h0, *_ = _inputs(B, 8, 2, 4, 4, dtype, N=N)
    return dict(q=q, k=k, v=v, beta=beta, initial_state=h0)


_C, _R, _A = chunk_delta_rule, fused_recurrent_delta_rule, FlaAssertionError


@pytest.mark.parametrize("fn, change, exc, match", [
    (_C, dict(k=lambda a: a["k"].half()), _A, "q, k and v must share one dtype"),
    (_C, dict(v=lambda a: a["v"].float()), _A, "q, k and v must share one dtype"),
    (_C, {x: (lambda a, x=x: a[x].float()) for x in "qkv"}, _A, "the chunk form does not take float32"),
    (_C, dict(beta=lambda a: a["v"]), _A, r"beta must be \[B, T, H\]"),
    (_C, dict(head_first=lambda a: False), DeprecationWarning, "head_first has been removed"),
    (_C, dict(chunk_size=lambda a: 8), ValueError, "chunk_size must be 16, 32 or 64"),
    (_C, dict(chunk_size=lambda a: 128), ValueError, "chunk_size must be 16, 32 or 64"),
    (_C, dict(chunksize=lambda a: 16), TypeError, "chunksize"),
    (_R, dict(scale=lambda a: 0.0), _A, "scale must be positive"),
    (_R, dict(scale=lambda a: -1), _A, "scale must be positive"),
    (_R, dict(beta=lambda a: a["beta"][..., None]), ValueError, r"beta must be \[B, T, H\]"),
    # fla's recurrent form has neither argument: TypeErrors there too
    (_R, dict(cu_seqlens_cpu=lambda a: torch.tensor([0, 8])), TypeError, "cu_seqlens_cpu"),
    (_R, dict(head_first=lambda a: False), TypeError, "head_first"),
])
def test_fla_argument_checks(fn, change, exc, match):
    a = _args()
    a.update({name: make(a) for name, make in change.items()})
    with pytest.raises(exc, match=match):
        fn(**a)


@pytest.mark.parametrize("fn", [chunk_delta_rule, fused_recurrent_delta_rule])
def test_varlen_checks(fn):
    a = _args(B=2)
    with pytest.raises(ValueError, match="cu_seqlens packs the sequences in a batch of 1"):
        fn(**a, cu_seqlens=torch.tensor([0, 3, 8]))
    a = _args(B=1, N=3)
    with pytest.raises(ValueError, match="initial_state needs one state per sequence of cu_seqlens: 2, got"):
        fn(**a, cu_seqlens=torch.tensor([0, 3, 8]))


@pytest.mark.parametrize("T, beta_shape", [(1, "headwise"), (8, "headwise"), (8, "per-element")])
def test_shape_errors_name_the_argument_on_every_path(T, beta_shape):
    """The decoding step, the recurrent form and the per-element form check shapes in the
    caller's terms (ValueError), before any folding."""
    q, k, v, beta, h0, *_ = _inputs(2, T, 2, 4, 3, F32)
    if beta_shape == "per-element":
        beta = torch.rand(2, T, 2, 3)
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"initial_state must be \[N, H, K, V\] = \[2, 2, 4, 3\]"):
            fused_recurrent_delta_rule(q, k, v, beta, initial_state=h0[:, :, :3])
        with pytest.raises(ValueError, match=r"k must be \[B, T, H, K\]"):
            fused_recurrent_delta_rule(q, k[..., :3], v, beta)
        with pytest.raises(ValueError, match=r"v must be \[B, T, H, V\]"):
            fused_recurrent_delta_rule(q, k, v[:, :, :1], beta)


def test_assertion_errors_are_also_value_errors():
    """fla asserts (AssertionError); here they are raised explicitly and are also ValueErrors."""
    a = _args(F32)
    with pytest.raises(AssertionError):
        chunk_delta_rule(**a)
    with pytest.raises(ValueError):
        chunk_delta_rule(**a)


# --- against fla itself, when its sources are installed (CI does not install fla) ------------
def _fla_source(name):
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("flash-linear-attention (fla) is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "ops", "delta_rule", name)
    if not os.path.exists(path):
        pytest.skip(f"fla has no ops/delta_rule/{name}")
    return open(path).read()


@pytest.mark.parametrize("fn, source", [(chunk_delta_rule, "chunk.py"),
                                        (fused_recurrent_delta_rule, "fused_recurrent.py")])
def test_signature_is_flas(fn, source):
    """Names, order, defaults and **kwargs of fla's public function (read from its source, so
    without importing fla, which needs triton)."""
    tree = ast.parse(_fla_source(source))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn.__name__)
    names = [a.arg for a in node.args.args]
    defaults = [ast.literal_eval(d) for d in node.args.defaults]
    params = list(inspect.signature(fn).parameters.values())
    ours = [p for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in ours] == names
    assert [p.default for p in ours[len(ours) - len(defaults):]] == defaults
    assert all(p.default is p.empty for p in ours[:len(ours) - len(defaults)])
    assert any(p.kind == p.VAR_KEYWORD for p in params) == (node.args.kwarg is not None)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("beta_shape", ["headwise", "per-element"])
def test_same_calls_on_flas_naive_recurrence_agree(dtype, beta_shape):
    naive = load_fla_naive() or pytest.skip("flash-linear-attention (fla) or einops is not installed")
    B, T, H, K, V = 2, 24, 2, 16, 12
    q, k, v, beta, h0, *_ = _inputs(B, T, H, K, V, dtype)
    if beta_shape == "per-element":
        beta = torch.rand(B, T, H, V).to(dtype)
    hf = lambda x: x.transpose(1, 2).contiguous()  # noqa: E731  fla's naive form is head-first
    o_f, s_f = naive(hf(q), hf(k), hf(v), hf(beta), initial_state=h0, output_final_state=True)
    o_f = o_f.transpose(1, 2)
    runs = [fused_recurrent_delta_rule(q, k, v, beta, None, h0, True)]
    if beta_shape == "headwise" and dtype != F32:
        runs.append(chunk_delta_rule(q, k, v, beta, None, h0, True))
    for o, s in runs:
        assert o.dtype == o_f.dtype and s.dtype == s_f.dtype
        assert_ratio("o~fla naive", o_f, o, 1e-5 if dtype == F32 else 0.002)
        assert_ratio("ht~fla naive", s_f, s, 1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_same_calls_on_flas_triton_kernels_agree():
    fla_ops = pytest.importorskip("fla.ops.delta_rule")
    B, T, H, D = 2, 100, 2, 64
    q, k, v, beta, h0, do, dht = (t.cuda() for t in _inputs(B, T, H, D, D, BF16))
    for ours, theirs in ((chunk_delta_rule, fla_ops.chunk_delta_rule),
                         (fused_recurrent_delta_rule, fla_ops.fused_recurrent_delta_rule)):
        want = _run(theirs, (q, k, v, beta, h0), do, dht, 0.5, output_final_state=True)
        got = _run(ours, (q, k, v, beta, h0), do, dht, 0.5, output_final_state=True)
        _compare(f"{ours.__name__}~fla", want, got, [0.006, 0.006] + [0.008] * 5)


# --- the same code on any device (CUDA when there is one) ------------------------------------
def test_runs_on_the_inputs_device(device):
    q, k, v, beta, h0, do, dht = (t.to(device) for t in _inputs(2, 40, 2, 16, 16, BF16))
    truth = _truth(*(t.cpu() for t in (q, k, v, beta, h0, do, dht)), scale=0.5)
    for fn in (chunk_delta_rule, fused_recurrent_delta_rule):
        got = _run(fn, (q, k, v, beta, h0), do, dht, 0.5, output_final_state=True)
        assert got[0].device.type == torch.device(device).type
        _compare(f"{fn.__name__} on {device}", truth, [t.cpu() for t in got], [0.006] * 7)
