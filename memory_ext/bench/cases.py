"""The benchmark case lists and the runners shared by every op group.

A case has: op_name, label(), modes, forward_flops(), make_inputs(device, requires_grad),
implementations(device) -> {name: fn(inputs) -> outputs} (ours are named "fused..."),
leaves(inputs), loss(outputs).
"""
from __future__ import annotations

from typing import List

import torch

from .controller_cases import CUDA as CONTROLLER_CUDA, FULL as CONTROLLER_FULL
from .controller_cases import QUICK as CONTROLLER_QUICK
from .delta_cases import DeltaCase, DeltaStepCase
from .mlp_cases import CUDA_CASES as MLP_CUDA, FULL_CASES as MLP_FULL, QUICK_CASES as MLP_QUICK
from .slot_cases import FULL as SLOT_FULL, QUICK as SLOT_QUICK

# the quick run (CPU default): every op family, small enough for about 90 s on 2 busy cores
QUICK_CASES: List = MLP_QUICK + [DeltaCase(B=2, T=128, H=4, K=64, V=64),
                                 DeltaStepCase(B=1, H=32, K=128, V=128)] + SLOT_QUICK + CONTROLLER_QUICK
FULL_CASES: List = MLP_FULL + [
    DeltaCase(B=2, T=1024, H=4, K=64, V=64),
    DeltaCase(B=2, T=4096, H=4, K=64, V=64, modes=("fwd",)),
    DeltaCase(B=4, T=512, H=8, K=128, V=128),
    DeltaStepCase(B=1, H=32, K=128, V=128),
    DeltaStepCase(B=16, H=8, K=64, V=64),
] + SLOT_FULL + CONTROLLER_FULL
CUDA_CASES: List = MLP_CUDA + [  # fla's chunk form runs in bfloat16 only: both dtypes
    DeltaCase(B=4, T=2048, H=8, K=64, V=64),
    DeltaCase(B=4, T=2048, H=8, K=128, V=128),
    DeltaCase(B=4, T=2048, H=8, K=64, V=64, dtype=torch.bfloat16),
    DeltaCase(B=4, T=2048, H=8, K=128, V=128, dtype=torch.bfloat16),
    DeltaStepCase(B=1, H=32, K=128, V=128),
] + CONTROLLER_CUDA


def forward_runner(case, fn, inputs):
    def run():
        with torch.no_grad():
            return fn(inputs)
    return run


def fwd_bwd_runner(case, fn, inputs):
    leaves = case.leaves(inputs)

    def forward():
        return case.loss(fn(inputs))

    def backward(loss):
        torch.autograd.grad(loss, leaves)

    def run():
        backward(forward())
    return run, forward, backward
