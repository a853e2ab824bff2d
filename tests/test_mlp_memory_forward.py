"""Forward of the fused MLP memory ops against memory_ext.reference (spec 1.1-1.7)."""
import dataclasses

import pytest
import torch

from _inputs import (option_cases, ACTIVATIONS, ALPHA_KINDS, BETA_FORMS, F64_TOL, RULES, Shape,
                     assert_no_nan, assert_outputs_close, make_inputs, native_dtype, op_inputs,
                     require_float64, run_fused, run_reference, same_result_tol, shape_params)

SHAPES = [
    Shape(B=1, H=1, Hr=1, widths=(5, 4), T=4),                 # L=1, single head
    Shape(B=2, H=3, Hr=5, widths=(60, 33, 17), T=63),          # odd sizes, Hr > H
    Shape(B=3, H=4, Hr=2, widths=(9, 16, 7, 5), T=11),         # L=3, Hr < H
    Shape(B=2, H=2, Hr=3, widths=(8, 11, 6, 9, 12), T=7),      # L=4 (the maximum)
    Shape(B=2, H=5, Hr=1, widths=(3, 1, 70), T=9),             # hidden width 1, wide output
]
OPTIONS_SHAPE = Shape(B=3, H=3, Hr=5, widths=(7, 10, 6), T=9)

# (op, rule): read has no rule.
OP_RULES = [pytest.param("read", "local", id="read")] + [
    pytest.param(op, rule, id=f"{op}-{rule}") for op in ("write", "step", "scan") for rule in RULES]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("op, rule", OP_RULES)
@pytest.mark.parametrize("shape", shape_params(SHAPES))
def test_matches_reference_float64(device, shape, op, rule, activation):
    require_float64(device)
    inp = op_inputs(op, shape, rule=rule, activation=activation, device=device)
    got = run_fused(op, inp)
    assert_no_nan(got)
    assert_outputs_close(got, run_reference(op, inp), **F64_TOL)


@pytest.mark.parametrize("op, rule, beta_form, alpha, recon", option_cases())
def test_options_match_reference_float64(device, op, rule, beta_form, alpha, recon):
    """beta [B] / [B, L] ([B, T] / [B, T, L]), alpha None / float / [B], recon_values or not."""
    require_float64(device)
    inp = op_inputs(op, OPTIONS_SHAPE, rule=rule, activation="tanh", beta_form=beta_form,
                    alpha=alpha, recon=recon, device=device)
    got = run_fused(op, inp)
    assert_no_nan(got)
    assert_outputs_close(got, run_reference(op, inp), **F64_TOL)


@pytest.mark.parametrize("zero", ["float", "tensor"], ids=["alpha_0.0", "alpha_zeros_B"])
@pytest.mark.parametrize("op, rule", OP_RULES[1:])
def test_zero_alpha_equals_no_alpha(device, op, rule, zero):
    """alpha = 0 (the default) is no decay: the same result as alpha None."""
    dtype = native_dtype(device)
    inp = op_inputs(op, OPTIONS_SHAPE, rule=rule, recon=True, dtype=dtype, device=device)
    alpha = 0.0 if zero == "float" else torch.zeros(OPTIONS_SHAPE.B, dtype=dtype, device=device)
    got = run_fused(op, dataclasses.replace(inp, alpha=alpha))
    assert_outputs_close(got, run_fused(op, inp), **same_result_tol(dtype))


