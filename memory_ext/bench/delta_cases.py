"""Benchmark cases of the delta rule (fla layout): our fused recurrent and chunk forms vs the
eager reference loop vs a torch.compile'd reference step run T times vs fla when installed; and
the in-place decoding step."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch

from .. import reference as ref
from .. import delta_rule, delta_rule_step
from .fla_peer import fla_implementations


def _ref_step(S, q, k, v, beta, scale):
    """One step of the reference recurrence: S [B, H, K, V]; q, k [B, H, K]; v [B, H, V]."""
    u = v - torch.einsum("bhk,bhkv->bhv", k, S)
    S = S + beta[..., None, None] * k[..., :, None] * u[..., None, :]
    return S, torch.einsum("bhk,bhkv->bhv", q * scale, S)


@dataclass(frozen=True)
class DeltaCase:
    B: int
    T: int
    H: int
    K: int
    V: int
    modes: Sequence[str] = ("fwd", "fwd+bwd")
    op_name: str = "delta_rule"
    dtype: torch.dtype = torch.float32

    def label(self) -> str:
        dt = "" if self.dtype == torch.float32 else f" {str(self.dtype).replace('torch.', '')}"
        return f"B={self.B} T={self.T} H={self.H} K={self.K} V={self.V} l2norm{dt}"

    def forward_flops(self) -> float:
        """k^T S, the rank-1 update and S^T q: about 6 K V per step and head."""
        return float(6 * self.B * self.T * self.H * self.K * self.V)

    def make_inputs(self, device: str, requires_grad: bool) -> Dict:
        g = torch.Generator(device="cpu").manual_seed(0)
        shape = (self.B, self.T, self.H)
        mk = lambda *s: torch.randn(*s, generator=g).to(device, self.dtype).requires_grad_(requires_grad)  # noqa: E731
        beta = torch.rand(*shape, generator=g).to(device, self.dtype).requires_grad_(requires_grad)
        return dict(q=mk(*shape, self.K), k=mk(*shape, self.K), v=mk(*shape, self.V), beta=beta)

    def leaves(self, i: Dict) -> List[torch.Tensor]:
        return [i["q"], i["k"], i["v"], i["beta"]]

    def loss(self, outputs) -> torch.Tensor:
        o, s = outputs
        return o.square().mean() + s.square().mean()

    def implementations(self, device: str = "cpu") -> Dict[str, Callable[[Dict], tuple]]:
        kw = dict(use_qk_l2norm=True, output_final_state=True)

        def recurrent(i):
            return delta_rule(i["q"], i["k"], i["v"], i["beta"], mode="recurrent", **kw)

        def chunk(i):
            return delta_rule(i["q"], i["k"], i["v"], i["beta"], mode="chunk", **kw)

        def eager(i):
            return ref.delta_rule(i["q"], i["k"], i["v"], i["beta"], **kw)

        step_c = torch.compile(_ref_step, dynamic=False)

        def compiled(i):
            q, k = ref.l2norm(i["q"]), ref.l2norm(i["k"])
            S = q.new_zeros(self.B, self.H, self.K, self.V)
            outs = []
            for t in range(self.T):
                S, o = step_c(S, q[:, t], k[:, t], i["v"][:, t], i["beta"][:, t], self.K ** -0.5)
                outs.append(o)
            return torch.stack(outs, 1), S

        return {"fused-rec": recurrent, "fused-chunk": chunk, "eager": eager,
                "compile": compiled, **fla_implementations(device)}


@dataclass(frozen=True)
class DeltaStepCase:
    """One decoding step, state updated in place (no autograd: forward only)."""
    B: int
    H: int
    K: int
    V: int
    modes: Sequence[str] = ("fwd",)
    op_name: str = "delta_rule_step"

    def label(self) -> str:
        return f"B={self.B} H={self.H} K={self.K} V={self.V}"

    def forward_flops(self) -> float:
        return float(6 * self.B * self.H * self.K * self.V)

    def bytes_moved(self) -> float:
        """The float32 state is read and written once at least (a memory-bound op)."""
        return float(2 * 4 * self.B * self.H * self.K * self.V)

    def make_inputs(self, device: str, requires_grad: bool) -> Dict:
        g = torch.Generator(device="cpu").manual_seed(0)
        mk = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
        return dict(q=mk(self.B, self.H, self.K), k=ref.l2norm(mk(self.B, self.H, self.K)),
                    v=mk(self.B, self.H, self.V),
                    beta=torch.rand(self.B, self.H, generator=g).to(device),
                    S=torch.zeros(self.B, self.H, self.K, self.V, device=device),
                    out=torch.empty(self.B, self.H, self.V, device=device))

    def leaves(self, i: Dict) -> List[torch.Tensor]:
        return []

    def loss(self, outputs) -> torch.Tensor:
        return outputs.sum()

    def implementations(self, device: str = "cpu") -> Dict[str, Callable[[Dict], tuple]]:
        scale = self.K ** -0.5

        def fused(i):  # in place, into a preallocated out: no allocation
            return delta_rule_step(i["q"], i["k"], i["v"], i["beta"], i["S"], out=i["out"])

        def eager(i):
            S, o = _ref_step(i["S"], i["q"], i["k"], i["v"], i["beta"], scale)
            i["S"].copy_(S)
            return o

        step_c = torch.compile(_ref_step, dynamic=False)

        def compiled(i):
            S, o = step_c(i["S"], i["q"], i["k"], i["v"], i["beta"], scale)
            i["S"].copy_(S)
            return o

        return {"fused": fused, "eager": eager, "compile": compiled}
