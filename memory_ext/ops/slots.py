"""Slot memory ops (spec section 3: Memory Networks, Weston et al. 2014; End-To-End Memory
Networks, Sukhbaatar et al. 2015): fronts of torch.ops.memory_ext.slot_write_ / slot_read /
slot_read_hard with autograd through our backward kernels."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ._fake import _dtype_like, _fake, _rank


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


# --- fake (meta) kernels: output shapes for torch.compile and opcheck ---------------------------
@_fake("slot_write_")
def _slot_write_fake(M, C, count, m, c, policy):
    _rank("slot_write_", "M", M, 3)
    for n, t in (("C", C), ("m", m), ("c", c)):
        _dtype_like("slot_write_", n, t, M, "M")
    return None


@_fake("slot_read")
def _slot_read_fake(query, M, C, count, hops, R):
    B, d = query.shape
    N = M.shape[-2]
    return query.new_empty(B, d), query.new_empty(B, hops, N), query.new_empty(B, hops, d)


@_fake("_slot_read_bwd")
def _slot_read_bwd_fake(grad_u, grad_attention, M, C, count, R, saved_u, attention):
    _rank("_slot_read_bwd", "grad_u", grad_u, 2)
    _rank("_slot_read_bwd", "M", M, 3, 4)
    d = grad_u.shape[1]
    dR = grad_u.new_empty(d, d) if R is not None else grad_u.new_empty(0)
    return grad_u.new_empty(grad_u.shape), M.new_empty(M.shape), C.new_empty(C.shape), dR


@_fake("slot_read_hard")
def _slot_read_hard_fake(query, M, Q, count, hops):
    B, N = M.shape[0], M.shape[1]
    return count.new_empty(B, hops), query.new_empty(B, hops, N)


@_fake("_slot_read_hard_bwd")
def _slot_read_hard_bwd_fake(grad_scores, query, M, Q, count, indices):
    _rank("_slot_read_hard_bwd", "query", query, 2)
    _rank("_slot_read_hard_bwd", "M", M, 3)
    _rank("_slot_read_hard_bwd", "indices", indices, 2)
    return query.new_empty(query.shape), M.new_empty(M.shape), Q.new_empty(Q.shape)
