"""Benchmark cases of the soft slot read (MemN2N): fused slot_read vs the eager reference vs
torch.compile of the reference, over the number of slots N and hops."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch

from .. import reference as ref
from .. import slot_read


@dataclass(frozen=True)
class SlotReadCase:
    B: int
    N: int
    d: int
    hops: int
    modes: Sequence[str] = ("fwd", "fwd+bwd")
    op_name: str = "slot_read"

    def label(self) -> str:
        return f"B={self.B} N={self.N} d={self.d} hops={self.hops} per-hop M, C"

    def forward_flops(self) -> float:
        """Scores, softmax weights and the weighted sum: about 4 N d per hop and row."""
        return float(4 * self.B * self.N * self.d * self.hops)

    def make_inputs(self, device: str, requires_grad: bool) -> Dict:
        g = torch.Generator().manual_seed(0)
        mk = lambda *s: torch.randn(*s, generator=g).to(device).requires_grad_(requires_grad)  # noqa: E731
        count = torch.randint(self.N // 2, self.N + 1, (self.B,), generator=g).to(device)
        return dict(q=mk(self.B, self.d), M=mk(self.hops, self.B, self.N, self.d),
                    C=mk(self.hops, self.B, self.N, self.d), count=count)

    def leaves(self, i: Dict) -> List[torch.Tensor]:
        return [i["q"], i["M"], i["C"]]

    def loss(self, outputs) -> torch.Tensor:
        return outputs[0].square().mean()

    def implementations(self, device: str = "cpu") -> Dict[str, Callable[[Dict], tuple]]:
        compiled = torch.compile(ref.slot_read, dynamic=False)
        return {
            "fused": lambda i: slot_read(i["q"], i["M"], i["C"], i["count"], self.hops),
            "eager": lambda i: ref.slot_read(i["q"], i["M"], i["C"], i["count"], self.hops),
            "compile": lambda i: compiled(i["q"], i["M"], i["C"], i["count"], self.hops),
        }


QUICK = [SlotReadCase(32, 50, 20, 3), SlotReadCase(32, 200, 20, 3)]
FULL = QUICK + [SlotReadCase(32, 50, 20, 1), SlotReadCase(32, 1000, 64, 3),
                SlotReadCase(128, 50, 20, 3)]
