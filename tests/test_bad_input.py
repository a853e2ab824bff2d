"""Regression tests of issue 15's findings in the Python fronts and the shared kernels: NaN and
Inf propagate like the reference, a meta tensor among real ones is refused, slot_write_ and the
hash table's state refuse bad values and change nothing, and clear errors replace
ZeroDivisionError / torch's AssertionError."""
import pytest
import torch

import memory_ext
from memory_ext import reference

ACTS = ("tanh", "sigmoid", "relu", "identity")
OPS = torch.ops.memory_ext


# --- NaN / Inf: the fused ops give NaN exactly where the reference does ------------------------
def _weights(dtype, widths=(8, 12, 6), B=2):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(B, widths[l + 1], widths[l], generator=g, dtype=dtype) * widths[l] ** -0.5
            for l in range(len(widths) - 1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_read_propagates_nan_and_inf_like_the_reference(act, dtype, bad):
    W = _weights(dtype)
    keys = torch.randn(2, 3, 8, dtype=dtype)
    keys[0, 1, 2] = bad
    got = memory_ext.mlp_memory_read(W, keys, activation=act)
    want = reference.mlp_read(W, keys, activation=act)
    assert torch.equal(got.isnan(), want.isnan()), (got, want)
    ok = ~want.isnan()
    torch.testing.assert_close(got[ok], want[ok])
    if bad != bad:  # a NaN key: that head's reads are NaN (the model is not 'healthy')
        assert got[0, 1].isnan().all()


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("rule", ["local", "grad"])
def test_scan_with_a_nan_write_key_gives_nan_reads_like_the_reference(act, rule):
    g = torch.Generator().manual_seed(1)
    B, T, H, n = 2, 3, 2, 8
    W = [torch.randn(B, n, n, generator=g, dtype=torch.float64) / n ** 0.5 for _ in range(2)]
    kw = torch.randn(B, T, H, n, generator=g, dtype=torch.float64)
    kw[1, 1, 0, 3] = float("nan")
    targets = ([torch.randn(B, T, H, n, generator=g, dtype=torch.float64) for _ in range(2)]
               if rule == "local" else torch.randn(B, T, H, n, generator=g, dtype=torch.float64))
    beta = torch.full((B, T), 0.1, dtype=torch.float64)
    kr = torch.randn(B, T, H, n, generator=g, dtype=torch.float64)
    got = memory_ext.mlp_memory_scan(W, kw, targets, beta, kr, rule=rule, activation=act)[0]
    want = reference.mlp_scan(W, kw, targets, beta, kr, rule=rule, activation=act)[0]
    assert torch.equal(got.isnan(), want.isnan())
    assert got[1, 1:].isnan().any() and not got[0].isnan().any()


def _read_inputs(dtype=torch.float64, B=2, N=4, d=3, count=(2, 4)):
    g = torch.Generator().manual_seed(2)
    q = torch.randn(B, d, generator=g, dtype=dtype)
    M = torch.randn(B, N, d, generator=g, dtype=dtype)
    C = torch.randn(B, N, d, generator=g, dtype=dtype)
    return q, M, C, torch.tensor(count)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_slot_read_non_finite_live_slot_propagates_and_dead_slots_stay_zero(bad):
    q, M, C, count = _read_inputs()
    q[0] = q[0].abs() + 0.5      # +Inf in M[0, 1] gives score +Inf: softmax of it is NaN
    M[0, 1] = bad
    M[1, 3] = float("nan")       # a live slot of row 1 (count 4)
    M[0, 3] = float("nan")       # a dead slot of row 0 (count 2): never takes part
    C[0, 2] = float("nan")
    u, attn = memory_ext.slot_read(q, M, C, count, hops=2)
    u_ref, attn_ref = reference.slot_read(q, M, C, count, 2)
    assert torch.equal(attn.isnan(), attn_ref.isnan()) and torch.equal(u.isnan(), u_ref.isnan())
    assert u[1].isnan().all()
    if bad == float("-inf"):  # score -Inf: that slot gets attention 0, the read stays finite
        assert u[0].isfinite().all() and torch.equal(attn[0, 0, 1], torch.zeros((), dtype=attn.dtype))
    else:
        assert u[0].isnan().all()
    assert torch.equal(attn[0, :, 2:], torch.zeros(2, 2, dtype=attn.dtype))  # dead: exactly 0


def test_slot_read_dead_slots_get_zero_gradient_even_when_the_read_is_nan():
    q, M, C, count = _read_inputs()
    M[0, 0] = float("nan")  # row 0's read is NaN
    q, M, C = (t.requires_grad_() for t in (q, M, C))
    u, _ = memory_ext.slot_read(q, M, C, count, hops=2)
    gq, gM, gC = torch.autograd.grad(u.sum(), (q, M, C))
    rq, rM, rC = torch.autograd.grad(reference.slot_read(q, M, C, count, 2)[0].sum(), (q, M, C))
    for got, want in ((gq, rq), (gM, rM), (gC, rC)):
        assert torch.equal(got.isfinite(), want.isfinite())
    assert gM[0].isnan().any() and torch.equal(gM[0, 2:], torch.zeros(2, 3, dtype=gM.dtype))
    assert torch.equal(gC[0, 2:], torch.zeros(2, 3, dtype=gC.dtype))


def test_slot_read_hard_nan_score_gradient_of_a_live_slot_propagates():
    q, M, C, count = _read_inputs()
    q, M = q.requires_grad_(), M.requires_grad_()
    idx, scores = memory_ext.slot_read_hard(q, M, C, count, hops=2)
    g = torch.zeros_like(scores)
    g[0, 0, 3] = float("nan")  # a dead slot of row 0: ignored, like the reference's masked_fill
    g[1, 1, 0] = float("nan")  # a live slot of row 1: NaN in row 1's gradients (was zeroed)
    gq, gM = torch.autograd.grad(scores, (q, M), g)
    rq, rM = torch.autograd.grad(reference.slot_read_hard(q, M, C, count, 2)[1], (q, M), g)
    assert torch.equal(gq.isnan(), rq.isnan()) and torch.equal(gM.isnan(), rM.isnan())
    assert gq[1].isnan().all() and not gq[0].isnan().any()


def test_slot_read_hard_bwd_hop_count_mismatch_names_both_arguments():
    q, M, C, count = _read_inputs(dtype=torch.float32, count=(4, 4))
    idx, scores = OPS.slot_read_hard(q, M, C, count, 2)
    with pytest.raises(RuntimeError, match="indices .* and grad_scores .* disagree on the hop count K: "
                                           "indices has K = 3, grad_scores has K = 2"):
        OPS._slot_read_hard_bwd(torch.ones_like(scores), q, M, C, count, torch.zeros(2, 3, dtype=torch.long))


# --- a meta tensor among CPU tensors runs no fake kernel ------------------------------------------
def test_meta_tensor_mixed_with_cpu_is_refused():
    W = _weights(torch.float32)
    with pytest.raises(RuntimeError, match="mlp_memory_read: all tensors must be on one device"):
        memory_ext.mlp_memory_read(W, torch.randn(2, 3, 8, device="meta"))
    state = torch.zeros(1, 2, 4, 4, device="meta")
    q, k, v = (torch.randn(1, 2, 4) for _ in range(3))
    with pytest.raises(RuntimeError, match="delta_rule_step_: all tensors must be on one device"):
        memory_ext.delta_rule_step(q, k, v, torch.ones(1, 2), state)
    M, C = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    with pytest.raises(RuntimeError, match="slot_write_: all tensors must be on one device"):
        memory_ext.slot_write_(M, C, torch.zeros(2, dtype=torch.int64, device="meta"),
                               torch.ones(2, 4), torch.ones(2, 4))


def test_all_meta_inputs_still_give_shapes():
    W = [w.to("meta") for w in _weights(torch.float32)]
    assert memory_ext.mlp_memory_read(W, torch.randn(2, 3, 8, device="meta")).shape == (2, 3, 6)


# --- slot_write_ ------------------------------------------------------------------------------------
def _slots(B=2, N=3, d=4):
    return torch.zeros(B, N, d), torch.zeros(B, N, d), torch.zeros(B, dtype=torch.int64)


@pytest.mark.parametrize("policy", ["append", "ring"])
def test_slot_write_refuses_a_negative_count_and_changes_nothing(policy):
    M, C, count = _slots()
    count[1] = -1
    before = (M.clone(), C.clone(), count.clone())
    with pytest.raises(RuntimeError, match=r"count must be >= 0, got -1 in batch rows \[1\]"):
        memory_ext.slot_write_(M, C, count, torch.ones(2, 4), torch.ones(2, 4), policy=policy)
    for a, b in zip((M, C, count), before):
        assert torch.equal(a, b)


@pytest.mark.parametrize("which", ["M", "C", "count"])
def test_slot_write_refuses_expanded_outputs(which):
    M, C, count = _slots()
    args = dict(M=M, C=C, count=count)
    args[which] = args[which][:1].expand_as(args[which])
    with pytest.raises(RuntimeError, match=f"{which} is written in place and must not be an expanded"):
        memory_ext.slot_write_(args["M"], args["C"], args["count"], torch.ones(2, 4), torch.ones(2, 4))


def test_slot_write_refuses_m_and_c_sharing_memory():
    M, _, count = _slots()
    with pytest.raises(RuntimeError, match="M and C must be different memories"):
        memory_ext.slot_write_(M, M, count, torch.ones(2, 4), torch.ones(2, 4))


def test_slot_write_failing_on_c_leaves_m_as_it_was():
    M, _, count = _slots()
    C = torch.zeros(2, 3, 4, requires_grad=True)  # a leaf that requires grad: no in-place write
    with pytest.raises(RuntimeError):
        torch.ops.memory_ext.slot_write_(M, C, count, torch.ones(2, 4), torch.ones(2, 4), "append")
    assert torch.equal(M, torch.zeros(2, 3, 4)) and torch.equal(count, torch.zeros(2, dtype=torch.int64))


# --- the hash table's state -----------------------------------------------------------------------
def test_hash_table_load_state_dict_refuses_a_negative_next_id():
    t = memory_ext.IntHashTable(16)
    t.lookup_or_insert(torch.tensor([5, 6]))
    state = t.state_dict()
    fresh = memory_ext.IntHashTable(16)
    before = (fresh.slots.clone(), fresh.meta.clone())
    bad = dict(state, entries=state["entries"][:0], next_id=-1)
    with pytest.raises(ValueError, match=r"next_id'\] must be in \[0, 2\*\*62\], got -1"):
        fresh.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"got 9223372036854775807"):  # new ids would overflow
        fresh.load_state_dict(dict(bad, next_id=2 ** 63 - 1))
    assert torch.equal(fresh.slots, before[0]) and torch.equal(fresh.meta, before[1])


