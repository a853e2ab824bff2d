"""The in-place step ops (_mlp_memory_step_ and _mlp_memory_step_bwd_), used by callers that own
the memory weights (memory_ext/nn/mnm_sequence.py): against the functional mlp_memory_step and its
autograd backward, the undo of a write, opcheck, and bad input."""
import pytest
import torch

from _inputs import RULES, Shape, make_inputs

from memory_ext.ops.mlp_memory import step_saved_numel

# opcheck's test_schema goes through torch.jit, which warns that it is deprecated
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

OPS = torch.ops.memory_ext
SHAPES = [Shape(B=3, H=2, Hr=2, widths=(5, 7, 4)), Shape(B=2, H=1, Hr=3, widths=(6, 3)),
          Shape(B=1, H=3, Hr=1, widths=(4, 9, 6, 5))]


def _args(inp):
    targets = inp.targets if isinstance(inp.targets, list) else [inp.targets]
    return targets, inp.alpha


def _inputs(shape, rule, device, dtype=torch.float64, alpha="tensor", beta_form="per_layer"):
    return make_inputs(shape, rule=rule, beta_form=beta_form, alpha=alpha, recon=True,
                       dtype=dtype, device=device, seed=3)


def _skip_f64_on_cuda(device, dtype):
    if dtype == torch.float64 and torch.device(device).type == "cuda":
        pytest.skip("the CUDA kernels are float32 only")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.id for s in SHAPES])
@pytest.mark.parametrize("rule", RULES)
def test_inplace_step_and_backward_match_the_functional_step(device, rule, shape, dtype):
    _skip_f64_on_cuda(device, dtype)
    inp = _inputs(shape, rule, device, dtype)
    targets, alpha = _args(inp)
    leaves = [t.detach().clone().requires_grad_() for t in inp.tensors()]
    lv = inp.with_tensors(leaves)
    l_targets, l_alpha = _args(lv)
    new_w, reads, recon = OPS.mlp_memory_step(lv.weights, lv.write_keys, l_targets, lv.beta,
                                              lv.read_keys, l_alpha, lv.recon_values, rule, "tanh")
    g_reads, g_recon = torch.randn_like(reads), torch.randn_like(recon)
    g_new = [torch.randn_like(w) for w in new_w]
    want = torch.autograd.grad([reads, recon, *new_w], leaves, [g_reads, g_recon, *g_new])

    W = [w.clone() for w in inp.weights]
    r2, rc2, saved = OPS._mlp_memory_step_(W, inp.write_keys, targets, inp.beta, inp.read_keys,
                                           alpha, inp.recon_values, rule, "tanh")
    tight = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    assert saved.shape == (shape.B, step_saved_numel(W, shape.H))
    torch.testing.assert_close(r2, reads.detach(), **tight)
    torch.testing.assert_close(rc2, recon.detach(), **tight)
    for a, b in zip(W, new_w):  # updated where it is
        torch.testing.assert_close(a, b.detach(), **tight)

    G = [g.clone() for g in g_new]
    g_kw, g_z, g_beta, g_kr, g_alpha, g_rv = OPS._mlp_memory_step_bwd_(
        W, G, saved, inp.write_keys, targets, inp.beta, inp.read_keys, alpha, inp.recon_values,
        g_reads, g_recon, rule, "tanh")
    got = [*G, g_kw, *g_z.split([z.shape[-1] for z in targets], -1), g_beta, g_kr, g_alpha, g_rv]
    for name, a, b in zip(inp.tensor_names(), got, want):
        torch.testing.assert_close(a, b, **tight, msg=lambda m: f"{name}: {m}")
    for a, b in zip(W, inp.weights):  # the write undone: W_{t-1} again
        torch.testing.assert_close(a, b, **tight)


@pytest.mark.parametrize("rule", RULES)
def test_inplace_backward_without_upstream_read_or_recon_grads(device, rule):
    """grad_reads and grad_recon None: only the weights' gradient flows back through the write."""
    inp = _inputs(SHAPES[0], rule, device, torch.float32, alpha="none", beta_form="per_batch")
    targets, alpha = _args(inp)
    leaves = [t.detach().clone().requires_grad_() for t in inp.tensors()]
    lv = inp.with_tensors(leaves)
    new_w, _, _ = OPS.mlp_memory_step(lv.weights, lv.write_keys, _args(lv)[0], lv.beta,
                                      lv.read_keys, None, lv.recon_values, rule, "tanh")
    g_new = [torch.randn_like(w) for w in new_w]
    want = torch.autograd.grad(new_w, leaves, g_new, allow_unused=True)
    W = [w.clone() for w in inp.weights]
    _, _, saved = OPS._mlp_memory_step_(W, inp.write_keys, targets, inp.beta, inp.read_keys,
                                        None, inp.recon_values, rule, "tanh")
    G = [g.clone() for g in g_new]
    g_kw, g_z, g_beta, g_kr, _, g_rv = OPS._mlp_memory_step_bwd_(
        W, G, saved, inp.write_keys, targets, inp.beta, inp.read_keys, None, inp.recon_values,
        None, None, rule, "tanh")
    got = [*G, g_kw, *g_z.split([z.shape[-1] for z in targets], -1), g_beta, g_kr, g_rv]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", RULES)
def test_opcheck_inplace_ops(device, rule):
    inp = _inputs(SHAPES[0], rule, device, torch.float32)
    targets, alpha = _args(inp)
    args = ([w.clone() for w in inp.weights], inp.write_keys, targets, inp.beta, inp.read_keys,
            alpha, inp.recon_values, rule, "tanh")
    torch.library.opcheck(OPS._mlp_memory_step_.default, args)
    W = [w.clone() for w in inp.weights]
    reads, recon, saved = OPS._mlp_memory_step_(*args[:0], W, *args[1:])
    bwd_args = (W, [torch.randn_like(w) for w in W], saved, inp.write_keys, targets, inp.beta,
                inp.read_keys, alpha, inp.recon_values, torch.randn_like(reads),
                torch.randn_like(recon), rule, "tanh")
    torch.library.opcheck(OPS._mlp_memory_step_bwd_.default, bwd_args)


def test_inplace_ops_bad_input():
    inp = _inputs(SHAPES[0], "local", "cpu")
    targets, alpha = _args(inp)
    strided = [w.transpose(1, 2).contiguous().transpose(1, 2) for w in inp.weights]
    with pytest.raises(RuntimeError, match=r"weights\[0\] must be contiguous"):
        OPS._mlp_memory_step_(strided, inp.write_keys, targets, inp.beta, inp.read_keys, alpha,
                              inp.recon_values, "local", "tanh")
    W = [w.clone() for w in inp.weights]
    _, _, saved = OPS._mlp_memory_step_(W, inp.write_keys, targets, inp.beta, inp.read_keys,
                                        alpha, inp.recon_values, "local", "tanh")
    before = [w.clone() for w in W]
    G = [torch.zeros_like(w) for w in W]
    with pytest.raises(RuntimeError, match=r"saved must be \[B, S\]"):
        OPS._mlp_memory_step_bwd_(W, G, saved[:, 1:], inp.write_keys, targets, inp.beta,
                                  inp.read_keys, alpha, inp.recon_values, None, None, "local", "tanh")
    with pytest.raises(RuntimeError, match="grad_weights must hold L = 2"):
        OPS._mlp_memory_step_bwd_(W, G[:1], saved, inp.write_keys, targets, inp.beta,
                                  inp.read_keys, alpha, inp.recon_values, None, None, "local", "tanh")
    for a, b in zip(W, before):  # nothing was touched
        assert torch.equal(a, b)
