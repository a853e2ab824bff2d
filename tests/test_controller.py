"""MNMController and MemoryTransformerBlock: the fused path against a loop built from
memory_ext.reference ops, state carried across calls, reset / detach, bad input."""
import copy

import pytest
import torch

import memory_ext
import memory_ext.nn.mnm_sequence  # noqa: F401  (monkeypatched below)
from memory_ext import reference
from memory_ext.nn.controller import MemoryTransformerBlock, MNMController, mnm_loss


def _assert_same_grads(loss, module, loss_ref, module_ref, **tol):
    """The gradients of every parameter of module and module_ref agree within tol."""
    g = torch.autograd.grad(loss, list(module.parameters()))
    g_ref = torch.autograd.grad(loss_ref, list(module_ref.parameters()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, **tol)


def _reference_loop(ctl: MNMController, x: torch.Tensor):
    """The MNM forward written out with reference.mlp_write / mlp_read / recon_loss."""
    mem = ctl.memory
    B, T = x.shape[:2]
    n0, nL, H = mem.widths[0], mem.widths[-1], mem.heads
    W = [w.unsqueeze(0).expand(B, -1, -1) for w in mem.w0]
    h = x.new_zeros(B, ctl.lstm.hidden_size)
    c, reads = h, x.new_zeros(B, H * nL)
    ys, recons = [], []
    for t in range(T):
        h, c = ctl.lstm(torch.cat([x[:, t], reads], -1), (h, c))
        z = torch.tanh(mem.interact(h))
        beta = torch.sigmoid(mem.beta(z[:, : mem.n_beta]))[:, 0]
        heads = z[:, mem.n_beta:].reshape(B, H, 2 * n0 + nL)
        k_w, v_w, k_r = heads[..., :n0], heads[..., n0: n0 + nL], heads[..., n0 + nL:]
        targets = v_w if mem.rule == "grad" else [m(v_w) for m in mem.targets]
        W = reference.mlp_write(W, k_w, targets, beta, rule=mem.rule, activation=mem.activation)
        reads = reference.mlp_read(W, k_r, mem.activation).reshape(B, H * nL)
        recons.append(reference.recon_loss(W, k_w, v_w, mem.activation))
        ys.append(ctl.out(torch.cat([h, reads], -1)))
    return torch.stack(ys, 1), torch.stack(recons, 1)


@pytest.mark.parametrize("rule", ["local", "grad"])
@pytest.mark.parametrize("heads", [1, 2])
def test_mnm_controller_matches_reference_loop(rule, heads):
    torch.manual_seed(0)
    ctl = MNMController(6, 12, 5, memory_widths=[8, 10, 7], heads=heads, rule=rule).double()
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    y, recon = ctl(x)
    y_ref, recon_ref = _reference_loop(ctl, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(recon, recon_ref, rtol=1e-10, atol=1e-10)
    _assert_same_grads(mnm_loss(y.square().mean(), recon, 0.3), ctl,
                       mnm_loss(y_ref.square().mean(), recon_ref, 0.3), ctl, rtol=1e-8, atol=1e-10)


def test_mnm_controller_float32_and_reference_impl_agree():
    torch.manual_seed(1)
    fused = MNMController(4, 16, 3, memory_widths=[8, 16, 8])
    ref = copy.deepcopy(fused)
    ref.memory.impl = "reference"
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(fused(x)[0], ref(x)[0], rtol=1e-4, atol=1e-5)


def test_state_carries_across_calls_and_reset_forgets():
    torch.manual_seed(2)
    ctl = MNMController(4, 8, 3, memory_widths=[6, 6]).double()
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    whole, _ = ctl(x)
    ctl.reset()
    first, _ = ctl(x[:, :3])
    second, _ = ctl(x[:, 3:])
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-12, atol=1e-12)
    ctl.reset()
    fresh, _ = ctl(x[:, 3:])
    assert not torch.allclose(fresh, second)  # the memory written in the first call matters
    with pytest.raises(ValueError, match="call reset"):
        ctl(torch.randn(3, 2, 4, dtype=torch.float64))


def test_detach_cuts_history_but_keeps_values():
    torch.manual_seed(3)
    ctl = MNMController(4, 8, 3, memory_widths=[6, 6])
    x = torch.randn(2, 4, 4, requires_grad=True)
    ctl(x)
    ctl.detach()
    assert all(not w.requires_grad for w in ctl.state["W"])
    y, _ = ctl(torch.randn(2, 3, 4))
    y.sum().backward()
    assert x.grad is None  # nothing flowed back into the first call


def test_controller_bad_input():
    with pytest.raises(ValueError, match="x must be \\[B, T, 4\\]"):
        MNMController(4, 8, 3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="rule must be"):
        MNMController(4, 8, 3, rule="hebb")
    with pytest.raises(ValueError, match="impl must be"):
        MNMController(4, 8, 3, impl="cuda")
    with pytest.raises(ValueError, match="memory_widths"):
        MNMController(4, 8, 3, memory_widths=[8])


@pytest.mark.parametrize("rule", ["local", "grad"])
def test_memory_transformer_block_fused_vs_reference(rule):
    torch.manual_seed(4)
    blk = MemoryTransformerBlock(8, 5, nhead=2, memory_widths=[6, 10, 6], rule=rule).double().eval()
    ref = copy.deepcopy(blk)
    ref.memory.impl = "reference"
    xs = [torch.randn(2, 5, 8, dtype=torch.float64) for _ in range(2)]
    for x in xs:  # the memory carries over between the calls
        (y, r), (y_ref, r_ref) = blk(x), ref(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(r, r_ref, rtol=1e-10, atol=1e-10)
    g = torch.autograd.grad(y.sum() + r.sum(), list(blk.parameters()), allow_unused=True)
    g_ref = torch.autograd.grad(y_ref.sum() + r_ref.sum(), list(ref.parameters()), allow_unused=True)
    for a, b in zip(g, g_ref):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    blk.reset()
    y_fresh, _ = blk(xs[1])
    assert not torch.allclose(y_fresh, y)


def test_public_names():
    assert memory_ext.MNMController is MNMController
    assert memory_ext.MemoryTransformerBlock is MemoryTransformerBlock


def test_reference_grad_write_is_the_partial_derivative():
    """Keys made from an earlier read of the same W must not add a path through W (this was a
    bug of reference.mlp_write that the controller tests found)."""
    torch.manual_seed(5)
    W = [torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)]
    k0 = torch.randn(2, 1, 4, dtype=torch.float64)
    keys = torch.tanh(reference.mlp_read(W, k0, "identity")[..., :4])  # depends on W
    v = torch.randn(2, 1, 6, dtype=torch.float64)
    beta = torch.full((2,), 0.5, dtype=torch.float64)
    new = reference.mlp_write(W, keys, v, beta, rule="grad")
    held = reference.mlp_write([W[0].detach()], keys.detach(), v, beta, rule="grad")
    torch.testing.assert_close(new[0], held[0], rtol=1e-12, atol=1e-12)
    fused = memory_ext.mlp_memory_write(W, keys, v, beta, rule="grad")
    torch.testing.assert_close(fused[0], new[0], rtol=1e-12, atol=1e-12)


def test_masked_steps_leave_the_state_alone():
    torch.manual_seed(6)
    ctl = MNMController(4, 8, 3, memory_widths=[6, 6]).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [False, False, True, True, True]])
    y, recon = ctl(x, mask)
    ctl.reset()
    y1, _ = ctl(x[1:, 2:])
    torch.testing.assert_close(y[1, 2:], y1[0], rtol=1e-12, atol=1e-12)
    assert (y[1, :2] == 0).all() and (recon[1, :2] == 0).all()
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        ctl(x, mask.long())


