"""Memory Network (Weston et al. 2014) with strong supervision, on the fused slot_read_hard op:
k hard hops (k = the task's number of supporting facts, at least 2), each trained with a margin
ranking loss that puts the true supporting fact above every other live memory; the answer from
[question; chosen memories] by a softmax over the vocabulary. Bag-of-words embeddings plus time
features (recency, and "older than the memory chosen before"), which the paper adds for tasks
that need to order facts."""
from __future__ import annotations

import time
from typing import Dict

import torch
from torch import Tensor, nn

from . import data as babi
from ..ops.slots import slot_read_hard

# bAbI paper (Weston et al. 2015), strongly supervised MemNN, 1k: tasks 1-3 (test error %)
PAPER_MEMNN_STRONG = {1: 0.0, 2: 0.0, 3: 0.0}


class MemNN(nn.Module):
    """Scores of a memory i for a query u are u . M_i with (N = memory_size, age 0 = newest,
    s = time_scale)

        M_i = [ bow_U(i)  | -s age_i   | s older_i ]                        key of memory i
        Q_j = [ bow_Q(j)  | slope(j)   | (b + older(j)) onehot(age_j) - (c + behind(j)) from_j ]
        u0  = [ bow_Ue(q) | slope(q)   | 0 ]                                 (Q_j added when j is chosen)

    and, with word_match, one more block of V columns (V = vocabulary size, hot_i[w] = 1 if word
    w occurs in sentence i): M_i gets s hot_i, u0 gets match_q * hot(q) and Q_j gets
    match_m * hot_j, so u . M_i also counts the words memory i shares exactly with the question
    and with the memories chosen so far, with a learned weight per word (a diagonal added to the
    learned word similarity U^T Ue: "bathroom" in the question and in a fact, or the same
    person in two facts, match without the cross-term noise of two embeddings).

    where older_i[t] = 1 if age_i > t (a thermometer code of N places) and from_j[t] = 1 if
    t >= age_j. A chosen memory j so adds s (b + older(j)) to every memory older than it (the "is y
    older than the chosen memory" feature of Weston et al. 2014, section 3.4, weighted per word
    of j: "dropped" wants the place before it, "picked up" the newest place) and subtracts
    s (c + behind(j)) per step a memory lies behind it, so the nearest older memory wins without
    a global recency slope that would also push the newer ones. slope(.) is a per-word global
    recency weight. slope, older and behind are extra columns of Ue / Qe; b and c are learned
    scalars. The time scale s makes the time weights cheap under weight decay next to the word
    embeddings, whose cross terms (one place word against another) are the noise the time
    weights must beat. The answer is a softmax over the vocabulary of
    W (bow_Ue(question) + sum of bow_R(chosen memories))."""

    def __init__(self, vocab_size: int, memory_size: int = 50, d: int = 64, init_std: float = 0.1,
                 time_scale: float = 30.0, word_match: bool = True):
        super().__init__()
        emb = lambda rows, cols: nn.Parameter(torch.randn(rows, cols) * init_std)  # noqa: E731
        # Ue: question words + a recency-slope column; Qe: memory words + slope, older-than and
        # behind weight columns
        self.U, self.Ue, self.Qe = emb(vocab_size, d), emb(vocab_size, d + 1), emb(vocab_size, d + 3)
        self.R, self.W = emb(vocab_size, d), emb(vocab_size, d)
        self.older_bonus = nn.Parameter(torch.zeros(()))
        self.behind_slope = nn.Parameter(torch.zeros(()))
        self.memory_size, self.d, self.time_scale = memory_size, d, time_scale
        self.word_match = word_match
        if word_match:  # exact-match weight per word: of question words, of chosen-memory words
            self.match_q = nn.Parameter(torch.zeros(vocab_size))
            self.match_m = nn.Parameter(torch.zeros(vocab_size))

    def _hot(self, words: Tensor) -> Tensor:
        """words [..., J] -> [..., V]: 1 where a word occurs (padding 0 excluded)."""
        V = self.U.shape[0]
        hot = words.new_zeros(*words.shape[:-1], V, dtype=self.U.dtype)
        hot.scatter_(-1, words, 1.0)
        hot[..., 0] = 0
        return hot

    @staticmethod
    def _bow(E: Tensor, words: Tensor) -> Tensor:
        return (nn.functional.embedding(words, E) * (words > 0)[..., None]).sum(-2)

    def encode(self, stories: Tensor, counts: Tensor, queries: Tensor):
        """stories [B, N, J], counts [B], queries [B, J] -> u0 [B, D], M [B, N, D], Q [B, N, D]
        with D = d + 1 + N (+ V with word_match; the layout in the class notes)."""
        B, N = stories.shape[:2]
        slot = torch.arange(N, device=stories.device)
        age = (counts[:, None] - 1 - slot[None, :]).clamp(min=0)  # [B, N]
        older = (age[..., None] > slot).to(self.U.dtype) * self.time_scale  # [B, N, N]
        recency = -age.to(self.U.dtype)[..., None] * self.time_scale
        M = torch.cat([self._bow(self.U, stories), recency, older], -1)
        q = self._bow(self.Qe, stories)
        onehot = nn.functional.one_hot(age, N).to(q.dtype) * (self.older_bonus + q[..., -2:-1])
        behind = (slot >= age[..., None]).to(q.dtype) * (self.behind_slope + q[..., -1:])
        Q = torch.cat([q[..., :-2], onehot - behind], -1)
        u0 = torch.cat([self._bow(self.Ue, queries), q.new_zeros(B, N)], -1)
        if self.word_match:
            hot = self._hot(stories)
            M = torch.cat([M, hot * self.time_scale], -1)
            Q = torch.cat([Q, hot * self.match_m], -1)
            u0 = torch.cat([u0, self._hot(queries) * self.match_q], -1)
        return u0, M, Q

    def answer(self, question: Tensor, stories: Tensor, chosen: Tensor) -> Tensor:
        """Answer logits [B, V] from the question [B, J] and the chosen memories [B, k] (-1: none)."""
        rows = torch.arange(stories.shape[0])[:, None]
        mem = self._bow(self.R, stories[rows, chosen.clamp(min=0)])  # [B, k, d]
        r = self._bow(self.Ue, question)[:, : self.d] + (mem * (chosen >= 0)[..., None]).sum(1)
        return r @ self.W.T


