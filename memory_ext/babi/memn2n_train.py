"""Training and evaluation of MemN2N on bAbI, one model per task (`memory-ext babi --model memn2n`)."""
from __future__ import annotations

import time
from typing import Dict, Optional

import torch
from torch import nn

from . import data as babi
from .data import prepare_task
from .memn2n import MemN2N, time_indices

# Sukhbaatar et al. 2015, Table 1, bAbI 1k, MemN2N 3 hops PE LS RN (test error %, per task)
PAPER_MEMN2N_PE_LS_RN = [0.0, 8.3, 40.3, 2.8, 13.1, 7.6, 17.3, 10.0, 13.2, 15.1,
                         0.9, 0.2, 0.4, 1.7, 0.0, 1.3, 51.0, 11.1, 82.8, 0.0]


def _loss_and_error(model: MemN2N, data: babi.Batchable):
    with torch.no_grad():
        t = time_indices(data.counts, model.memory_size)
        logits = model(data.stories, data.counts, data.queries, t)
        loss = nn.functional.cross_entropy(logits, data.answers).item()
        err = (logits.argmax(-1) != data.answers).float().mean().item()
    return loss, err


def _train_epoch(model: MemN2N, opt, data: babi.Batchable, batch_size: int, linear: bool,
                 noise: float, g: torch.Generator) -> None:
    """One pass in random order. The loss is summed over the batch and every weight's gradient
    is clipped to norm 40 on its own, as in the authors' code (lr is per example)."""
    order = torch.randperm(data.answers.shape[0], generator=g)
    for i in range(0, order.numel(), batch_size):
        idx = order[i: i + batch_size]
        t = time_indices(data.counts[idx], model.memory_size, noise, g)
        logits = model(data.stories[idx], data.counts[idx], data.queries[idx], t, linear=linear)
        loss = nn.functional.cross_entropy(logits, data.answers[idx], reduction="sum")
        opt.zero_grad()
        loss.backward()
        for p in model.parameters():
            nn.utils.clip_grad_norm_(p, 40.0)
        opt.step()
        with torch.no_grad():  # the null word stays zero
            for E in model.E:
                E[0].zero_()


def train_memn2n(data_dir: str, task: int, *, split: str = "en", epochs: int = 100,
                 restarts: int = 1, seed: int = 0, hops: int = 3, d: int = 20,
                 memory_size: int = 50, batch_size: int = 32, lr: float = 0.005,
                 linear_start_epochs: int = 20, noise: float = 0.1, progress=None) -> Dict:
    """Trains `restarts` models (PE, temporal encoding, adjacent tying, LS and RN) and keeps the
    one with the lowest validation error. The schedule is the authors' code's: linear start
    (softmax removed) for `linear_start_epochs` epochs at lr, then `epochs` epochs from lr again,
    halved every 25 epochs. Returns test / validation error, wall time and the per-restart
    figures. `progress(n)` is called after every epoch."""
    t0 = time.perf_counter()
    vocab, J, N, tr, va, te = prepare_task(data_dir, task, split, memory_size, seed)
    runs = []
    for r in range(restarts):
        torch.manual_seed(seed * 7919 + task * 101 + r)
        g = torch.Generator().manual_seed(seed * 7919 + task * 101 + r)
        model = MemN2N(len(vocab), J, N, d, hops)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        for linear, n_epochs in ((True, linear_start_epochs), (False, epochs)):
            for epoch in range(1, n_epochs + 1):
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 ** (epoch // 25)
                _train_epoch(model, opt, tr, batch_size, linear, noise, g)
                if progress is not None:
                    progress(1)
        _, val_err = _loss_and_error(model, va)
        _, test_err = _loss_and_error(model, te)
        runs.append({"val_error": val_err, "test_error": test_err})
    best = min(runs, key=lambda x: x["val_error"])
    return {"task": task, "test_error": best["test_error"], "val_error": best["val_error"],
            "restarts": runs, "seconds": time.perf_counter() - t0}
