"""flash-linear-attention's delta-rule ops (fla.ops.delta_rule, fla 0.6.0) on memory_ext's kernels.

    from memory_ext.compat.fla import chunk_delta_rule, fused_recurrent_delta_rule

Same signatures, defaults and positional order, same return structure ((o, final_state)), o in
q's dtype and the final state float32, fla's rounding of the in-kernel l2norm, and fla's
argument checks. Underneath run memory_ext.delta_rule's chunk form (chunk_delta_rule) and
recurrent form (fused_recurrent_delta_rule), on the CPU and on CUDA; a decoding call (T = 1, no
autograd) runs delta_rule_step. A per-element beta [B, T, H, V] (recurrent form) runs as H * V
heads of value width 1 (exact; see _per_column). docs/compat_fla.md lists what still differs.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..ops.delta_rule import delta_rule, delta_rule_step
from ..ops.delta_rule.front import _check as _check_shapes
from ..ops.reference import l2norm

__all__ = ["FlaAssertionError", "chunk_delta_rule", "fused_recurrent_delta_rule"]

class FlaAssertionError(ValueError, AssertionError):
    """An argument fla refuses with an ``assert``. An AssertionError, as in fla, but raised
    explicitly (``python -O`` does not drop it) and also a ValueError, like memory_ext's own
    argument errors."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise FlaAssertionError(message)


def _check_varlen(q: Tensor, initial_state: Optional[Tensor], cu_seqlens: Optional[Tensor]) -> None:
    """fla's two varlen checks (ValueError there too)."""
    if cu_seqlens is None:
        return
    if q.shape[0] != 1:
        raise ValueError(f"cu_seqlens packs the sequences in a batch of 1: q must be [1, T, H, K], "
                         f"got batch size {q.shape[0]}; flatten variable-length inputs first")
    if initial_state is not None and initial_state.shape[0] != len(cu_seqlens) - 1:
        raise ValueError(f"initial_state needs one state per sequence of cu_seqlens: "
                         f"{len(cu_seqlens) - 1}, got {initial_state.shape[0]}")


def _work_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 when any input is float64, else float32 (what the sums and the state run in)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _l2norm_like_fla(x: Tensor) -> Tensor:
    """fla's in-kernel l2norm: normalised in float32 (float64 for float64 x) and rounded back to
    x's dtype, as fla's l2norm_fwd stores it."""
    return l2norm(x.to(_work_dtype(x))).to(x.dtype)


def _per_column(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, initial_state: Optional[Tensor],
                **kw) -> Tuple[Tensor, Optional[Tensor]]:
    """The delta rule with a per-element beta [B, T, H, V]. Column j of a head's state S [K, V]
    follows its own delta rule, S[:, j] += beta_j k (v_j - k^T S[:, j]), so the V columns run as
    H * V heads of value width 1 with q and k shared across them (expanded: V times their
    memory). Exact, on the same kernels and their backward."""
    B, T, H, K = q.shape
    V = v.shape[-1]

    def wide(x):  # [B, T, H, K] -> [B, T, H * V, K], head (h, j) sees x[:, :, h]
        return x.unsqueeze(3).expand(B, T, H, V, K).reshape(B, T, H * V, K)

    s0 = None if initial_state is None else initial_state.transpose(-1, -2).reshape(-1, H * V, K, 1)
    o, S = delta_rule(wide(q), wide(k), v.reshape(B, T, H * V, 1), beta.reshape(B, T, H * V),
                      initial_state=s0, **kw)
    return o.reshape(B, T, H, V), (None if S is None else S.reshape(-1, H, V, K).transpose(-1, -2))


def _decode_step(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float,
                 initial_state: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """T = 1 without autograd: one delta_rule_step on a float32 copy of the state."""
    B, _, H, K = q.shape
    V = v.shape[-1]
    if initial_state is None:
        S = q.new_zeros(B, H, K, V, dtype=torch.float32)
    else:
        S = initial_state.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    o = q.new_empty(B, H, V, dtype=torch.float32)
    delta_rule_step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0], S, scale=scale, out=o)
    return o[:, None], S


def _run(q, k, v, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel,
         cu_seqlens, mode, chunk_size=None):
    """Both fronts, after their checks: (o in q's dtype, final state float32 or None)."""
    # shapes, dtypes and devices checked in the caller's terms (before any per-column folding)
    per_element = beta.dim() == 4
    _check_shapes(q, k, v, q[..., 0] if per_element else beta, initial_state, cu_seqlens)
    if per_element and tuple(beta.shape) != tuple(v.shape):
        raise ValueError(f"beta must be [B, T, H] = {list(v.shape[:3])} or per element "
                         f"[B, T, H, V] = {list(v.shape)}, got {list(beta.shape)}")
    out_dtype = q.dtype
    if use_qk_l2norm_in_kernel:
        q, k = _l2norm_like_fla(q), _l2norm_like_fla(k)
    scale = k.shape[-1] ** -0.5 if scale is None else scale
    work = _work_dtype(q, k, v, beta)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (q, k, v, beta, initial_state))
    if (mode == "recurrent" and q.shape[1] == 1 and beta.dim() == 3
            and cu_seqlens is None and work == torch.float32 and not needs_grad):
        o, S = _decode_step(q, k, v, beta, scale, initial_state)
    else:
        # v in the working dtype: delta_rule returns o in v's dtype, which is then rounded once,
        # to q's dtype
        kw = dict(scale=scale, output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                  mode=mode, chunk_size=chunk_size)
        if per_element:
            o, S = _per_column(q, k, v.to(work), beta, initial_state, **kw)
        else:
            o, S = delta_rule(q, k, v.to(work), beta, initial_state=initial_state, **kw)
    return o.to(out_dtype), (S.float() if output_final_state else None)


