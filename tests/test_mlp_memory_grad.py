"""Gradients of the fused MLP memory ops (spec 1.8): gradcheck on tiny shapes, and exact
agreement with autograd through memory_ext.reference (checkpoint recomputation included)."""
import dataclasses

import pytest
import torch

from _inputs import (option_cases, ACTIVATIONS, ALPHA_KINDS, BETA_FORMS, F64_TOL, RULES, Shape,
                     loss_weights, make_inputs, op_inputs, require_float64, run_fused,
                     run_reference, weighted_loss)

import memory_ext

# Tiny: B=2, T=3, H != Hr, odd widths. The scan uses checkpoint_every=2: a full and a partial
# segment, so the backward replays from a stored checkpoint that is not the initial weights.
TINY = Shape(B=2, H=2, Hr=3, widths=(4, 3, 5), T=3)
TINY_CKPT = 2

OP_RULES = [pytest.param("read", "local", id="read")] + [
    pytest.param(op, rule, id=f"{op}-{rule}") for op in ("write", "step", "scan") for rule in RULES]


def _gradcheck(op, inp, **extra):
    """gradcheck of every float input of inp against every output of op (reads, final weights,
    recon), so upstream gradients arrive on all outputs at once."""
    def fn(*tensors):
        out = run_fused(op, inp.with_tensors(tensors), **extra)
        return tuple(t for t in out.values() if t is not None)

    leaves = [t.detach().clone().requires_grad_() for t in inp.tensors()]
    assert torch.autograd.gradcheck(fn, leaves)


def _extra(op, checkpoint_every=TINY_CKPT):
    return {"checkpoint_every": checkpoint_every} if op == "scan" else {}


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("op, rule", OP_RULES)
def test_gradcheck(op, rule, activation):
    """Every activation (relu at a fixed seed whose pre-activations stay away from the kink),
    beta per layer, alpha a tensor, recon_values given: every input gets a gradient."""
    inp = op_inputs(op, TINY, rule=rule, activation=activation, beta_form="per_layer",
                    alpha="tensor", recon=True)
    _gradcheck(op, inp, **_extra(op))


@pytest.mark.parametrize("op, rule, beta_form, alpha, recon", option_cases())
def test_gradcheck_options(op, rule, beta_form, alpha, recon):
    """beta [B] (its gradient sums the layers) and [B, L]; alpha None / float / tensor; rule
    grad without recon_values (recon's gradient then reaches the written values)."""
    inp = op_inputs(op, TINY, rule=rule, activation="tanh", beta_form=beta_form, alpha=alpha,
                    recon=recon)
    _gradcheck(op, inp, **_extra(op))


# -- exact agreement with autograd through the reference ----------------------------------------
MID = Shape(B=2, H=3, Hr=2, widths=(8, 7, 6), T=20)


def _grads(outputs, inputs, cot):
    return torch.autograd.grad(weighted_loss(outputs, cot), inputs.tensors(), allow_unused=True)


def _assert_grads_close(got, want, names):
    assert len(got) == len(want) == len(names)
    for g, w, name in zip(got, want, names):
        if w is None:   # the input does not reach the outputs (e.g. write keys of a read)
            assert g is None or not g.any(), f"nonzero gradient for {name}"
            continue
        assert g is not None, f"no gradient for {name}"
        torch.testing.assert_close(g, w, msg=lambda m: f"d/d{name}: {m}", **F64_TOL)


