"""Slot memory ops (spec section 3: Memory Networks, Weston et al. 2014; End-To-End Memory
Networks, Sukhbaatar et al. 2015): fronts of torch.ops.memory_ext.slot_write_ / slot_read /
slot_read_hard with autograd through our backward kernels."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor


def slot_write_(M: Tensor, C: Tensor, count: Tensor, m: Tensor, c: Tensor,
                policy: str = "append") -> None:
    """Store m, c [B, d] at slot count[b] of M, C [B, N, d] and add 1 to count [B], in place.

    policy "append": writing to a full row (count == N) is an error naming the rows (nothing is
    written then). policy "ring": a full row overwrites its oldest slot (count mod N).

    Examples:
        >>> import torch, memory_ext
        >>> M, C, n = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long)
        >>> memory_ext.slot_write_(M, C, n, torch.ones(2, 4), torch.ones(2, 4))
        >>> n.tolist(), M[:, 0].sum().item()
        ([1, 1], 8.0)
    """
    torch.ops.memory_ext.slot_write_(M, C, count, m, c, policy)


def slot_read(query: Tensor, M: Tensor, C: Tensor, count: Tensor, hops: int = 1, *,
              R: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Soft multi-hop read (MemN2N): per hop s_i = u.M^k_i over live slots, p = softmax(s),
    o = sum_i p_i C^k_i, u = u + o (or R u + o).

    Args:
        query: u^0 [B, d]
        M, C: keys and values, [K, B, N, d] (per hop) or [B, N, d] (shared by all hops)
        count: live slots per row [B] int64 (slots >= min(count, N) are dead)
        hops: K
        R: optional [d, d] hop map

    Returns:
        (u [B, d], attention [B, K, N]; 0 at dead slots). An empty memory returns the query.

    Examples:
        >>> import torch, memory_ext
        >>> q, M = torch.randn(2, 8), torch.randn(2, 5, 8)
        >>> u, p = memory_ext.slot_read(q, M, M, torch.tensor([5, 2]), hops=3)
        >>> u.shape, p.shape, p[1, :, 2:].abs().sum().item()
        (torch.Size([2, 8]), torch.Size([2, 3, 5]), 0.0)
    """
    if not isinstance(hops, int) or hops < 1:
        raise ValueError(f"hops must be an int >= 1, got {hops!r}")
    u, attn, _ = torch.ops.memory_ext.slot_read(query, M, C, count, hops, R)
    return u, attn


def slot_read_hard(query: Tensor, M: Tensor, Q: Tensor, count: Tensor, hops: int = 2
                   ) -> Tuple[Tensor, Tensor]:
    """Hard multi-hop read (MemNN): o_k = argmax_i u.M_i over live slots (ties: lowest index),
    u = u + Q[o_k].

    Args:
        query: [B, d]; M, Q: [B, N, d]; count: [B] int64; hops: K

    Returns:
        (indices [B, K] int64, -1 for an empty memory; scores [B, K, N], -inf at dead slots,
        differentiable in query, M and Q for a margin ranking loss)
    """
    if not isinstance(hops, int) or hops < 1:
        raise ValueError(f"hops must be an int >= 1, got {hops!r}")
    return torch.ops.memory_ext.slot_read_hard(query, M, Q, count, hops)


def _read_setup(ctx, inputs, output):
    q, M, C, count, hops, R = inputs
    u, attn, saved = output
    ctx.save_for_backward(M, C, count, R if R is not None else M.new_empty(0), saved, attn)
    ctx.has_R = R is not None


def _read_backward(ctx, gu, gattn, _gsaved):
    M, C, count, R, saved, attn = ctx.saved_tensors
    dq, dM, dC, dR = torch.ops.memory_ext._slot_read_bwd(
        gu, gattn, M, C, count, R if ctx.has_R else None, saved, attn)
    return dq, dM, dC, None, None, (dR if ctx.has_R else None)


def _hard_setup(ctx, inputs, output):
    q, M, Q, count, hops = inputs
    ctx.save_for_backward(q, M, Q, count, output[0])


def _hard_backward(ctx, _gidx, gscores):
    q, M, Q, count, idx = ctx.saved_tensors
    # the kernel reads grad_scores of live slots only: a NaN or Inf gradient at a dead slot
    # (whose score is -inf) is ignored, one at a live slot propagates like the reference's
    dq, dM, dQ = torch.ops.memory_ext._slot_read_hard_bwd(gscores, q, M, Q, count, idx)
    return dq, dM, dQ, None, None


torch.library.register_autograd("memory_ext::slot_read", _read_backward, setup_context=_read_setup)
torch.library.register_autograd("memory_ext::slot_read_hard", _hard_backward,
                                setup_context=_hard_setup)
