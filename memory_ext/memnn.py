"""Memory Network (Weston et al. 2014) with strong supervision, on the fused slot_read_hard op:
k hard hops (k = the task's number of supporting facts, at least 2), each trained with a margin
ranking loss that puts the true supporting fact above every other live memory; the answer from
[question; chosen memories] by a softmax over the vocabulary. Bag-of-words embeddings plus
temporal (age) features, which the paper adds for tasks that need to order facts."""
from __future__ import annotations

import time
from typing import Dict

import torch
from torch import Tensor, nn

from . import babi
from .slots import slot_read_hard

# bAbI paper (Weston et al. 2015), strongly supervised MemNN, 1k: tasks 1-3 (test error %)
PAPER_MEMNN_STRONG = {1: 0.0, 2: 0.0, 3: 0.0}


class MemNN(nn.Module):
    """Embeddings: question / memory-as-key `U` [V, d], memory-as-query `Q` [V, d], answer `W`;
    temporal features T_U, T_Q [2 N, d] by age (newest = 0)."""

    def __init__(self, vocab_size: int, memory_size: int = 50, d: int = 64, init_std: float = 0.1):
        super().__init__()
        self.U = nn.Parameter(torch.randn(vocab_size, d) * init_std)
        self.Qe = nn.Parameter(torch.randn(vocab_size, d) * init_std)
        self.Ue = nn.Parameter(torch.randn(vocab_size, d) * init_std)
        self.TU = nn.Parameter(torch.randn(2 * memory_size, d) * init_std)
        self.TQ = nn.Parameter(torch.randn(2 * memory_size, d) * init_std)
        self.R = nn.Parameter(torch.randn(vocab_size, d) * init_std)  # memories in the response
        self.W = nn.Parameter(torch.randn(vocab_size, d) * init_std)
        self.memory_size = memory_size

    @staticmethod
    def _bow(E: Tensor, words: Tensor) -> Tensor:
        return (nn.functional.embedding(words, E) * (words > 0)[..., None]).sum(-2)

    def encode(self, stories: Tensor, counts: Tensor, queries: Tensor):
        slot = torch.arange(stories.shape[1])[None, :]
        age = (counts[:, None] - 1 - slot).clamp(min=0)
        u0 = self._bow(self.Ue, queries)
        M = self._bow(self.U, stories) + self.TU[age]
        Q = self._bow(self.Qe, stories) + self.TQ[age]
        return u0, M, Q

    def answer(self, u0: Tensor, stories: Tensor, chosen: Tensor) -> Tensor:
        """Answer logits [B, V] from the question and the chosen memories [B, k] (-1: none)."""
        rows = torch.arange(stories.shape[0])[:, None]
        mem = self._bow(self.R, stories[rows, chosen.clamp(min=0)])  # [B, k, d]
        r = u0 + (mem * (chosen >= 0)[..., None]).sum(1)
        return r @ self.W.T


def train_memnn(data_dir: str, task: int, *, split: str = "en", epochs: int = 60,
                restarts: int = 1, seed: int = 0, d: int = 64, memory_size: int = 50,
                batch_size: int = 32, lr: float = 0.01, margin: float = 0.1,
                progress=None) -> Dict:
    """Strong supervision: the supporting facts are the targets of the hops (teacher forcing:
    hop k's query uses the true facts before it). Test: slot_read_hard's own argmax chain."""
    t0 = time.perf_counter()
    train, test = babi.load_task(data_dir, task, split)
    train, val = babi.split_validation(train, 0.1, seed)
    vocab = babi.Vocab(train + val + test)
    J = max(len(s) for ex in (train, val, test) for e in ex for s in e.story + [e.question])
    vec = lambda ex: babi.vectorize(ex, vocab, memory_size, J)  # noqa: E731
    tr, va, te = vec(train), vec(val), vec(test)
    hops = max(2, int((tr.supports >= 0).sum(1).max()))

    def evaluate(model, data):
        with torch.no_grad():
            u0, M, Q = model.encode(data.stories, data.counts, data.queries)
            chosen, _ = slot_read_hard(u0, M, Q, data.counts, hops)
            pred = model.answer(u0, data.stories, chosen).argmax(-1)
            return (pred != data.answers).float().mean().item()

    runs = []
    for r in range(restarts):
        torch.manual_seed(seed * 7919 + task * 101 + r)
        g = torch.Generator().manual_seed(seed * 7919 + task * 101 + r)
        model = MemNN(len(vocab), memory_size, d)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(tr.answers.shape[0], generator=g)
            for i in range(0, order.numel(), batch_size):
                idx = order[i: i + batch_size]
                st, n, q, a, sup = (tr.stories[idx], tr.counts[idx], tr.queries[idx],
                                    tr.answers[idx], tr.supports[idx])
                u, M, Q = model.encode(st, n, q)
                rows = torch.arange(idx.numel())
                loss = u.new_zeros(())
                for k in range(hops):
                    _, s = slot_read_hard(u, M, Q, n, 1)  # this hop's scores of every memory
                    s = s[:, 0]
                    target = sup[:, k] if k < sup.shape[1] else torch.full_like(n, -1)
                    has = target >= 0
                    if bool(has.any()):  # margin ranking: true fact above every other live one
                        true = s[rows, target.clamp(min=0)][:, None]
                        live = torch.isfinite(s)
                        viol = (margin - true + s).clamp(min=0) * live
                        viol = viol.masked_fill(torch.arange(s.shape[1])[None, :] == target[:, None], 0)
                        loss = loss + (viol.sum(1) * has).sum()
                    # teacher forcing: the next hop's query adds the true fact (when there is one)
                    u = u + torch.where(has[:, None], Q[rows, target.clamp(min=0)], torch.zeros_like(u))
                chosen = torch.where(sup[:, :hops] >= 0, sup[:, :hops], torch.full_like(sup[:, :hops], -1))
                if chosen.shape[1] < hops:
                    chosen = torch.cat([chosen, chosen.new_full((chosen.shape[0], hops - chosen.shape[1]), -1)], 1)
                loss = loss + nn.functional.cross_entropy(model.answer(
                    model._bow(model.Ue, q), st, chosen), a, reduction="sum")
                opt.zero_grad()
                loss.backward()
                opt.step()
            if progress is not None:
                progress(1)
        runs.append({"val_error": evaluate(model, va), "test_error": evaluate(model, te),
                     "hops": hops})
    best = min(runs, key=lambda x: x["val_error"])
    return {"task": task, "test_error": best["test_error"], "val_error": best["val_error"],
            "restarts": runs, "seconds": time.perf_counter() - t0}