def train_memnn(data_dir: str, task: int, *, split: str = "en", epochs: int = 300,
                restarts: int = 1, seed: int = 0, d: int = 64, memory_size: int = 50,
                batch_size: int = 32, lr: float = 0.01, margin: float = 0.1,
                weight_decay: float = 0.4, time_scale: float = 30.0, word_match: bool = True,
                progress=None) -> Dict:
    """Strong supervision: the supporting facts are the targets of the hops (teacher forcing:
    hop k's query uses the true facts before it). Test: slot_read_hard's own argmax chain.
    AdamW (decoupled weight decay) with a cosine learning-rate decay to 0 over the epochs: with a
    constant rate Adam keeps moving the word embeddings that get only noisy gradients by about
    lr per step, and that noise is what breaks the time order on the test set."""
    t0 = time.perf_counter()
    train, test = babi.load_task(data_dir, task, split)
    train, val = babi.split_validation(train, 0.1, seed)
    vocab = babi.Vocab(train + val + test)
    J = max(len(s) for ex in (train, val, test) for e in ex for s in e.story + [e.question])
    vec = lambda ex: babi.vectorize(ex, vocab, memory_size, J)  # noqa: E731
    tr, va, te = vec(train), vec(val), vec(test)
    facts = int((tr.supports >= 0).sum(1).max())  # supporting facts per question in this task
    hops = max(2, facts)  # a hop past the facts is read but not given to the answer

    def evaluate(model, data):
        with torch.no_grad():
            u0, M, Q = model.encode(data.stories, data.counts, data.queries)
            chosen, _ = slot_read_hard(u0, M, Q, data.counts, hops)
            chosen = chosen[:, :facts]
            pred = model.answer(data.queries, data.stories, chosen).argmax(-1)
            return (pred != data.answers).float().mean().item()

    runs, models = [], []
    for r in range(restarts):
        torch.manual_seed(seed * 7919 + task * 101 + r)
        g = torch.Generator().manual_seed(seed * 7919 + task * 101 + r)
        model = MemNN(len(vocab), memory_size, d, time_scale=time_scale, word_match=word_match)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
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
                chosen = sup[:, :facts]  # -1 (none) stays -1
                loss = loss + nn.functional.cross_entropy(model.answer(q, st, chosen), a,
                                                          reduction="sum")
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
            if progress is not None:
                progress(1)
        runs.append({"val_error": evaluate(model, va), "test_error": evaluate(model, te),
                     "hops": hops})
        models.append(model)
    best = min(range(restarts), key=lambda i: runs[i]["val_error"])
    return {"task": task, "test_error": runs[best]["test_error"],
            "val_error": runs[best]["val_error"], "restarts": runs, "model": models[best],
            "seconds": time.perf_counter() - t0}
