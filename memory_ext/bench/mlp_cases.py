"""Benchmark cases of the MLP memory ops: inputs, FLOP counts and the implementations compared
(fused op, eager reference, torch.compile of the reference)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence

import torch

from .. import reference as ref
from .. import mlp_memory_scan, mlp_memory_step


@dataclass(frozen=True)
class MlpCase:
    op: str                      # "step" | "scan"
    B: int
    H: int
    widths: Sequence[int]
    T: int = 1
    Hr: int = 0                  # 0: same as H
    rule: str = "local"
    activation: str = "tanh"
    modes: Sequence[str] = ("fwd", "fwd+bwd")

    @property
    def read_heads(self) -> int:
        return self.Hr or self.H

    @property
    def L(self) -> int:
        return len(self.widths) - 1

    @property
    def op_name(self) -> str:
        return f"mlp_memory_{self.op}"

    def make_inputs(self, device: str, requires_grad: bool) -> Dict:
        return make_inputs(self, device, requires_grad)

    def implementations(self, device: str = "cpu") -> Dict[str, Callable[[Dict], tuple]]:
        return implementations(self)

    def leaves(self, inputs: Dict) -> List[torch.Tensor]:
        return _leaves(inputs)

    def loss(self, outputs) -> torch.Tensor:
        return _loss(*outputs)

    def label(self) -> str:
        w = "/".join(str(x) for x in self.widths)
        t = f" T={self.T}" if self.op == "scan" else ""
        return f"B={self.B}{t} H={self.H} L={self.L} w={w} {self.activation} {self.rule}"

    def forward_flops(self) -> float:
        """Algorithmic FLOPs of the forward math (multiply-adds x 2): the write's forward pass,
        the update, the read, the recon pass (rule grad), and rule grad's inner backward."""
        F = sum(self.widths[l + 1] * self.widths[l] for l in range(self.L))
        inner = sum(self.widths[l + 1] * self.widths[l] for l in range(1, self.L))
        per_step = 2 * self.H * F + 2 * self.H * F + 2 * self.read_heads * F
        if self.rule == "grad":
            per_step += 2 * self.H * F + 2 * self.H * inner
        return float(self.B * self.T * per_step)


def make_inputs(c: MlpCase, device: str, requires_grad: bool, seed: int = 0) -> Dict:
    g = torch.Generator(device="cpu").manual_seed(seed)

    def rnd(*shape, scale=1.0):
        t = (torch.randn(*shape, generator=g) * scale).to(device)
        return t.requires_grad_(requires_grad)

    n = list(c.widths)
    lead = (c.B, c.T) if c.op == "scan" else (c.B,)
    W = [rnd(c.B, n[l + 1], n[l], scale=n[l] ** -0.5) for l in range(c.L)]
    if c.rule == "local":
        targets = [rnd(*lead, c.H, n[l + 1]) for l in range(c.L)]
    else:
        targets = rnd(*lead, c.H, n[-1])
    beta = (torch.rand(*lead, generator=g) * 0.5).to(device).requires_grad_(requires_grad)
    return dict(weights=W, write_keys=rnd(*lead, c.H, n[0]), targets=targets, beta=beta,
                read_keys=rnd(*lead, c.read_heads, n[0]))


def _leaves(inp: Dict) -> List[torch.Tensor]:
    out = list(inp["weights"]) + [inp["write_keys"], inp["beta"], inp["read_keys"]]
    t = inp["targets"]
    return out + (list(t) if isinstance(t, (list, tuple)) else [t])


def _loss(reads, recon):
    loss = reads.square().mean()
    return loss + recon.mean() if recon is not None else loss


def implementations(c: MlpCase) -> Dict[str, Callable[[Dict], tuple]]:
    """name -> fn(inputs) -> (reads, recon). Each runs the whole case (all T steps)."""
    kw = dict(rule=c.rule, activation=c.activation)

    if c.op == "step":
        def fused(i):
            _, r, rc = mlp_memory_step(i["weights"], i["write_keys"], i["targets"], i["beta"],
                                       i["read_keys"], **kw)
            return r, rc

        def eager(i):
            _, r, rc = ref.mlp_step(i["weights"], i["write_keys"], i["targets"], i["beta"],
                                    i["read_keys"], **kw)
            return r, rc

        step_c = torch.compile(ref.mlp_step, dynamic=False)

        def compiled(i):
            _, r, rc = step_c(i["weights"], i["write_keys"], i["targets"], i["beta"],
                              i["read_keys"], **kw)
            return r, rc

        return {"fused": fused, "eager": eager, "compile": compiled}

    def fused(i):
        r, _, rc = mlp_memory_scan(i["weights"], i["write_keys"], i["targets"], i["beta"],
                                   i["read_keys"], **kw)
        return r, rc

    def eager(i):
        r, _, rc = ref.mlp_scan(i["weights"], i["write_keys"], i["targets"], i["beta"],
                                i["read_keys"], **kw)
        return r, rc

    # torch.compile of the whole T-step loop would unroll T steps into one graph (minutes to
    # compile); the compiled baseline is the compiled reference step run T times.
    step_c = torch.compile(ref.mlp_step, dynamic=False)

    def compiled(i):
        w, reads, recons = list(i["weights"]), [], []
        tg = i["targets"]
        for t in range(c.T):
            tt = tg[:, t] if isinstance(tg, torch.Tensor) else [z[:, t] for z in tg]
            w, r, rc = step_c(w, i["write_keys"][:, t], tt, i["beta"][:, t],
                              i["read_keys"][:, t], **kw)
            reads.append(r)
            recons.append(rc)
        recon = None if recons[0] is None else torch.stack(recons, 1)
        return torch.stack(reads, 1), recon

    return {"fused": fused, "eager": eager, "compile": compiled}


# quick: the eager reference of a scan costs about T times a step's small ops, so T is short
QUICK_CASES: List[MlpCase] = [
    MlpCase("step", B=1, H=4, widths=(64, 64, 64, 64)),
    MlpCase("scan", B=4, T=32, H=4, widths=(64, 64, 64, 64)),
    MlpCase("scan", B=4, T=16, H=4, widths=(64, 64, 64), rule="grad"),
]

FULL_CASES: List[MlpCase] = [
    MlpCase("step", B=1, H=4, widths=(64, 64, 64, 64)),
    MlpCase("scan", B=4, T=256, H=4, widths=(64, 64, 64, 64)),
    MlpCase("scan", B=4, T=64, H=4, widths=(64, 64, 64), rule="grad"),
    MlpCase("step", B=32, H=4, widths=(64, 64, 64, 64)),
    MlpCase("step", B=1, H=4, widths=(128, 128, 128)),
    MlpCase("scan", B=32, T=256, H=4, widths=(64, 64, 64, 64), modes=("fwd",)),
    MlpCase("scan", B=4, T=256, H=4, widths=(64, 64, 64, 64), rule="grad"),
    MlpCase("scan", B=4, T=128, H=2, widths=(128, 256, 128)),
]

CUDA_CASES: List[MlpCase] = [
    MlpCase("step", B=1, H=4, widths=(64, 64, 64, 64)),
    MlpCase("scan", B=32, T=256, H=4, widths=(64, 64, 64, 64)),
    MlpCase("scan", B=4, T=256, H=4, widths=(64, 64, 64, 64)),
    MlpCase("scan", B=32, T=256, H=4, widths=(64, 64, 64), rule="grad"),
]
