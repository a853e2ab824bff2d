"""Benchmark case of a training step of the MNM controller (LSTM + fast-weight MLP memory):
the same model and parameters with the fused memory step against the eager reference memory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from .. import MNMController


@dataclass(frozen=True)
class ControllerCase:
    B: int
    T: int
    hidden: int
    widths: Tuple[int, ...]
    rule: str = "local"
    modes: Sequence[str] = ("fwd+bwd",)
    op_name: str = "mnm_train_step"
    step_loop: bool = True       # also time "fused-step-loop" (the quick run leaves it out)

    def label(self) -> str:
        return (f"B={self.B} T={self.T} lstm={self.hidden} memory={list(self.widths)} "
                f"rule={self.rule}")

    def forward_flops(self) -> float:
        """About: LSTM 8 h (x + r + h) per step; memory step (local rule) ~ 8 sum n_l n_(l+1)
        (forward, update, read); output 2 (h + r) V. Per row and step."""
        w = self.widths
        mem = 8 * sum(a * b for a, b in zip(w[:-1], w[1:]))
        lstm = 8 * self.hidden * (self.hidden + w[0] + w[-1])
        out = 2 * (self.hidden + w[-1]) * w[0]
        return float(self.B * self.T * (mem + lstm + out))

    def make_inputs(self, device: str, requires_grad: bool) -> Dict:
        torch.manual_seed(0)
        ctl = MNMController(self.widths[0], self.hidden, self.widths[0], memory_widths=self.widths,
                            rule=self.rule).to(device)
        x = torch.randn(self.B, self.T, self.widths[0], device=device, requires_grad=requires_grad)
        return dict(ctl=ctl, x=x)

    def leaves(self, i: Dict) -> List[torch.Tensor]:
        return [i["x"], *i["ctl"].parameters()]

    def loss(self, outputs) -> torch.Tensor:
        y, recon = outputs
        return y.square().mean() + 0.1 * recon.mean()

    def implementations(self, device: str = "cpu") -> Dict[str, Callable[[Dict], tuple]]:
        """fused: the whole time loop is one autograd node over the in-place memory ops (what
        MNMController(impl="fused") runs); fused-step-loop: a per-step autograd loop around the
        functional fused step (the memory op's share of the speed-up); eager: that loop around
        the reference memory."""
        def with_impl(impl: str, sequence_node: bool = True):
            def run(i: Dict):
                ctl = i["ctl"]
                ctl.memory.impl = impl
                ctl.sequence_node = sequence_node
                ctl.reset()
                return ctl(i["x"])
            return run
        impls = {"fused": with_impl("fused"), "fused-step-loop": with_impl("fused", False),
                 "eager": with_impl("reference")}
        if not self.step_loop:
            del impls["fused-step-loop"]
        return impls


@dataclass(frozen=True)
class ChatStepCase:
    """A train-chat step: B whole synthetic conversations through MemoryChatbot (default
    config: d 64, memory 64-128-64, one mlp_memory_scan per turn), fused vs eager memory."""
    B: int = 32
    modes: Sequence[str] = ("fwd+bwd",)
    op_name: str = "chat_train_step"

    def label(self) -> str:
        return f"B={self.B} conversations, MemoryChatbot default config"

    def forward_flops(self):
        return None  # many small ops of several kinds: only the times are compared

    def make_inputs(self, device: str, requires_grad: bool) -> Dict:
        from ..chat import MemoryChatbot
        from ..chat.train import encode_batch
        from ..chat.dialogues import DialogueGenerator
        bot = MemoryChatbot(seed=0).to(device)
        turns = encode_batch(bot, DialogueGenerator(seed=0).conversations(self.B))
        return dict(bot=bot, turns=turns)

    def leaves(self, i: Dict) -> List[torch.Tensor]:
        return [p for p in i["bot"].parameters()]

    def loss(self, outputs) -> torch.Tensor:
        return outputs[0]

    def implementations(self, device: str = "cpu") -> Dict[str, Callable[[Dict], tuple]]:
        from ..chat.train import conversation_loss

        def with_impl(impl: str):
            def run(i: Dict):
                i["bot"].encoder.memory.impl = impl
                return (conversation_loss(i["bot"], i["turns"])[0],)
            return run
        return {"fused": with_impl("fused"), "eager": with_impl("reference")}


# the first is the model of `memory-ext babi --model mnm` (LSTM 128, memory 64-128-64)
# (quick: no fused-step-loop row, 8 conversations instead of 32: each eager train step is long)
CUDA = [ControllerCase(32, 20, 128, (64, 128, 64)), ChatStepCase(32)]
QUICK = [ControllerCase(32, 20, 128, (64, 128, 64), step_loop=False), ChatStepCase(8)]
FULL = CUDA + [ControllerCase(32, 20, 64, (32, 64, 32)), ControllerCase(32, 20, 128, (64, 128, 64), "grad")]