@pytest.mark.parametrize("checkpoint_every", [1, 3, 7, 16, 32], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("rule", RULES)
def test_scan_grads_match_reference(device, rule, activation, checkpoint_every):
    """The reference keeps every W_t; the fused backward replays segments from checkpoints.
    Their gradients must agree to float64 rounding for any segment length (C=32 > T)."""
    require_float64(device)
    inp = make_inputs(MID, rule=rule, activation=activation, time=True, beta_form="per_layer",
                      alpha="tensor", recon=True, device=device)
    fused_in, ref_in = inp.requires_grad_(), inp.requires_grad_()
    fused = run_fused("scan", fused_in, checkpoint_every=checkpoint_every)
    ref = run_reference("scan", ref_in)
    cot = loss_weights(ref)
    _assert_grads_close(_grads(fused, fused_in, cot), _grads(ref, ref_in, cot),
                        inp.tensor_names())


@pytest.mark.parametrize("output", ["reads", "final_weights", "recon"])
@pytest.mark.parametrize("rule", RULES)
def test_scan_grads_from_one_output(device, rule, output):
    """Upstream gradient on one output only (the others get None from autograd)."""
    require_float64(device)
    inp = make_inputs(MID, rule=rule, activation="sigmoid", time=True, recon=True, device=device)
    fused_in, ref_in = inp.requires_grad_(), inp.requires_grad_()
    fused = run_fused("scan", fused_in, checkpoint_every=6)
    ref = run_reference("scan", ref_in)
    keep = {"reads": ["reads"], "recon": ["recon"],
            "final_weights": [k for k in ref if k.startswith("weights")]}[output]
    cot = {k: v for k, v in loss_weights(ref).items() if k in keep}
    _assert_grads_close(_grads(fused, fused_in, cot), _grads(ref, ref_in, cot),
                        inp.tensor_names())


@pytest.mark.parametrize("checkpoint_every", [1, 5], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("rule", RULES)
def test_chained_scans_grads_match_reference(device, rule, checkpoint_every):
    """Truncated BPTT: a second scan starts from the first scan's final weights; the gradient
    of the second scan's initial weights flows back into the first scan through its final
    weights."""
    require_float64(device)
    first = make_inputs(MID, rule=rule, activation="tanh", time=True, beta_form="per_layer",
                        alpha="tensor", recon=True, device=device, seed=1)
    second = make_inputs(dataclasses.replace(MID, T=9), rule=rule, activation="tanh",
                         time=True, recon=False, device=device, seed=2)

    def chain(run, **extra):
        a, b = first.requires_grad_(), second.requires_grad_()
        out1 = run("scan", a, **extra)
        weights = [out1[f"weights[{l}]"] for l in range(MID.L)]
        out2 = run("scan", dataclasses.replace(b, weights=weights), **extra)
        outputs = {**{f"1:{k}": v for k, v in out1.items() if not k.startswith("weights")},
                   **{f"2:{k}": v for k, v in out2.items()}}
        leaves = a.tensors() + b.tensors()[MID.L:]       # b's weights are not leaves
        return outputs, leaves

    fused, fused_leaves = chain(run_fused, checkpoint_every=checkpoint_every)
    ref, ref_leaves = chain(run_reference)
    cot = loss_weights(ref)
    got = torch.autograd.grad(weighted_loss(fused, cot), fused_leaves)
    want = torch.autograd.grad(weighted_loss(ref, cot), ref_leaves)
    names = ([f"1:{n}" for n in first.tensor_names()]
             + [f"2:{n}" for n in second.tensor_names()[MID.L:]])
    _assert_grads_close(got, want, names)


@pytest.mark.parametrize("op", ["read", "write", "step", "scan"])
def test_backward_with_default_arguments(op):
    """Only the required arguments (default activation, rule, alpha, checkpoint_every): the
    backward must not depend on which arguments the caller spelled out. (Regression: with
    schema defaults, torch.library drops trailing arguments equal to their defaults from the
    call, and a backward returning one gradient per schema argument failed with "Expected the
    return from backward to be of the same structure as the inputs".)"""
    inp = op_inputs(op, TINY, rule="local", activation="tanh")
    fused_in, ref_in = inp.requires_grad_(), inp.requires_grad_()
    if op == "read":
        fused = {"reads": memory_ext.mlp_memory_read(fused_in.weights, fused_in.read_keys)}
    elif op == "write":
        w = memory_ext.mlp_memory_write(fused_in.weights, fused_in.write_keys, fused_in.targets,
                                        fused_in.beta)
        fused = {f"weights[{l}]": x for l, x in enumerate(w)}
    else:
        fn = memory_ext.mlp_memory_step if op == "step" else memory_ext.mlp_memory_scan
        out = fn(fused_in.weights, fused_in.write_keys, fused_in.targets, fused_in.beta,
                 fused_in.read_keys)
        w, reads = (out[0], out[1]) if op == "step" else (out[1], out[0])
        fused = {"reads": reads, **{f"weights[{l}]": x for l, x in enumerate(w)}}
    ref = {k: v for k, v in run_reference(op, ref_in).items() if v is not None}
    assert fused.keys() == ref.keys()
    cot = loss_weights(ref)
    _assert_grads_close(_grads(fused, fused_in, cot), _grads(ref, ref_in, cot),
                        inp.tensor_names())


# -- empty sizes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", RULES)
def test_scan_zero_steps_passes_final_weight_grad_through(rule):
    """T = 0: W_T = W_0, so dJ/dW_0 = dJ/dW_T exactly."""
    inp = make_inputs(dataclasses.replace(TINY, T=0), rule=rule, time=True).requires_grad_()
    out = run_fused("scan", inp)
    finals = [out[f"weights[{l}]"] for l in range(TINY.L)]
    cot = [torch.randn_like(w) for w in finals]
    grads = torch.autograd.grad(sum((w * c).sum() for w, c in zip(finals, cot)), inp.weights)
    for g, c in zip(grads, cot):
        torch.testing.assert_close(g, c, rtol=0, atol=0)


@pytest.mark.parametrize("op, rule", OP_RULES)
def test_empty_batch_backward(op, rule):
    """B = 0: the backward runs and gives gradients shaped like the inputs."""
    inp = op_inputs(op, dataclasses.replace(TINY, B=0), rule=rule, recon=True).requires_grad_()
    out = run_fused(op, inp, **_extra(op))
    loss = sum(t.sum() for t in out.values() if t is not None)
    grads = torch.autograd.grad(loss, inp.tensors(), allow_unused=True)
    for g, t, name in zip(grads, inp.tensors(), inp.tensor_names()):
        if g is not None:
            assert g.shape == t.shape, name