@pytest.mark.parametrize("recon_values", [False, True], ids=["no_recon_values", "recon_values"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("op", ["step", "scan"])
def test_recon_presence(device, op, rule, recon_values):
    """Rule grad returns recon even without recon_values; rule local without them None."""
    shape = OPTIONS_SHAPE
    inp = op_inputs(op, shape, rule=rule, recon=recon_values, dtype=torch.float32, device=device)
    recon = run_fused(op, inp)["recon"]
    if rule == "local" and not recon_values:
        assert recon is None
    else:
        assert recon is not None
        assert recon.shape == ((shape.B, shape.T) if op == "scan" else (shape.B,))
        assert (recon >= 0).all()


# -- float32: relative error against a float64 reference ------------------------------------------
F32_SHAPES = [dataclasses.replace(s, T=64) for s in SHAPES]
F32_REL_TOL = 1e-4


def _rel_err(got, want):
    return ((got.double().cpu() - want).norm() / want.norm()).item()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("op, rule", OP_RULES)
@pytest.mark.parametrize("shape", shape_params(F32_SHAPES))
def test_float32_relative_error(device, shape, op, rule, activation):
    """||fused32 - ref64|| / ||ref64|| <= 1e-4 for every output (a scan runs 64 steps), and the
    same for the weight change W' - W (which is small next to W after one write)."""
    inp64 = op_inputs(op, shape, rule=rule, activation=activation, beta_form="per_layer",
                      alpha="tensor", recon=True)
    inp32 = inp64.map(lambda t: t.float().to(device))
    got = run_fused(op, inp32)
    assert_no_nan(got)
    want = run_reference(op, inp32.map(lambda t: t.cpu().double()))
    assert got.keys() == want.keys()
    errors = {name: _rel_err(got[name], want[name]) for name in want}
    for l, w0 in enumerate(inp32.weights):
        name = f"weights[{l}]"
        if name in want:
            w0 = w0.cpu().double()
            errors[f"{name} - W"] = _rel_err(got[name].cpu().double() - w0, want[name] - w0)
    bad = {k: v for k, v in errors.items() if not v <= F32_REL_TOL}
    assert not bad, f"relative errors above {F32_REL_TOL}: {bad}"


# -- scan == T steps ------------------------------------------------------------------------------
STEPS_SHAPE = Shape(B=2, H=3, Hr=2, widths=(7, 6, 5), T=37)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("checkpoint_every", [1, 4, 16, 64], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("recon", [False, True], ids=["no_recon_values", "recon_values"])
@pytest.mark.parametrize("rule", RULES)
def test_scan_equals_repeated_steps(device, rule, recon, checkpoint_every, dtype):
    if dtype == torch.float64:
        require_float64(device)
    inp = make_inputs(STEPS_SHAPE, rule=rule, activation="tanh", time=True,
                      beta_form="per_layer", alpha="tensor", recon=recon, dtype=dtype,
                      device=device)
    got = run_fused("scan", inp, checkpoint_every=checkpoint_every)
    weights, reads, recons = inp.weights, [], []
    for t in range(STEPS_SHAPE.T):
        out = run_fused("step", dataclasses.replace(inp.at_step(t), weights=weights))
        weights = [out[f"weights[{l}]"] for l in range(STEPS_SHAPE.L)]
        reads.append(out["reads"])
        recons.append(out["recon"])
    want = {"reads": torch.stack(reads, 1),
            **{f"weights[{l}]": w for l, w in enumerate(weights)},
            "recon": None if recons[0] is None else torch.stack(recons, 1)}
    assert_no_nan(got)
    assert_outputs_close(got, want, **same_result_tol(dtype))


# -- memory layouts and untouched inputs ----------------------------------------------------------
LAYOUT_SHAPE = Shape(B=2, H=3, Hr=4, widths=(5, 6, 7), T=3)   # no size-1 dims


def _transposed(t):
    """Same values, last two dims stored transposed (1-D: strided)."""
    if t.dim() < 2:
        return _strided(t)
    return t.transpose(-1, -2).contiguous().transpose(-1, -2)


def _strided(t):
    """Same values every other element of a buffer whose gaps hold NaN."""
    return torch.stack([t, torch.full_like(t, float("nan"))], -1)[..., 0]


def _batch_broadcast(t):
    """Batch element 0 broadcast over the batch with stride 0 (like MLPMemory.reset)."""
    return t[:1].expand_as(t)


LAYOUTS = {"transposed": _transposed, "strided": _strided, "batch_broadcast": _batch_broadcast}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("op, rule", OP_RULES)
def test_noncontiguous_inputs(device, op, rule, layout):
    dtype = native_dtype(device)
    inp = op_inputs(op, LAYOUT_SHAPE, rule=rule, activation="sigmoid", beta_form="per_layer",
                    alpha="tensor", recon=True, dtype=dtype, device=device)
    strided = inp.map(LAYOUTS[layout])
    assert not any(t.is_contiguous() for t in strided.tensors())
    contiguous = strided.map(lambda t: t.contiguous())
    got = run_fused(op, strided)
    assert_no_nan(got)
    assert_outputs_close(got, run_fused(op, contiguous), **same_result_tol(dtype))


@pytest.mark.parametrize("op, rule", OP_RULES)
def test_inputs_not_modified(device, op, rule):
    inp = op_inputs(op, LAYOUT_SHAPE, rule=rule, beta_form="per_layer", alpha="tensor",
                    recon=True, dtype=torch.float32, device=device)
    before = [t.clone() for t in inp.tensors()]
    run_fused(op, inp)
    for name, t, b in zip(inp.tensor_names(), inp.tensors(), before):
        assert torch.equal(t, b), f"{op} modified its input {name}"


# -- empty sizes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("op, rule", OP_RULES)
def test_empty_batch(device, op, rule):
    shape = Shape(B=0, H=2, Hr=3, widths=(4, 5, 6), T=3)
    inp = op_inputs(op, shape, rule=rule, recon=True, dtype=torch.float32, device=device)
    got = run_fused(op, inp)
    want = run_reference(op, inp)
    assert_outputs_close(got, want)


@pytest.mark.parametrize("op, rule", OP_RULES)
def test_zero_read_heads(device, op, rule):
    """Hr = 0: reads [B, 0, n_L] (or [B, T, 0, n_L]); the write still happens."""
    shape = Shape(B=2, H=2, Hr=0, widths=(4, 5, 6), T=3)
    inp = op_inputs(op, shape, rule=rule, recon=True, dtype=torch.float32, device=device)
    got = run_fused(op, inp)
    assert_no_nan(got)
    assert_outputs_close(got, run_reference(op, inp))


@pytest.mark.parametrize("recon", [False, True], ids=["no_recon_values", "recon_values"])
@pytest.mark.parametrize("rule", RULES)
def test_scan_zero_steps(device, rule, recon):
    """T = 0: no reads, the final weights are the initial weights, recon [B, 0] when asked."""
    shape = Shape(B=2, H=2, Hr=3, widths=(4, 5, 6), T=0)
    inp = make_inputs(shape, rule=rule, time=True, recon=recon, dtype=torch.float32,
                      device=device)
    got = run_fused("scan", inp)
    assert got["reads"].shape == (2, 0, 3, 6)
    for l, w in enumerate(inp.weights):
        assert torch.equal(got[f"weights[{l}]"], w)
    if rule == "grad" or recon:
        assert got["recon"].shape == (2, 0)
    else:
        assert got["recon"] is None


@pytest.mark.parametrize("op", ["write", "step", "scan"])
def test_float_beta_broadcasts(device, op):
    """A float beta means the same rate everywhere: [B] for write / step, [B, T] for a scan."""
    time = op == "scan"
    shape = Shape(B=2, H=3, Hr=2, widths=(5, 4, 6), T=5 if time else 1)
    inp = make_inputs(shape, rule="grad", time=time, dtype=native_dtype(device), device=device)
    as_float = run_fused(op, dataclasses.replace(inp, beta=0.25))
    as_tensor = run_fused(op, dataclasses.replace(inp, beta=torch.full_like(inp.beta, 0.25)))
    assert as_float.keys() == as_tensor.keys()
    for k in as_tensor:
        if as_tensor[k] is None:
            assert as_float[k] is None
        else:
            torch.testing.assert_close(as_float[k], as_tensor[k], rtol=0, atol=0)
