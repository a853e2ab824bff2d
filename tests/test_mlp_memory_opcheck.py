"""torch.library.opcheck of every memory_ext op (schema, fake kernel, autograd registration,
AOT dispatch), and torch.compile(fullgraph=True) through the public functions."""
import dataclasses

import pytest
import torch

from _inputs import RULES, Shape, make_inputs, op_inputs, weighted_loss

import memory_ext

# opcheck's test_schema goes through torch.jit, which warns that it is deprecated
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

OPS = torch.ops.memory_ext
SHAPE = Shape(B=2, H=2, Hr=3, widths=(4, 3, 5), T=3)
CKPT = 2
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
# "full": every optional input given (alpha [B], recon_values, beta per layer);
# "minimal": alpha and recon_values None, beta per batch element.
VARIANTS = {"full": dict(beta_form="per_layer", alpha="tensor", recon=True),
            "minimal": dict(beta_form="per_batch", alpha="none", recon=False)}


def _targets(inp):
    return inp.targets if isinstance(inp.targets, list) else [inp.targets]


def _schema_args(op, inp):
    """Positional arguments of torch.ops.memory_ext.mlp_memory_<op>, every one spelled out."""
    if op == "read":
        return (inp.weights, inp.read_keys, inp.activation)
    common = (inp.weights, inp.write_keys, _targets(inp), inp.beta)
    if op == "write":
        return (*common, inp.alpha, inp.rule, inp.activation)
    step = (*common, inp.read_keys, inp.alpha, inp.recon_values, inp.rule, inp.activation)
    return step if op == "step" else (*step, CKPT)


def _skip_f64_on_cuda(device, dtype):
    if dtype == torch.float64 and torch.device(device).type == "cuda":
        pytest.skip("the CUDA kernels are float32 only")


OP_RULES = [pytest.param("read", "local", id="read")] + [
    pytest.param(op, rule, id=f"{op}-{rule}") for op in ("write", "step", "scan") for rule in RULES]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, rule", OP_RULES)
def test_opcheck_public_ops(device, op, rule, dtype, variant):
    """requires_grad inputs, so test_autograd_registration and test_aot_dispatch_dynamic run
    the registered backward."""
    _skip_f64_on_cuda(device, dtype)
    inp = op_inputs(op, SHAPE, rule=rule, activation="tanh", dtype=dtype, device=device,
                    **VARIANTS[variant]).requires_grad_()
    torch.library.opcheck(getattr(OPS, f"mlp_memory_{op}").default, _schema_args(op, inp))


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck_read_backward(device, dtype):
    _skip_f64_on_cuda(device, dtype)
    inp = op_inputs("read", SHAPE, dtype=dtype, device=device)
    grad_reads = torch.randn(SHAPE.B, SHAPE.Hr, SHAPE.widths[-1], dtype=dtype, device=device)
    torch.library.opcheck(OPS._mlp_memory_read_bwd.default,
                          (inp.weights, inp.read_keys, grad_reads, "sigmoid"))


# which upstream gradients reach the scan backward
UPSTREAM = {"all": ("reads", "final", "recon"), "reads_only": ("reads",),
            "final_only": ("final",)}
BWD_VARIANTS = {"full": VARIANTS["full"],
                "no_alpha": dict(beta_form="per_batch", alpha="none", recon=True),
                "no_recon_values": dict(beta_form="per_layer", alpha="tensor", recon=False)}


def _opcheck_scan_backward(device, rule, dtype, variant, upstream):
    inp = make_inputs(SHAPE, rule=rule, activation="tanh", time=True, dtype=dtype,
                      device=device, **variant)
    reads, final, recon, ckpts = OPS.mlp_memory_scan(*_schema_args("scan", inp))
    has_recon = recon.numel() > 0
    wanted = UPSTREAM[upstream]
    g_reads = torch.randn_like(reads) if "reads" in wanted else None
    g_final = [torch.randn_like(w) for w in final] if "final" in wanted else []
    g_recon = torch.randn_like(recon) if ("recon" in wanted and has_recon) else None
    torch.library.opcheck(
        OPS._mlp_memory_scan_bwd.default,
        (list(ckpts), inp.write_keys, _targets(inp), inp.beta, inp.read_keys, inp.alpha,
         inp.recon_values, g_reads, g_final, g_recon, inp.rule, inp.activation, CKPT))


@pytest.mark.parametrize("upstream", list(UPSTREAM))
@pytest.mark.parametrize("variant", list(BWD_VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", RULES)
def test_opcheck_scan_backward(device, rule, dtype, variant, upstream):
    _skip_f64_on_cuda(device, dtype)
    _opcheck_scan_backward(device, rule, dtype, BWD_VARIANTS[variant], upstream)


def test_opcheck_scan_backward_without_alpha_and_recon_values():
    _opcheck_scan_backward("cpu", "local", torch.float32, VARIANTS["minimal"], "all")


# -- torch.compile ----------------------------------------------------------------------------
def _step_then_scan(weights, kw, values, beta, kr, alpha, recon_values, kw2, values2, beta2, kr2):
    weights, reads1, recon1 = memory_ext.mlp_memory_step(
        weights, kw, values, beta, kr, rule="grad", activation="tanh", alpha=alpha,
        recon_values=recon_values)
    reads2, final, recon2 = memory_ext.mlp_memory_scan(
        weights, kw2, values2, beta2, kr2, rule="grad", activation="tanh", alpha=alpha,
        checkpoint_every=2)
    return {"reads1": reads1, "recon1": recon1, "reads2": reads2, "recon2": recon2,
            **{f"final[{l}]": w for l, w in enumerate(final)}}


def test_compile_fullgraph_step_then_scan(device):
    """Forward and backward of a compiled function (inductor, CPU) equal eager."""
    kw = dict(rule="grad", activation="tanh", dtype=torch.float32, device=device)
    step_in = make_inputs(SHAPE, beta_form="per_layer", alpha="tensor", recon=True, seed=1, **kw)
    scan_in = make_inputs(dataclasses.replace(SHAPE, T=5), time=True, seed=2, **kw)

    def run(fn):
        a, b = step_in.requires_grad_(), scan_in.requires_grad_()
        out = fn(a.weights, a.write_keys, a.targets, a.beta, a.read_keys, a.alpha,
                 a.recon_values, b.write_keys, b.targets, b.beta, b.read_keys)
        g = torch.Generator().manual_seed(3)
        cot = {k: torch.randn(v.shape, generator=g).to(device) for k, v in out.items()}
        leaves = a.tensors() + b.tensors()[SHAPE.L:]
        return out, torch.autograd.grad(weighted_loss(out, cot), leaves)

    torch._dynamo.reset()
    try:
        compiled_out, compiled_grads = run(torch.compile(_step_then_scan, fullgraph=True))
    finally:
        torch._dynamo.reset()
    eager_out, eager_grads = run(_step_then_scan)
    assert compiled_out.keys() == eager_out.keys()
    for name in eager_out:
        torch.testing.assert_close(compiled_out[name], eager_out[name], msg=name)
    for g_c, g_e in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(g_c, g_e)