def chunk_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: Optional[float] = None,
                     initial_state: Optional[Tensor] = None, output_final_state: bool = False,
                     use_qk_l2norm_in_kernel: bool = False, cu_seqlens: Optional[Tensor] = None,
                     cu_seqlens_cpu: Optional[Tensor] = None, **kwargs) -> Tuple[Tensor, Optional[Tensor]]:
    """fla.ops.delta_rule.chunk_delta_rule on memory_ext's chunk form (the fused chunk kernels on
    the CPU, torch ops on CUDA).

    Args:
        q, k: [B, T, H, K]; v: [B, T, H, V]; q, k and v of one dtype, not float32 (fla's chunk
            form refuses float32; use fused_recurrent_delta_rule for it)
        beta: [B, T, H]
        scale: defaults to K ** -0.5
        initial_state: [N, H, K, V] (N = B, or the number of sequences of cu_seqlens), any dtype
        output_final_state: also return the final state [N, H, K, V] (float32)
        use_qk_l2norm_in_kernel: l2-normalise q and k first (rounded to their dtype, as fla)
        cu_seqlens: [N + 1] offsets of N sequences packed in B = 1
        cu_seqlens_cpu: a CPU copy of cu_seqlens; when given, the offsets are read from it
            (no device sync)
        chunk_size (keyword): 16, 32 or 64 (default 64; the result is the same up to rounding)
        head_first (keyword): removed in fla; passing it raises fla's DeprecationWarning

    Returns:
        (o [B, T, H, V] in q's dtype, final state [N, H, K, V] float32, or None)

    Examples:
        >>> import torch
        >>> from memory_ext.compat.fla import chunk_delta_rule
        >>> q, k, v = (torch.randn(2, 20, 4, 16, dtype=torch.bfloat16) for _ in range(3))
        >>> beta = torch.rand(2, 20, 4, dtype=torch.bfloat16)
        >>> o, ht = chunk_delta_rule(q, k, v, beta, None, None, True, True)
        >>> o.dtype, ht.dtype, tuple(ht.shape)
        (torch.bfloat16, torch.float32, (2, 4, 16, 16))
    """
    _require(q.dtype == k.dtype == v.dtype,
             f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    _require(q.dtype != torch.float32,
             "q, k, v: the chunk form does not take float32 (fla's refuses it); use bfloat16 or "
             "float16, or fused_recurrent_delta_rule")
    _require(beta.dim() == 3, f"beta must be [B, T, H] in the chunk form, got {list(beta.shape)}")
    if "head_first" in kwargs:
        raise DeprecationWarning("head_first has been removed. Inputs must be in `[B, T, H, ...]` format.")
    chunk_size = kwargs.pop("chunk_size", 64)
    if kwargs:
        raise TypeError(f"chunk_delta_rule() got unexpected keyword arguments {sorted(kwargs)}")
    if isinstance(chunk_size, bool) or chunk_size not in (16, 32, 64):
        raise ValueError(f"chunk_size must be 16, 32 or 64, got {chunk_size!r}")
    _check_varlen(q, initial_state, cu_seqlens)
    if cu_seqlens is not None and cu_seqlens_cpu is not None:
        cu_seqlens = cu_seqlens_cpu
    return _run(q, k, v, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel,
                cu_seqlens, "chunk", int(chunk_size))


def fused_recurrent_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Optional[Tensor] = None,
                               scale: Optional[float] = None, initial_state: Optional[Tensor] = None,
                               output_final_state: bool = False, use_qk_l2norm_in_kernel: bool = False,
                               cu_seqlens: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
    """fla.ops.delta_rule.fused_recurrent_delta_rule on memory_ext's recurrent form (the fused
    scan kernel, state kept in the kernel across all T).

    Args:
        q, k: [B, T, H, K]; v: [B, T, H, V]; any float dtypes (float32 included)
        beta: [B, T, H], or per element [B, T, H, V]; None: ones
        scale: > 0; defaults to K ** -0.5
        initial_state: [N, H, K, V] (N = B, or the number of sequences of cu_seqlens), any dtype
        output_final_state: also return the final state [N, H, K, V] (float32)
        use_qk_l2norm_in_kernel: l2-normalise q and k first (rounded to their dtype, as fla)
        cu_seqlens: [N + 1] offsets of N sequences packed in B = 1

    Returns:
        (o [B, T, H, V] in q's dtype, final state [N, H, K, V] float32, or None)

    Decoding as in fla: T = 1 with initial_state and output_final_state=True; without autograd
    that step runs memory_ext.delta_rule_step on a float32 copy of the state.

    Examples:
        >>> import torch
        >>> from memory_ext.compat.fla import fused_recurrent_delta_rule
        >>> q, k, v = (torch.randn(1, 1, 2, 8) for _ in range(3))
        >>> h = torch.zeros(1, 2, 8, 8)
        >>> o, h = fused_recurrent_delta_rule(q, k, v, initial_state=h, output_final_state=True)
        >>> tuple(o.shape), tuple(h.shape)
        ((1, 1, 2, 8), (1, 2, 8, 8))
    """
    _check_varlen(q, initial_state, cu_seqlens)
    if scale is not None:
        _require(scale > 0, f"scale must be positive, got {scale}")
    if beta is None:
        beta = torch.ones_like(q[..., 0])
    return _run(q, k, v, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel,
                cu_seqlens, "recurrent")
