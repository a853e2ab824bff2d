"""End-To-End Memory Network (Sukhbaatar et al. 2015) on the fused slot_read op, as trained on
bAbI in the paper: position encoding (PE), temporal encoding, adjacent weight tying, linear start
(LS), random noise (RN), K = 3 hops, d = 20, memory of the 50 latest sentences.

Two details follow the authors' released code (MemN2N-babi-matlab) rather than the paper's text;
both were measured here on bAbI 1k with one seed (test error, tasks 16 / 6):
- position encoding l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J): the paper's printed formula
  (1 - j/J) - (k/d)(1 - 2j/J) left task 16 at 51% where this one reaches 0.2%;
- empty slots stay in the softmax with key and value 0 (score 0, an attention sink), as the
  authors' nil-padded memory does: masking them out left task 6 at 20% against 7%.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from ..ops.slots import slot_read


def position_encoding(sentence_len: int, d: int) -> Tensor:
    """l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), j = 1..J words, k = 1..d dims: [J, d]
    (the authors' code; a word's weights average 1 over the dims)."""
    J = sentence_len
    j = torch.arange(1, J + 1, dtype=torch.float32)[:, None]
    k = torch.arange(1, d + 1, dtype=torch.float32)[None, :]
    return 1 + 4 * (k - (d + 1) / 2) * (j - (J + 1) / 2) / (d * J)


class MemN2N(nn.Module):
    """Adjacent tying: embeddings E_0..E_K [V, d]; hop k reads keys A^k = E_{k-1} and values
    C^k = E_k; the question uses B = E_0 and the answer W = E_K^T. Temporal encodings T_0..T_K
    [time_slots, d] are tied the same way.

    forward(stories [B, N, J], counts [B], queries [B, J], time [B, N]) -> logits [B, V].
    Slots >= counts are empty: key and value 0, kept in the softmax (see the module notes).
    With linear=True (linear start) the hops skip the softmax (torch ops, not the fused op)."""

    def __init__(self, vocab_size: int, sentence_len: int, memory_size: int = 50, d: int = 20,
                 hops: int = 3, init_std: float = 0.1):
        super().__init__()
        self.hops, self.memory_size = hops, memory_size
        self.E = nn.ParameterList([nn.Parameter(torch.randn(vocab_size, d) * init_std)
                                   for _ in range(hops + 1)])
        self.T = nn.ParameterList([nn.Parameter(torch.randn(2 * memory_size, d) * init_std)
                                   for _ in range(hops + 1)])
        self.register_buffer("pe", position_encoding(sentence_len, d))

    def _embed(self, E: Tensor, words: Tensor) -> Tensor:
        """words [..., J] -> sum_j l_j * E[w_j] (pad id 0 contributes nothing): [..., d]."""
        e = nn.functional.embedding(words, E) * (words > 0)[..., None]
        return (e * self.pe).sum(-2)

    def memories(self, stories: Tensor, counts: Tensor, time: Tensor) -> Tuple[Tensor, Tensor]:
        """Keys M and values C [K, B, N, d] of every hop (0 at empty slots)."""
        live = (torch.arange(stories.shape[1], device=stories.device)[None, :] < counts[:, None])
        live = live[..., None].to(self.pe.dtype)
        emb = [(self._embed(E, stories) + T[time]) * live for E, T in zip(self.E, self.T)]
        return torch.stack(emb[:-1]), torch.stack(emb[1:])

    def forward(self, stories: Tensor, counts: Tensor, queries: Tensor, time: Tensor,
                linear: bool = False) -> Tensor:
        u = self._embed(self.E[0], queries)
        M, C = self.memories(stories, counts, time)
        if linear:
            for k in range(self.hops):
                p = torch.einsum("bd,bnd->bn", u, M[k])
                u = u + torch.einsum("bn,bnd->bd", p, C[k])
        else:
            every_slot = torch.full_like(counts, stories.shape[1])
            u, _ = slot_read(u, M, C, every_slot, self.hops)
        return u @ self.E[-1].T


def time_indices(counts: Tensor, memory_size: int, noise: float = 0.0,
                 generator: torch.Generator = None) -> Tensor:
    """Temporal index of every slot [B, N]: its age (newest = 0), plus, with noise > 0 (random
    noise, RN), about a `noise` fraction of empty memories inserted among the ages."""
    B = counts.shape[0]
    slot = torch.arange(memory_size)[None, :]
    age = (counts[:, None] - 1 - slot).clamp(min=0)
    if noise > 0:
        gaps = (torch.rand(B, memory_size, generator=generator) < noise).long().cumsum(-1)
        age = age + gaps.gather(1, age)
    return age.clamp(max=2 * memory_size - 1)
