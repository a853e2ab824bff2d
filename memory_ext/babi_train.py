"""Training and evaluation of the bAbI models, one model per task (`memory-ext babi`)."""
from __future__ import annotations

import math
import time
from typing import Dict, Optional

import torch
from torch import nn

from . import babi
from .memn2n import MemN2N, time_indices

# Sukhbaatar et al. 2015, Table 1, bAbI 1k, MemN2N 3 hops PE LS RN (test error %, per task)
PAPER_MEMN2N_PE_LS_RN = [0.0, 8.3, 40.3, 2.8, 13.1, 7.6, 17.3, 10.0, 13.2, 15.1,
                         0.9, 0.2, 0.4, 1.7, 0.0, 1.3, 51.0, 11.1, 82.8, 0.0]


def _data(data_dir: str, task: int, split: str, memory_size: int, seed: int):
    train, test = babi.load_task(data_dir, task, split)
    train, val = babi.split_validation(train, 0.1, seed)
    vocab = babi.Vocab(train + val + test)
    J = max(max((len(s) for e in ex for s in e.story), default=1) for ex in (train, val, test))
    J = max(J, max(len(e.question) for e in train + val + test))
    vec = lambda ex: babi.vectorize(ex, vocab, memory_size, J)  # noqa: E731
    return vocab, J, vec(train), vec(val), vec(test)


def _loss_and_error(model: MemN2N, data: babi.Batchable, linear: bool, memory_size: int):
    with torch.no_grad():
        t = time_indices(data.counts, memory_size)
        logits = model(data.stories, data.counts, data.queries, t, linear=linear)
        loss = nn.functional.cross_entropy(logits, data.answers).item()
        err = (logits.argmax(-1) != data.answers).float().mean().item()
    return loss, err


def train_memn2n(data_dir: str, task: int, *, split: str = "en", epochs: int = 100,
                 restarts: int = 1, seed: int = 0, hops: int = 3, d: int = 20,
                 memory_size: int = 50, batch_size: int = 32, lr: float = 0.01,
                 linear_start: bool = True, noise: float = 0.1, progress=None) -> Dict:
    """Trains `restarts` models (PE, temporal encoding, adjacent tying; LS and RN unless turned
    off) and keeps the one with the lowest validation error. Returns test / validation error,
    wall time and the per-restart figures. `progress(n)` is called after every epoch."""
    t0 = time.perf_counter()
    vocab, J, tr, va, te = _data(data_dir, task, split, memory_size, seed)
    runs = []
    for r in range(restarts):
        torch.manual_seed(seed * 7919 + task * 101 + r)
        g = torch.Generator().manual_seed(seed * 7919 + task * 101 + r)
        model = MemN2N(len(vocab), J, memory_size, d, hops)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        linear = linear_start
        best_ls, ls_epochs = math.inf, 0
        epoch = 0
        while epoch < epochs:
            cur_lr = (lr / 2 if linear else lr * 0.5 ** (epoch // 25))
            for group in opt.param_groups:
                group["lr"] = cur_lr
            order = torch.randperm(tr.answers.shape[0], generator=g)
            for i in range(0, order.numel(), batch_size):
                idx = order[i: i + batch_size]
                t = time_indices(tr.counts[idx], memory_size, noise, g)
                logits = model(tr.stories[idx], tr.counts[idx], tr.queries[idx], t, linear=linear)
                # summed over the batch, as in the paper's code (lr 0.01 is per example)
                loss = nn.functional.cross_entropy(logits, tr.answers[idx], reduction="sum")
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 40.0)
                opt.step()
                with torch.no_grad():  # the null word stays zero
                    for E in model.E:
                        E[0].zero_()
            if linear:  # linear start: until the validation loss stops going down (<= 20 epochs)
                ls_epochs += 1
                vl, _ = _loss_and_error(model, va, True, memory_size)
                if vl >= best_ls or ls_epochs >= 20:
                    linear = False
                best_ls = min(best_ls, vl)
            else:
                epoch += 1
                if progress is not None:
                    progress(1)
        _, val_err = _loss_and_error(model, va, False, memory_size)
        _, test_err = _loss_and_error(model, te, False, memory_size)
        runs.append({"val_error": val_err, "test_error": test_err, "ls_epochs": ls_epochs})
    best = min(runs, key=lambda x: x["val_error"])
    return {"task": task, "test_error": best["test_error"], "val_error": best["val_error"],
            "restarts": runs, "seconds": time.perf_counter() - t0}


def summarize(results, paper: Optional[list] = None) -> Dict:
    errs = [100 * r["test_error"] for r in results]
    return {"mean_error": sum(errs) / len(errs), "failed": sum(e > 5.0 for e in errs),
            "paper_mean": None if paper is None else sum(paper[r["task"] - 1] for r in results) / len(results)}
