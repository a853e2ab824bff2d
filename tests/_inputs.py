"""Input builders and op adaptors shared by the MLP memory tests.

`make_inputs` builds every input of the memory ops (weights, keys, targets or values, beta,
alpha, read keys, recon values) in step shape ([B, H, n]) or scan shape ([B, T, H, n]), on the
CPU from a seeded generator (so every device sees the same numbers), then moves them.
`run_fused` / `run_reference` call one op ("read", "write", "step", "scan") of memory_ext or of
memory_ext.reference on a `MemInputs` and return its outputs as a dict name -> tensor.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import pytest
import torch
from torch import Tensor

import memory_ext
from memory_ext import reference

ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
RULES = ("local", "grad")
OPS = ("read", "write", "step", "scan")
BETA_FORMS = ("per_batch", "per_layer")      # [B] / [B, L]  ([B, T] / [B, T, L] for a scan)
ALPHA_KINDS = ("none", "float", "tensor")    # None, 0.25, [B] tensor
ALPHA_FLOAT = 0.25


@dataclass(frozen=True)
class Shape:
    B: int
    H: int                      # write heads
    Hr: int                     # read heads
    widths: Tuple[int, ...]     # n_0 .. n_L
    T: int = 1                  # time steps (scan only)

    @property
    def L(self) -> int:
        return len(self.widths) - 1

    @property
    def id(self) -> str:
        w = "x".join(str(n) for n in self.widths)
        return f"B{self.B}-H{self.H}-Hr{self.Hr}-n{w}-T{self.T}"


def shape_params(shapes: Sequence[Shape]):
    return [pytest.param(s, id=s.id) for s in shapes]


@dataclass
class MemInputs:
    """Every input of the memory ops. Step shaped (time=False) or scan shaped (time=True)."""
    weights: List[Tensor]
    write_keys: Tensor
    targets: Union[Tensor, List[Tensor]]    # rule local: L tensors; rule grad: values tensor
    beta: Tensor
    read_keys: Tensor
    alpha: Union[None, float, Tensor]
    recon_values: Optional[Tensor]
    rule: str
    activation: str
    time: bool

    def kwargs(self) -> dict:
        return dict(rule=self.rule, activation=self.activation, alpha=self.alpha,
                    recon_values=self.recon_values)

    # -- flat view of every float tensor, for gradcheck and for transformations -----------------
    def tensors(self) -> List[Tensor]:
        out = list(self.weights) + [self.write_keys]
        out += list(self.targets) if isinstance(self.targets, list) else [self.targets]
        out += [self.beta, self.read_keys]
        if isinstance(self.alpha, Tensor):
            out.append(self.alpha)
        if self.recon_values is not None:
            out.append(self.recon_values)
        return out

    def tensor_names(self) -> List[str]:
        L = len(self.weights)
        names = [f"weights[{l}]" for l in range(L)] + ["write_keys"]
        names += ([f"targets[{l}]" for l in range(L)] if isinstance(self.targets, list)
                  else ["values"])
        names += ["beta", "read_keys"]
        if isinstance(self.alpha, Tensor):
            names.append("alpha")
        if self.recon_values is not None:
            names.append("recon_values")
        return names

    def with_tensors(self, ts: Sequence[Tensor]) -> "MemInputs":
        ts = list(ts)
        L = len(self.weights)
        take = lambda n: [ts.pop(0) for _ in range(n)]  # noqa: E731
        weights = take(L)
        (kw,) = take(1)
        targets = take(L) if isinstance(self.targets, list) else take(1)[0]
        beta, kr = take(2)
        alpha = take(1)[0] if isinstance(self.alpha, Tensor) else self.alpha
        rv = take(1)[0] if self.recon_values is not None else None
        assert not ts, "with_tensors got too many tensors"
        return dataclasses.replace(self, weights=weights, write_keys=kw, targets=targets,
                                   beta=beta, read_keys=kr, alpha=alpha, recon_values=rv)

    def map(self, fn) -> "MemInputs":
        return self.with_tensors([fn(t) for t in self.tensors()])

    def requires_grad_(self) -> "MemInputs":
        """Fresh leaves (detached copies) that require grad, for every float input."""
        return self.map(lambda t: t.detach().clone().requires_grad_())

    def at_step(self, t: int) -> "MemInputs":
        """The step-shaped inputs of time step t of a scan-shaped MemInputs."""
        assert self.time
        sl = lambda x: x[:, t]  # noqa: E731
        targets = ([sl(z) for z in self.targets] if isinstance(self.targets, list)
                   else sl(self.targets))
        return dataclasses.replace(
            self, write_keys=sl(self.write_keys), targets=targets, beta=sl(self.beta),
            read_keys=sl(self.read_keys),
            recon_values=None if self.recon_values is None else sl(self.recon_values),
            time=False)


def make_weights(widths: Sequence[int], B: int, *, gen: torch.Generator,
                 dtype=torch.float64, scale: float = 1.0) -> List[Tensor]:
    """W^l ~ N(0, scale^2 / n_l): pre-activations of unit keys have unit variance."""
    return [torch.randn(B, widths[l + 1], widths[l], generator=gen, dtype=dtype)
            * (scale / math.sqrt(widths[l])) for l in range(len(widths) - 1)]


def make_inputs(shape: Shape, *, rule: str = "local", activation: str = "tanh",
                time: bool = False, beta_form: str = "per_batch", alpha: str = "none",
                recon: bool = False, dtype=torch.float64, device="cpu", seed: int = 0,
                beta_range: Tuple[float, float] = (0.05, 0.3)) -> MemInputs:
    """Inputs of unit scale: keys, targets and values ~ N(0, 1), weights from make_weights.
    beta is uniform in beta_range, small enough that 64 writes stay stable (a larger rate
    makes the deep identity / grad-rule memories diverge, in the reference as well).
    alpha: "none" -> None, "float" -> 0.25, "tensor" -> [B] uniform in [0, 0.3)."""
    g = torch.Generator().manual_seed(seed)
    B, H, Hr, L, w = shape.B, shape.H, shape.Hr, shape.L, shape.widths
    lead = (B, shape.T) if time else (B,)
    randn = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    rand = lambda *s: torch.rand(*s, generator=g, dtype=dtype)  # noqa: E731

    weights = make_weights(w, B, gen=g, dtype=dtype)
    write_keys = randn(*lead, H, w[0])
    if rule == "local":
        targets = [randn(*lead, H, w[l + 1]) for l in range(L)]
    elif rule == "grad":
        targets = randn(*lead, H, w[-1])
    else:
        raise ValueError(rule)
    lo, hi = beta_range
    beta_shape = lead + ((L,) if beta_form == "per_layer" else ())
    if beta_form not in BETA_FORMS:
        raise ValueError(beta_form)
    beta = lo + (hi - lo) * rand(*beta_shape)
    read_keys = randn(*lead, Hr, w[0])
    if alpha == "none":
        alpha_v = None
    elif alpha == "float":
        alpha_v = ALPHA_FLOAT
    elif alpha == "tensor":
        alpha_v = 0.3 * rand(B)
    else:
        raise ValueError(alpha)
    recon_values = randn(*lead, H, w[-1]) if recon else None
    inp = MemInputs(weights, write_keys, targets, beta, read_keys, alpha_v, recon_values,
                    rule, activation, time)
    return inp.map(lambda t: t.to(device))


# -- op adaptors ----------------------------------------------------------------------------------
def _named(reads=None, weights=None, recon=None, has_recon=True) -> Dict[str, Optional[Tensor]]:
    out: Dict[str, Optional[Tensor]] = {}
    if reads is not None:
        out["reads"] = reads
    for l, w in enumerate(weights or []):
        out[f"weights[{l}]"] = w
    if has_recon:
        out["recon"] = recon
    return out


FUSED = {"read": memory_ext.mlp_memory_read, "write": memory_ext.mlp_memory_write,
         "step": memory_ext.mlp_memory_step, "scan": memory_ext.mlp_memory_scan}
REFERENCE = {"read": reference.mlp_read, "write": reference.mlp_write,
             "step": reference.mlp_step, "scan": reference.mlp_scan}


def _run(fns, op: str, inp: MemInputs, **extra) -> Dict[str, Optional[Tensor]]:
    """Outputs of fns[op] (same call for the fused ops and the reference) on inp, by name."""
    if op == "read":
        return _named(reads=fns["read"](inp.weights, inp.read_keys, inp.activation),
                      has_recon=False)
    if op == "write":
        return _named(weights=fns["write"](
            inp.weights, inp.write_keys, inp.targets, inp.beta, rule=inp.rule,
            activation=inp.activation, alpha=inp.alpha), has_recon=False)
    if op == "step":
        w, reads, recon = fns["step"](
            inp.weights, inp.write_keys, inp.targets, inp.beta, inp.read_keys, **inp.kwargs())
        return _named(reads, w, recon)
    if op == "scan":
        reads, w, recon = fns["scan"](
            inp.weights, inp.write_keys, inp.targets, inp.beta, inp.read_keys, **inp.kwargs(),
            **extra)
        return _named(reads, w, recon)
    raise ValueError(op)


def run_fused(op: str, inp: MemInputs, **extra) -> Dict[str, Optional[Tensor]]:
    """Outputs of memory_ext.<op> on inp. extra: e.g. checkpoint_every for the scan."""
    return _run(FUSED, op, inp, **extra)


def run_reference(op: str, inp: MemInputs) -> Dict[str, Optional[Tensor]]:
    """Outputs of memory_ext.reference on inp, named like run_fused."""
    return _run(REFERENCE, op, inp)


def op_inputs(op: str, shape: Shape, **kw) -> MemInputs:
    """make_inputs in the shape the op takes (scan-shaped for "scan")."""
    return make_inputs(shape, time=(op == "scan"), **kw)


def assert_outputs_close(got: Dict[str, Optional[Tensor]], want: Dict[str, Optional[Tensor]],
                         **tol) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if want[name] is None:
            assert got[name] is None, f"{name}: expected None, got a tensor"
            continue
        assert got[name] is not None, f"{name}: expected a tensor, got None"
        torch.testing.assert_close(got[name], want[name], msg=lambda m: f"{name}: {m}", **tol)


def loss_weights(outputs: Dict[str, Optional[Tensor]], seed: int = 1) -> Dict[str, Tensor]:
    """Fixed random cotangents, one per output (so every output gets a distinct upstream grad)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g, dtype=v.dtype).to(v.device)
            for k, v in outputs.items() if v is not None}


