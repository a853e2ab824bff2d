"""Data-parallel chatbot training on torch.distributed (run under `torchrun --nproc_per_node N`).

The model body runs under DistributedDataParallel (gloo on CPU, nccl on CUDA): one DDP forward
is one batch of whole conversations (all their turns), so DDP sees one forward per backward.
The elastic embedding is left out of DDP (its rows grow, which DDP's fixed buckets cannot
follow): every step first agrees on the vocabulary with ElasticVocab.sync (same ids and rows on
every rank), re-encodes the batch, and after the backward averages the embedding's gradient
rows [0, size) with one all_reduce.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..distributed import init_from_env
from .train import conversation_loss, encode_batch


class _ConversationLoss(nn.Module):
    def __init__(self, bot, recon_weight: float):
        super().__init__()
        self.bot, self.recon_weight = bot, recon_weight

    def forward(self, turns: List[tuple]) -> torch.Tensor:
        return conversation_loss(self.bot, turns, self.recon_weight)[0]


class ChatDDP:
    """The hooks train_chat calls when data-parallel (see the module notes)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world
        self.ddp: Optional[nn.parallel.DistributedDataParallel] = None

    @classmethod
    def from_env(cls) -> Optional["ChatDDP"]:
        """Join the process group torchrun describes (WORLD_SIZE > 1); None when alone."""
        joined = init_from_env()
        return None if joined is None else cls(*joined)

    def wrap(self, bot, recon_weight: float = 0.1) -> None:
        module = _ConversationLoss(bot, recon_weight)
        elastic = [n for n, _ in module.named_parameters() if ".vocab.embedding." in n]
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, elastic)
        self.elastic = [p for n, p in module.named_parameters() if n in elastic]
        self.ddp = nn.parallel.DistributedDataParallel(module)  # broadcasts rank 0's body

    def before_forward(self, bot, batch, answer_weight: float = 1.0):
        """Agree on the vocabulary, then encode the batch again with the agreed ids."""
        bot.vocab.sync()
        return encode_batch(bot, batch, answer_weight)

    def loss(self, turns) -> torch.Tensor:
        return self.ddp(turns)

    def after_backward(self, bot) -> None:
        """Average the embedding gradient over rows [0, n), n the largest row count of any rank
        (ranks agree on the live rows; rows past them are dead everywhere, their gradient 0)."""
        emb = bot.vocab.embedding
        n = torch.tensor([emb.size])
        dist.all_reduce(n, op=dist.ReduceOp.MAX)
        size = int(n)
        emb._reserve(size)
        for p in self.elastic:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            g = p.grad[:size].contiguous()
            dist.all_reduce(g)
            p.grad[:size] = g / self.world

    def checksum(self, bot) -> List[float]:
        """Per-parameter sums and the vocabulary checksum (equal on every rank when in step)."""
        size = bot.vocab.embedding.size
        sums = [float(p.detach()[:size].double().sum()) if ".vocab.embedding." in n
                else float(p.detach().double().sum()) for n, p in bot.named_parameters()]
        return sums + [float(bot.vocab.table.checksum())]

    def close(self) -> None:
        dist.barrier()
        dist.destroy_process_group()
