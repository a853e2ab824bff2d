"""torch.distributed set-up shared by the data-parallel trainers (chat, bAbI MNM)."""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.distributed as dist


def init_from_env() -> Optional[tuple]:
    """Join the process group torchrun describes (WORLD_SIZE > 1): (rank, world), else None.
    gloo on CPU, nccl when CUDA is there."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()