def test_hash_insert_with_a_next_id_at_the_end_of_int64_is_an_error():
    # found by the property tests under UBSan: meta's next id + 1 overflowed (signed, UB)
    t = memory_ext.IntHashTable(16)
    t.meta[2] = 2 ** 63 - 1
    slots = t.slots.clone()
    with pytest.raises(RuntimeError, match="meta: the next id 9223372036854775807 must be in"):
        torch.ops.memory_ext.hash_lookup_or_insert_(t.slots, t.meta, torch.tensor([5]))
    assert torch.equal(t.slots, slots)


# --- clear errors instead of ZeroDivisionError / AssertionError -----------------------------------
def test_delta_rule_with_zero_key_width_is_a_clear_error():
    q = torch.randn(1, 4, 2, 0)
    v = torch.randn(1, 4, 2, 3)
    with pytest.raises(ValueError, match="key width K >= 1"):
        memory_ext.delta_rule(q, q, v, torch.rand(1, 4, 2))
    with pytest.raises(ValueError, match="key width K >= 1"):
        memory_ext.delta_rule_step(torch.randn(1, 2, 0), torch.randn(1, 2, 0), torch.randn(1, 2, 3),
                                   torch.ones(1, 2), torch.zeros(1, 2, 0, 3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_device_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="device='cuda' needs an NVIDIA GPU"):
        memory_ext.IntHashTable(16, device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda' needs an NVIDIA GPU"):
        memory_ext.ElasticEmbedding(4, 8, device="cuda")
    with pytest.raises(ValueError, match="device must be a torch device"):
        memory_ext.IntHashTable(16, device="gpu0")


@pytest.mark.parametrize("bad", ["keys", "grad_reads"])
def test_read_backward_of_another_dtype_names_the_argument(bad):
    W = [torch.randn(1, 3, 2, dtype=torch.float64)]
    args = dict(keys=torch.randn(1, 2, 2, dtype=torch.float64),
                grad_reads=torch.randn(1, 2, 3, dtype=torch.float64))
    args[bad] = args[bad].float()
    with pytest.raises(RuntimeError, match=f"{bad} must have dtype Double like weights"):
        OPS._mlp_memory_read_bwd(W, args["keys"], args["grad_reads"], "tanh")


def test_slot_read_hard_picks_a_nan_score_like_torch_argmax():
    """A NaN score is the maximum (torch.argmax's order; was skipped unless it was slot 0)."""
    q = torch.tensor([[1.0, 0.0]])
    M = torch.tensor([[[1.0, 0.0], [float("nan"), 0.0], [0.5, 0.0], [float("nan"), 1.0]]])
    count = torch.tensor([4])
    idx, scores = memory_ext.slot_read_hard(q, M, M.clone(), count, hops=1)
    ref_idx, ref_scores = reference.slot_read_hard(q, M, M.clone(), count, 1)
    assert idx.tolist() == ref_idx.tolist() == [[1]]
    assert torch.equal(scores.isnan(), ref_scores.isnan())