@pytest.mark.parametrize("checkpoint_every", [32, 2])
@pytest.mark.parametrize("rule", ["local", "grad"])
def test_sequence_node_matches_the_step_loop_with_mask_and_carried_state(rule, checkpoint_every,
                                                                         monkeypatch):
    """The fused time loop (one autograd node, hand-written backward, the memory updated in
    place and undone step by step) against the per-step autograd loop: outputs, final state
    and the gradients of x, every parameter and the state carried in from an earlier call
    (which itself needs gradients), with masked steps; checkpoint_every 2 re-anchors the undone
    weights at stored copies."""
    monkeypatch.setattr(memory_ext.nn.mnm_sequence, "CHECKPOINT_EVERY", checkpoint_every)
    torch.manual_seed(7)
    node = MNMController(5, 9, 4, memory_widths=[6, 8, 5], heads=2, rule=rule).double()
    loop = copy.deepcopy(node)
    loop.sequence_node = False
    x1 = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 6) > 0.3
    mask[0, :3] = False
    outs = []
    for ctl in (node, loop):
        ctl.reset()
        y1, r1 = ctl(x1)
        y2, r2 = ctl(x2, mask)
        st = ctl.state
        loss = (y1.square().sum() + 0.3 * r1.sum() + (y2 * torch.linspace(-1, 1, 4, dtype=torch.float64)).sum()
                + r2.sum() + sum((w * w).sum() for w in st["W"]) + st["h"].sum() + st["c"].square().sum()
                + st["reads"].sum())
        grads = torch.autograd.grad(loss, [x1, x2, *ctl.parameters()])
        outs.append((y1, r1, y2, r2, st, grads))
    (y1, r1, y2, r2, st, g), (y1l, r1l, y2l, r2l, stl, gl) = outs
    for a, b in ((y1, y1l), (r1, r1l), (y2, y2l), (r2, r2l), (st["h"], stl["h"]), (st["c"], stl["c"]),
                 (st["reads"], stl["reads"]), *zip(st["W"], stl["W"])):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(g, gl):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_sequence_node_float32_matches_the_reference_memory():
    torch.manual_seed(8)
    node = MNMController(6, 16, 5, memory_widths=[8, 16, 8])
    ref = copy.deepcopy(node)
    ref.memory.impl = "reference"
    x = torch.randn(4, 7, 6)
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[1, :2] = False
    (y, r), (y_ref, r_ref) = node(x, mask), ref(x, mask)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    _assert_same_grads(y.square().mean() + r.mean(), node,
                       y_ref.square().mean() + r_ref.mean(), ref, rtol=1e-3, atol=1e-5)
