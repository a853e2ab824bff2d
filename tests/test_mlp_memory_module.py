"""memory_ext.MLPMemory: the nn.Module front of the MLP memory."""
import dataclasses

import pytest
import torch

from _inputs import F64_TOL, RULES, Shape, make_inputs, run_reference

from memory_ext import MLPMemory

SHAPE = Shape(B=3, H=2, Hr=4, widths=(6, 8, 5), T=7)


def _memory(rule, *, learnable=True, device="cpu", dtype=torch.float64, **kw):
    torch.manual_seed(0)
    return MLPMemory(SHAPE.widths, rule=rule, activation="tanh", learnable=learnable,
                     **kw).to(device=device, dtype=dtype)


def _inputs(rule, *, time, device="cpu", dtype=torch.float64, recon=False, seed=0):
    return make_inputs(SHAPE, rule=rule, activation="tanh", time=time, recon=recon,
                       dtype=dtype, device=device, seed=seed)


@pytest.mark.parametrize("rule", RULES)
def test_step_and_scan_shapes(device, rule):
    mem = _memory(rule, device=device, dtype=torch.float32)
    mem.reset(SHAPE.B)
    B, H, Hr, (n0, n1, n2), T = SHAPE.B, SHAPE.H, SHAPE.Hr, SHAPE.widths, SHAPE.T
    assert [tuple(w.shape) for w in mem.weights] == [(B, n1, n0), (B, n2, n1)]

    s = _inputs(rule, time=False, device=device, dtype=torch.float32)
    reads, recon = mem.step(s.write_keys, s.targets, s.beta, s.read_keys)
    assert reads.shape == (B, Hr, n2)
    assert (recon is None) if rule == "local" else (recon.shape == (B,))

    q = _inputs(rule, time=True, device=device, dtype=torch.float32)
    reads, recon = mem.scan(q.write_keys, q.targets, q.beta, q.read_keys, checkpoint_every=3)
    assert reads.shape == (B, T, Hr, n2)
    assert (recon is None) if rule == "local" else (recon.shape == (B, T))
    assert [tuple(w.shape) for w in mem.weights] == [(B, n1, n0), (B, n2, n1)]


@pytest.mark.parametrize("rule", RULES)
def test_learnable_initial_weights_get_reference_gradients_through_scan(rule):
    mem = _memory(rule)
    params = dict(mem.named_parameters())
    assert sorted(params) == ["w0_0", "w0_1"]
    q = _inputs(rule, time=True, recon=True)
    mem.reset(SHAPE.B)
    reads, recon = mem.scan(q.write_keys, q.targets, q.beta, q.read_keys,
                            recon_values=q.recon_values, checkpoint_every=3)
    (reads.square().sum() + recon.sum() + sum(w.sum() for w in mem.weights)).backward()

    w0 = [p.detach().clone().requires_grad_() for p in mem.initial_weights()]
    expanded = [w.unsqueeze(0).expand(SHAPE.B, -1, -1) for w in w0]
    ref = run_reference("scan", dataclasses.replace(q, weights=expanded))
    loss = ref["reads"].square().sum() + ref["recon"].sum() + sum(
        ref[f"weights[{l}]"].sum() for l in range(SHAPE.L))
    want = torch.autograd.grad(loss, w0)
    for p, g in zip(mem.initial_weights(), want):
        assert p.grad is not None and p.grad.abs().sum() > 0
        torch.testing.assert_close(p.grad, g, **F64_TOL)


def test_fixed_initial_weights_are_buffers():
    mem = _memory("grad", learnable=False)
    assert list(mem.parameters()) == []
    assert sorted(name for name, _ in mem.named_buffers()) == ["w0_0", "w0_1"]
    assert sorted(mem.state_dict()) == ["w0_0", "w0_1"]
    q = _inputs("grad", time=True)
    mem.reset(SHAPE.B)
    reads, recon = mem.scan(q.write_keys, q.targets, q.beta, q.read_keys)
    assert not reads.requires_grad and not recon.requires_grad


@pytest.mark.parametrize("detach", [False, True], ids=["no_detach", "detach"])
def test_detach_cuts_the_graph(detach):
    """Without detach() the second scan's loss reaches W_0 through the first scan; with it,
    nothing before the cut gets a gradient."""
    mem = _memory("local")
    first, second = _inputs("local", time=True, seed=1), _inputs("local", time=True, seed=2)
    kw1 = first.write_keys.clone().requires_grad_()
    mem.reset(SHAPE.B)
    mem.scan(kw1, first.targets, first.beta, first.read_keys, checkpoint_every=3)
    if detach:
        mem.detach()
        assert not any(w.requires_grad for w in mem.weights)
    kr2 = second.read_keys.clone().requires_grad_()   # so there is a graph to backward
    reads, _ = mem.scan(second.write_keys, second.targets, second.beta, kr2,
                        checkpoint_every=3)
    reads.sum().backward()
    assert kr2.grad is not None
    if detach:
        assert kw1.grad is None
        assert all(p.grad is None for p in mem.parameters())
    else:
        assert kw1.grad is not None and kw1.grad.abs().sum() > 0
        assert all(p.grad is not None for p in mem.parameters())


@pytest.mark.parametrize("method", ["step", "scan"])
def test_step_before_reset_raises(method):
    mem = _memory("local")
    q = _inputs("local", time=(method == "scan"))
    with pytest.raises(RuntimeError, match=r"call reset\(batch_size\) before step / scan"):
        getattr(mem, method)(q.write_keys, q.targets, q.beta, q.read_keys)


@pytest.mark.parametrize("rule", RULES)
def test_scan_equals_repeated_steps(rule):
    q = _inputs(rule, time=True, recon=True)
    by_scan, by_step = _memory(rule), _memory(rule)
    by_scan.reset(SHAPE.B)
    by_step.reset(SHAPE.B)
    reads, recon = by_scan.scan(q.write_keys, q.targets, q.beta, q.read_keys,
                                recon_values=q.recon_values, checkpoint_every=4)
    steps = []
    for t in range(SHAPE.T):
        s = q.at_step(t)
        steps.append(by_step.step(s.write_keys, s.targets, s.beta, s.read_keys,
                                  recon_values=s.recon_values))
    torch.testing.assert_close(reads, torch.stack([r for r, _ in steps], 1), **F64_TOL)
    torch.testing.assert_close(recon, torch.stack([c for _, c in steps], 1), **F64_TOL)
    for a, b in zip(by_scan.weights, by_step.weights):
        torch.testing.assert_close(a, b, **F64_TOL)


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=[4]), "widths must list 2 to 5 positive widths"),
    (dict(widths=[4, 4, 4, 4, 4, 4]), "widths must list 2 to 5 positive widths"),
    (dict(widths=[4, 0, 4]), "widths must list 2 to 5 positive widths"),
    (dict(widths=[4, 4], rule="hebb"), "rule must be 'local' or 'grad'"),
], ids=["one-width", "six-widths", "zero-width", "unknown-rule"])
def test_bad_construction_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPMemory(**kwargs)


def test_reset_needs_a_positive_batch():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        _memory("local").reset(0)