def weighted_loss(outputs: Dict[str, Optional[Tensor]], cot: Dict[str, Tensor]) -> Tensor:
    return sum((outputs[k] * c).sum() for k, c in cot.items())


# -- dtype and tolerance helpers ------------------------------------------------------------------
F64_TOL = dict(rtol=1e-10, atol=1e-12)   # fused vs reference, float64


def require_float64(device: str) -> None:
    """The CUDA kernels are float32 only (float64 is rejected with an error there)."""
    if torch.device(device).type == "cuda":
        pytest.skip("float64 runs on the CPU only; the CUDA kernels are float32")


def native_dtype(device: str) -> torch.dtype:
    """The most exact dtype a device supports: float64 on the CPU, float32 on CUDA."""
    return torch.float32 if torch.device(device).type == "cuda" else torch.float64


def same_result_tol(dtype: torch.dtype) -> dict:
    """Tolerance for two fused runs that must agree up to float reassociation."""
    return F64_TOL if dtype == torch.float64 else dict(rtol=1.3e-6, atol=1e-5)


def assert_no_nan(outputs: Dict[str, Optional[Tensor]]) -> None:
    for name, t in outputs.items():
        if t is not None:
            assert not torch.isnan(t).any(), f"{name} has NaN (an element the kernel never wrote?)"


def option_cases():
    """(op, rule, beta_form, alpha, recon) parameters over every option of the write ops."""
    out = []
    for op in ("write", "step", "scan"):
        for rule in RULES:
            for beta_form in BETA_FORMS:
                for alpha in ALPHA_KINDS:
                    for recon in ((False,) if op == "write" else (False, True)):
                        rv = "-recon_values" if recon else ""
                        out.append(pytest.param(op, rule, beta_form, alpha, recon,
                                                id=f"{op}-{rule}-beta_{beta_form}-alpha_{alpha}{rv}"))
    return out
