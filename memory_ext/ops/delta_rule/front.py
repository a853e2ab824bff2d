"""The delta rule in flash-linear-attention's call layout (docs/spec.md section 2).

The delta rule is the one-layer linear case of the fast-weight memory (spec 1.4): with the state
S [K, V] of one head as W = S^T, one step S += beta k (v - S^T k)^T is a local-rule write of
layer width V with beta_mlp = beta V / 2, and o = S^T (scale q) is a read. So the recurrent form
runs on the fused scan kernel (state kept in the kernel across all T, own backward kernels),
heads folded into the batch.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .._fake import _fake
from ..mlp_memory import mlp_memory_scan
from ..reference import l2norm
from .chunk import delta_rule_chunk_fused, delta_rule_chunk_torch

# mode=None: the chunk form from this many steps on, per device type. CPU: the fused chunk
# kernel beat the recurrent form at every T measured, 1..1024 (B=2 H=4 K=V=64 and 128, forward
# and forward+backward; 6.9 against 11.5 ms fwd+bwd at T=512, K=V=64). CUDA: not yet measured
# on a GPU; fla's own layers switch to the chunk form above 64 steps, and so do we.
CHUNK_FROM_T = {"cpu": 1, "cuda": 65}


def _check(q, k, v, beta, initial_state, cu_seqlens):
    if q.dim() != 4:
        raise ValueError(f"q must be [B, T, H, K], got {list(q.shape)}")
    B, T, H, K = q.shape
    if K < 1:
        raise ValueError(f"q and k need a key width K >= 1, got q {list(q.shape)}")
    if tuple(k.shape) != (B, T, H, K):
        raise ValueError(f"k must be [B, T, H, K] = {[B, T, H, K]} like q, got {list(k.shape)}")
    if v.dim() != 4 or tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"v must be [B, T, H, V] = {[B, T, H, 'V']}, got {list(v.shape)}")
    if tuple(beta.shape) != (B, T, H):
        raise ValueError(f"beta must be [B, T, H] = {[B, T, H]}, got {list(beta.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v), ("beta", beta)):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} must be on {q.device} like q, got {t.device}")
    N = B
    if cu_seqlens is not None:
        if B != 1:
            raise ValueError(f"cu_seqlens packs sequences in B = 1, got B = {B}")
        if cu_seqlens.dim() != 1 or cu_seqlens.dtype not in (torch.int32, torch.int64):
            raise ValueError("cu_seqlens must be a 1-D int32/int64 tensor [N + 1]")
        b = cu_seqlens.tolist()
        if len(b) < 2 or b[0] != 0 or b[-1] != T or any(x > y for x, y in zip(b, b[1:])):
            raise ValueError(f"cu_seqlens must rise from 0 to T = {T}, got {b}")
        N = len(b) - 1
    if initial_state is not None:
        want = [N, H, K, v.shape[-1]]
        if list(initial_state.shape) != want:
            raise ValueError(f"initial_state must be [N, H, K, V] = {want}, got {list(initial_state.shape)}")
    return N


def _pad(x: Tensor, bounds, Tmax: int) -> Tensor:
    """Packed [1, T, ...] -> padded [N, Tmax, ...] (zeros after each sequence)."""
    out = x.new_zeros((len(bounds) - 1, Tmax) + tuple(x.shape[2:]))
    for i in range(len(bounds) - 1):
        out[i, : bounds[i + 1] - bounds[i]] = x[0, bounds[i]: bounds[i + 1]]
    return out


def _unpad(x: Tensor, bounds) -> Tensor:
    """Padded [N, Tmax, ...] -> packed [1, T, ...]."""
    return torch.cat([x[i, : bounds[i + 1] - bounds[i]] for i in range(len(bounds) - 1)], 0)[None]


def delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, *, scale: Optional[float] = None,
               initial_state: Optional[Tensor] = None, output_final_state: bool = False,
               use_qk_l2norm: bool = False, cu_seqlens: Optional[Tensor] = None,
               mode: Optional[str] = None, checkpoint_every: int = 16,
               chunk_size: Optional[int] = None) -> Tuple[Tensor, Optional[Tensor]]:
    """Delta-rule attention / memory, fla layout: per head, for t = 1..T,
    u_t = v_t - S^T k_t;  S += beta_t k_t u_t^T;  o_t = S^T (scale q_t).

    Args:
        q, k: [B, T, H, K]
        v: [B, T, H, V] (K != V allowed)
        beta: [B, T, H]
        scale: defaults to K ** -0.5
        initial_state: [N, H, K, V] (N = B, or the number of sequences with cu_seqlens)
        output_final_state: also return the final state [N, H, K, V]
        use_qk_l2norm: normalise q_t and k_t (x / sqrt(sum x^2 + 1e-6)) first
        cu_seqlens: [N + 1] int offsets of N sequences packed in B = 1 (fla's varlen layout)
        mode: "recurrent" (the fused scan kernel, state kept in the kernel across all T),
            "chunk" (the chunkwise WY form: per chunk a triangular substitution, then matmuls;
            fused CPU kernels with their own backward, torch ops (cuBLAS) on CUDA), or None:
            picked by T and device (CHUNK_FROM_T: always "chunk" on the CPU, where it was
            measured faster at every T; on CUDA "chunk" for T > 64)
        checkpoint_every: recurrent form: the backward stores the state every this many steps
        chunk_size: chunk form: steps per chunk (None: 16 on the CPU, measured best for
            K = V = 64 and 128; 64 for the torch-ops form on CUDA)

    Returns:
        (o [B, T, H, V] in v's dtype, final state [N, H, K, V] float32 or None). The state is
        float32 for float16 / bfloat16 / float32 inputs, float64 for float64 inputs.

    Examples:
        >>> import torch, memory_ext
        >>> q, k, v = (torch.randn(2, 16, 4, 32) for _ in range(3))
        >>> beta = torch.rand(2, 16, 4)
        >>> o, S = memory_ext.delta_rule(q, k, v, beta, output_final_state=True)
        >>> o.shape, S.shape
        (torch.Size([2, 16, 4, 32]), torch.Size([2, 4, 32, 32]))
    """
    if mode not in (None, "recurrent", "chunk"):
        raise ValueError(f"mode must be 'recurrent', 'chunk' or None, got {mode!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be an int >= 1 or None, got {chunk_size!r}")
    N = _check(q, k, v, beta, initial_state, cu_seqlens)
    B, T, H, K = q.shape
    V = v.shape[-1]
    out_dtype = v.dtype
    acc = torch.float64 if out_dtype == torch.float64 else torch.float32
    scale = K ** -0.5 if scale is None else float(scale)
    q, k, v, beta = (t.to(acc) for t in (q, k, v, beta))
    if use_qk_l2norm:
        q, k = l2norm(q), l2norm(k)
    bounds = None
    if cu_seqlens is not None:
        bounds = cu_seqlens.tolist()
        Tmax = max(b - a for a, b in zip(bounds, bounds[1:]))
        # padding steps have beta = 0: they leave the state unchanged
        q, k, v, beta = (_pad(t, bounds, Tmax) for t in (q, k, v, beta))
    Tp = q.shape[1]
    if mode is None:
        mode = "chunk" if Tp >= CHUNK_FROM_T.get(q.device.type, 65) else "recurrent"
    if mode == "chunk":
        S0 = None if initial_state is None else initial_state.to(acc)
        if q.device.type == "cpu":
            o, S = delta_rule_chunk_fused(q, k, v, beta, scale, S0, chunk_size or 16)
        else:
            o, S = delta_rule_chunk_torch(q, k, v, beta, scale, S0, chunk_size or 64)
        if bounds is not None:
            o = _unpad(o, bounds)
        return o.to(out_dtype), (S if output_final_state else None)

    def fold(x):  # [N, T, H, D] -> [N * H, T, 1, D]: every head is its own memory
        return x.permute(0, 2, 1, 3).reshape(N * H, Tp, 1, x.shape[-1])

    if initial_state is None:
        W0 = q.new_zeros(N * H, V, K)
    else:
        W0 = initial_state.to(acc).transpose(-1, -2).reshape(N * H, V, K)
    beta_mlp = beta.permute(0, 2, 1).reshape(N * H, Tp) * (V / 2.0)
    reads, (W_T,), _ = mlp_memory_scan(
        [W0], fold(k), [fold(v)], beta_mlp, fold(q * scale), rule="local",
        activation="identity", checkpoint_every=checkpoint_every)
    o = reads.reshape(N, H, Tp, V).permute(0, 2, 1, 3)
    if bounds is not None:
        o = _unpad(o, bounds)
    final = W_T.reshape(N, H, V, K).transpose(-1, -2) if output_final_state else None
    return o.to(out_dtype), final


def delta_rule_step(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, state: Tensor, *,
                    scale: Optional[float] = None, out: Optional[Tensor] = None) -> Tensor:
    """One decoding step of the delta rule, updating `state` in place:
    u = v - S^T k;  S += beta k u^T;  o = S^T (scale q).

    With `out` given and float32 / float64 inputs nothing is allocated and nothing waits on the
    device, so the call can be captured in a CUDA graph. No autograd (a decoding op); use
    delta_rule to train.

    Args:
        q, k: [B, H, K] (float32, float16 or bfloat16; float64 on CPU)
        v: [B, H, V]
        beta: [B, H]
        state: [B, H, K, V], contiguous, float32 (float64 for float64 inputs)
        scale: defaults to K ** -0.5
        out: [B, H, V] to write o into (allocated in v's dtype when None)

    float16 / bfloat16 inputs are upcast to float32 here (the sums and the state are float32,
    like delta_rule's); o is then rounded to v's dtype, or written into `out` (v's dtype or
    float32).

    Returns:
        o: [B, H, V] (`out` itself when given)

    Examples:
        >>> import torch, memory_ext
        >>> S = torch.zeros(1, 2, 16, 16)
        >>> q, k, v = (torch.randn(1, 2, 16) for _ in range(3))
        >>> o = memory_ext.delta_rule_step(q, k, v, torch.ones(1, 2), S)
        >>> o.shape, bool(S.abs().sum() > 0)
        (torch.Size([1, 2, 16]), True)
        >>> o16 = memory_ext.delta_rule_step(q.bfloat16(), k.bfloat16(), v.bfloat16(),
        ...                                  torch.ones(1, 2), S)   # the state stays float32
        >>> o16.dtype, S.dtype
        (torch.bfloat16, torch.float32)
    """
    if q.dim() != 3:
        raise ValueError(f"q must be [B, H, K], got {list(q.shape)}")
    if q.shape[-1] < 1:
        raise ValueError(f"q and k need a key width K >= 1, got q {list(q.shape)}")
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    low = (torch.float16, torch.bfloat16)
    if not any(t.dtype in low for t in (q, k, v, beta)):
        if out is None:
            out = v.new_empty(v.shape)
        torch.ops.memory_ext.delta_rule_step_(state, q, k, v, beta, scale, out)
        return out
    # half precision in: the kernel runs in float32 (the C++ op checks the state's dtype)
    q, k, v32, beta = (t.float() if t.dtype in low else t for t in (q, k, v, beta))
    if out is not None:
        if out.dtype not in (v.dtype, v32.dtype):
            raise TypeError(f"out must be {v.dtype} (v's dtype) or {v32.dtype}, got {out.dtype}")
        if tuple(out.shape) != tuple(v.shape) or out.device != v.device:
            raise ValueError(f"out must be [B, H, V] = {list(v.shape)} on {v.device}, got "
                             f"{list(out.shape)} on {out.device}")
    o = out if out is not None and out.dtype == v32.dtype else v32.new_empty(v32.shape)
    torch.ops.memory_ext.delta_rule_step_(state, q, k, v32, beta, scale, o)
    if out is None:
        return o.to(v.dtype)
    return out if o is out else out.copy_(o)


# --- fake (meta) kernels: output shapes for torch.compile and opcheck ---------------------------
@_fake("delta_rule_step_")
def _delta_rule_step_fake(state, q, k, v, beta, scale, out):
    return None  # writes state and out in place
