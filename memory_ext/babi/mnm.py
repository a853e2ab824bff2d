"""Metalearned Neural Memory on bAbI (`memory-ext babi --model mnm`): the MNM controller reads a
story one sentence per time step (each sentence a position-encoded bag of words), then the
question, and answers from its output at the question step. Every step is one fused memory
step (write, then read); the loss is the answer's cross-entropy plus lambda * mean recon."""
from __future__ import annotations

import time
from typing import Dict, Iterator

import torch
from torch import Tensor, nn

from ..nn.controller import MNMController, mnm_loss
from . import data as babi
from .data import prepare_task
from .memn2n import position_encoding


class MNMReader(nn.Module):
    """forward(stories [B, N, J], counts [B], queries [B, J]) -> (logits [B, V], recon [B, T]).

    The story's live sentences are right-aligned so every row's question comes last; it is fed
    1 + think_steps times (T = N + 1 + think_steps; each step reads the memory once, so the
    extra steps allow reads that depend on earlier reads) and the answer is the last step's
    output. The padding steps before the story are masked (no state change), so a row's answer
    does not depend on the batch it is in. Each step's input is [sentence vector (d) ; 1 at the
    question steps]."""

    def __init__(self, vocab_size: int, sentence_len: int, d: int = 64, hidden: int = 128,
                 memory_widths=(64, 128, 64), rule: str = "local", impl: str = "fused",
                 think_steps: int = 2):
        super().__init__()
        if think_steps < 0:
            raise ValueError(f"think_steps must be >= 0, got {think_steps}")
        self.think_steps = think_steps
        self.E = nn.Embedding(vocab_size, d, padding_idx=0)
        self.register_buffer("pe", position_encoding(sentence_len, d))
        self.controller = MNMController(d + 1, hidden, vocab_size, memory_widths=memory_widths,
                                        rule=rule, impl=impl)

    def _sentences(self, words: Tensor) -> Tensor:
        return (self.E(words) * self.pe).sum(-2)

    def forward(self, stories: Tensor, counts: Tensor, queries: Tensor):
        B, N = stories.shape[:2]
        # right-align: step t of row b holds sentence t - (N - count_b) (or nothing before it)
        t = torch.arange(N, device=stories.device)[None, :]
        src = t - (N - counts[:, None])
        live = src >= 0
        rows = torch.arange(B, device=stories.device)[:, None]
        aligned = stories[rows, src.clamp(min=0)] * live[..., None]
        Q = 1 + self.think_steps  # the question is read again: one memory read per step, so
        question = self._sentences(queries)[:, None].expand(B, Q, -1)  # more hops
        x = torch.cat([self._sentences(aligned), question], 1)
        flag = torch.zeros(B, N + Q, 1, dtype=x.dtype, device=x.device)
        flag[:, N:] = 1
        self.controller.reset()
        steps = torch.cat([live, torch.ones_like(live[:, :1]).expand(B, Q)], 1)  # padding: no-op
        y, recon = self.controller(torch.cat([x, flag], -1), steps)
        return y[:, -1], recon


def length_batches(counts: Tensor, batch_size: int, g: torch.Generator) -> Iterator[Tensor]:
    """Batches of example indices with similar story lengths, in random order."""
    order = torch.randperm(counts.numel(), generator=g)
    order = order[torch.sort(counts[order], stable=True).indices]
    batches = list(order.split(batch_size))
    for i in torch.randperm(len(batches), generator=g).tolist():
        yield batches[i]


def _trim(data: babi.Batchable, idx: Tensor):
    """The rows idx with the slot axis cut to their longest story."""
    n = int(data.counts[idx].max().clamp(min=1))
    return data.stories[idx, :n], data.counts[idx], data.queries[idx], data.answers[idx]


def evaluate(model: MNMReader, data: babi.Batchable, batch_size: int = 256) -> float:
    """Answer error rate over `data`."""
    wrong = 0
    with torch.no_grad():
        order = torch.sort(data.counts, stable=True).indices
        for idx in order.split(batch_size):
            st, n, q, a = _trim(data, idx)
            wrong += int((model(st, n, q)[0].argmax(-1) != a).sum())
    return wrong / max(1, data.answers.numel())


def train_mnm(data_dir: str, task: int, *, split: str = "en-10k", epochs: int = 20,
              restarts: int = 1, seed: int = 0, memory_size: int = 50, batch_size: int = 32,
              lr: float = 1e-3, recon_weight: float = 0.1, d: int = 64, hidden: int = 128,
              memory_widths=(64, 128, 64), rule: str = "local", impl: str = "fused",
              think_steps: int = 2, weight_decay: float = 0.0, progress=None) -> Dict:
    """Single-task MNM training with AdamW (decoupled weight decay; 0 is plain Adam); keeps the
    epoch and restart with the lowest validation error. Returns test / validation error, wall
    time and per-restart figures.

    Under `torchrun --nproc_per_node N` the model runs under DistributedDataParallel (gloo on
    CPU, nccl on CUDA) and each rank trains on its 1/N of the training examples."""
    from ..distributed import init_from_env
    joined = init_from_env()
    rank, world = joined if joined is not None else (0, 1)
    t0 = time.perf_counter()
    vocab, J, _, tr, va, te = prepare_task(data_dir, task, split, memory_size, seed)
    runs, models = [], []
    for r in range(restarts):
        torch.manual_seed(seed * 7919 + task * 101 + r)
        g = torch.Generator().manual_seed(seed * 7919 + task * 101 + r)
        model = MNMReader(len(vocab), J, d, hidden, memory_widths, rule, impl, think_steps)
        step = model if world == 1 else nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        # every rank the same number of examples, so the same number of batches (DDP steps)
        mine = torch.arange(rank, tr.answers.numel() // world * world, world)
        best = {"val_error": 2.0}
        for epoch in range(1, epochs + 1):
            model.train()
            for idx in length_batches(tr.counts[mine], batch_size, g):
                st, n, q, a = _trim(tr, mine[idx])
                logits, recon = step(st, n, q)
                loss = mnm_loss(nn.functional.cross_entropy(logits, a), recon, recon_weight)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
            model.eval()
            val_err = evaluate(model, va)
            if val_err < best["val_error"]:
                best = {"val_error": val_err, "test_error": evaluate(model, te), "epoch": epoch,
                        "state": {k: v.clone() for k, v in model.state_dict().items()}}
            if progress is not None:
                progress(1)
        model.load_state_dict(best.pop("state"))
        runs.append(best)
        models.append(model)
    i = min(range(restarts), key=lambda j: runs[j]["val_error"])
    return {"task": task, "test_error": runs[i]["test_error"], "val_error": runs[i]["val_error"],
            "restarts": runs, "model": models[i], "seconds": time.perf_counter() - t0}
