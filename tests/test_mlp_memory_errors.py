"""Bad inputs raise a clear error that names the argument and the expected shape, and leave
every input untouched."""
import re
from dataclasses import replace

import pytest
import torch

from _inputs import Shape, op_inputs, run_fused

# B=2, H=3, Hr=2, n = (4, 5, 6): every size distinct, so a message's numbers are unambiguous.
SHAPE = Shape(B=2, H=3, Hr=2, widths=(4, 5, 6), T=3)


def _cat_first(t, dim):
    """t with its first slice along dim repeated once more (one size bigger along dim)."""
    return torch.cat([t, t.narrow(dim, 0, 1)], dim)


def case(id, op, mutate, exc, message, rule="local", extra=None):
    """message: the literal text the error must contain."""
    return pytest.param(op, rule, mutate, exc, re.escape(message), extra or {}, id=id)


CASES = [
    # rank and sizes
    case("write_keys-rank", "step", lambda i: replace(i, write_keys=i.write_keys[:, 0]),
         RuntimeError, "write_keys must be [B, H, n_0], got [2, 4]"),
    case("write_keys-rank-scan", "scan", lambda i: replace(i, write_keys=i.write_keys[:, 0]),
         RuntimeError, "write_keys must be [B, T, H, n_0], got [2, 3, 4]"),
    case("read-keys-rank", "read", lambda i: replace(i, read_keys=i.read_keys[:, 0]),
         RuntimeError, "keys must be [B, H, n_0], got [2, 4]"),
    case("write_keys-B-mismatch", "step",
         lambda i: replace(i, write_keys=_cat_first(i.write_keys, 0)),
         RuntimeError, "write_keys must be [B, H, n_0] = [2, 3, 4], got [3, 3, 4]"),
    case("read_keys-B-mismatch", "step", lambda i: replace(i, read_keys=i.read_keys[:1]),
         RuntimeError, "read_keys must be [B, Hr, n_0] = [2, 2, 4], got [1, 2, 4]"),
    case("targets-H-mismatch", "step",
         lambda i: replace(i, targets=[i.targets[0][:, :2], i.targets[1]]),
         RuntimeError, "targets[0] must be [B, H, n_1] = [2, 3, 5], got [2, 2, 5]"),
    case("values-H-mismatch-scan", "scan", lambda i: replace(i, targets=i.targets[:, :, :2]),
         RuntimeError, "targets must be [B, T, H, n_2] = [2, 3, 3, 6], got [2, 3, 2, 6]",
         rule="grad"),
    case("write_keys-width", "step",
         lambda i: replace(i, write_keys=_cat_first(i.write_keys, -1)),
         RuntimeError, "write_keys must be [B, H, n_0] = [2, 3, 4], got [2, 3, 5]"),
    case("read-keys-width", "read", lambda i: replace(i, read_keys=i.read_keys[..., :3]),
         RuntimeError, "keys must be [B, H, n_0] = [2, 2, 4], got [2, 2, 3]"),
    case("recon_values-width", "step",
         lambda i: replace(i, recon_values=i.recon_values[..., :5]),
         RuntimeError, "recon_values must be [B, H, n_2] = [2, 3, 6], got [2, 3, 5]"),
    case("weights-chain", "step",
         lambda i: replace(i, weights=[i.weights[0], i.weights[1][..., :4]]),
         RuntimeError, "weights[1] must be [B, n_2, n_1] = [2, 6, 5], got [2, 6, 4]"),
    case("weights-rank", "write", lambda i: replace(i, weights=[i.weights[0][0], i.weights[1]]),
         RuntimeError, "weights[0] must be [B, n_1, n_0], got [5, 4]"),
    case("targets-count-local", "write", lambda i: replace(i, targets=i.targets[:1]),
         RuntimeError, "targets must be a list of 2 tensors (one per layer"),
    case("targets-tensor-local", "step", lambda i: replace(i, targets=i.targets[0]),
         TypeError, "targets must be a list of L tensors [B, H, n_l] (l = 1..L) for rule 'local'"),
    case("layers-5", "read", lambda i: replace(i, weights=[i.weights[0][:, :4]] * 5),
         RuntimeError, "weights must be a list of 1 to 4 tensors (one per layer), got 5"),
    case("layers-0", "read", lambda i: replace(i, weights=[]),
         RuntimeError, "weights must be a list of 1 to 4 tensors (one per layer), got 0"),
    case("weights-not-a-list", "read", lambda i: replace(i, weights=i.weights[0]),
         TypeError, "weights must be a list of L tensors [B, n_(l+1), n_l], got Tensor"),
    # rates
    case("beta-B-mismatch", "step", lambda i: replace(i, beta=_cat_first(i.beta, 0)),
         RuntimeError, "beta must be [B] = [2] or [B, L] = [2, 2], got [3]"),
    case("beta-L-mismatch", "step",
         lambda i: replace(i, beta=_cat_first(i.beta[:, None].expand(2, 2), 1)),
         RuntimeError, "beta must be [B, L] = [2, 2], got [2, 3]"),
    case("beta-T-mismatch-scan", "scan", lambda i: replace(i, beta=_cat_first(i.beta, 1)),
         RuntimeError, "beta must be [B, T] = [2, 3] or [B, T, L] = [2, 3, 2], got [2, 4]"),
    case("beta-no-time-scan", "scan", lambda i: replace(i, beta=i.beta[:, 0]),
         RuntimeError, "beta must be [B, T] = [2, 3] or [B, T, L] = [2, 3, 2], got [2]"),
    case("alpha-1.0", "write", lambda i: replace(i, alpha=1.0),
         ValueError, "alpha must be in [0, 1), got 1.0"),
    case("alpha-negative", "step", lambda i: replace(i, alpha=-0.1),
         ValueError, "alpha must be in [0, 1), got -0.1"),
    case("alpha-shape", "write", lambda i: replace(i, alpha=torch.full((3,), 0.1)),
         RuntimeError, "alpha must be [B] = [2], got [3]"),
    # dtypes
    case("int64-everything", "read", lambda i: i.map(lambda t: t.long()),
         RuntimeError, "weights[0] must be float32 or float64, got Long"),
    case("int64-write_keys", "step", lambda i: replace(i, write_keys=i.write_keys.long()),
         RuntimeError, "write_keys must have dtype Float like weights[0], got Long"),
    case("float16", "scan", lambda i: i.map(lambda t: t.half()),
         RuntimeError, "weights[0] must be float32 or float64, got Half"),
    case("mixed-read_keys-f64", "step", lambda i: replace(i, read_keys=i.read_keys.double()),
         RuntimeError, "read_keys must have dtype Float like weights[0], got Double"),
    case("mixed-weights-f64", "write",
         lambda i: replace(i, weights=[i.weights[0], i.weights[1].double()]),
         RuntimeError, "weights[1] must have dtype Float like weights[0], got Double"),
    # strings and ints
    case("unknown-activation", "step", lambda i: replace(i, activation="gelu"),
         RuntimeError, "activation must be one of 'tanh', 'sigmoid', 'relu', 'identity', "
                       "got 'gelu'"),
    case("unknown-activation-read", "read", lambda i: replace(i, activation="gelu"),
         RuntimeError, "activation must be one of 'tanh', 'sigmoid', 'relu', 'identity', "
                       "got 'gelu'"),
    case("unknown-rule", "scan", lambda i: replace(i, rule="hebb"),
         ValueError, "rule must be 'local' or 'grad', got 'hebb'"),
    case("checkpoint_every-0", "scan", lambda i: i,
         ValueError, "checkpoint_every must be an int >= 1, got 0",
         extra={"checkpoint_every": 0}),
]


@pytest.mark.parametrize("op, rule, mutate, exc, match, extra", CASES)
def test_bad_input_raises_clear_error(op, rule, mutate, exc, match, extra):
    inp = mutate(op_inputs(op, SHAPE, rule=rule, recon=True, dtype=torch.float32))
    before = [t.clone() for t in inp.tensors()]
    with pytest.raises(exc, match=match):
        run_fused(op, inp, **extra)
    for t, b in zip(inp.tensors(), before):
        assert torch.equal(t, b), "a failed call modified its inputs"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_inputs_on_two_devices_raise():
    inp = op_inputs("step", SHAPE, dtype=torch.float32, device="cuda")
    with pytest.raises(RuntimeError, match=r"read_keys must be on cuda:\d like weights\[0\]"):
        run_fused("step", replace(inp, read_keys=inp.read_keys.cpu()))
