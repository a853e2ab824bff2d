"""Chunkwise-parallel delta rule (the WY / UT-transform form of DeltaNet, arXiv 2406.06484).

Inside a chunk of C steps with state S_0 [K, V] at its start, the pseudo-values u_t =
beta_t (v_t - S_{t-1}^T k_t) satisfy (I + tril(diag(beta) K K^T, -1)) U = diag(beta) (V - K S_0),
so with A = that unit lower-triangular matrix, W = A^-1 diag(beta) K and U~ = A^-1 diag(beta) V
(one triangular solve per chunk, all chunks at once):
    U = U~ - W S_0,   O = scale * (Q S_0 + tril(Q K^T) U),   S_C = S_0 + K^T U.
Only the C x C solve is per chunk; the chunks are then chained by matmuls.

Two implementations: `delta_rule_chunk_fused` runs the fused kernels (torch.ops.memory_ext.
delta_rule_chunk and its backward _delta_rule_chunk_bwd, csrc/include/memory_ext/
delta_rule_chunk_core.h; CPU), and `delta_rule_chunk_torch` is the same math in torch ops (batched
matmuls and a triangular solve, autograd gives the backward), used on devices without the
fused chunk kernel (CUDA: cuBLAS).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .._fake import _fake


def _fold(x: Tensor) -> Tensor:
    """[N, T, H, D] -> [N * H, T, D] contiguous (every head its own sequence)."""
    N, T, H, D = x.shape
    return x.permute(0, 2, 1, 3).reshape(N * H, T, D).contiguous()


def delta_rule_chunk_fused(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float,
                           S0: Optional[Tensor], chunk: int = 16) -> Tuple[Tensor, Tensor]:
    """The fused chunk kernels. Arguments and returns as in delta_rule_chunk_torch."""
    N, T, H, K = q.shape
    V = v.shape[-1]
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (q, k, v, beta, S0))
    b = beta.permute(0, 2, 1).reshape(N * H, T).contiguous()
    s0 = None if S0 is None else S0.reshape(N * H, K, V)
    o, S, _ = torch.ops.memory_ext.delta_rule_chunk(
        _fold(q), _fold(k), _fold(v), b, s0, scale, chunk, needs_grad)
    return o.reshape(N, H, T, V).permute(0, 2, 1, 3), S.reshape(N, H, K, V)


def _chunk_setup(ctx, inputs, output):
    q, k, v, beta, S0, scale, chunk, save_states = inputs
    ctx.save_for_backward(q, k, v, beta, output[2])
    ctx.scale, ctx.chunk, ctx.saved_states = scale, chunk, save_states
    ctx.had_S0 = S0 is not None


def _chunk_backward(ctx, grad_o, grad_S, _grad_states):
    if not ctx.saved_states:
        raise RuntimeError("delta_rule_chunk ran with save_states=False: no backward. Call it "
                           "with save_states=True (memory_ext.delta_rule does when grad is on)")
    q, k, v, beta, states = ctx.saved_tensors
    if grad_o is None:
        grad_o = torch.zeros(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype, device=q.device)
    dq, dk, dv, db, dS0 = torch.ops.memory_ext._delta_rule_chunk_bwd(
        q, k, v, beta, states, grad_o, grad_S, ctx.scale, ctx.chunk)
    return dq, dk, dv, db, (dS0 if ctx.had_S0 else None), None, None, None


torch.library.register_autograd("memory_ext::delta_rule_chunk", _chunk_backward,
                                setup_context=_chunk_setup)


def delta_rule_chunk_torch(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float,
                     S0: Optional[Tensor], chunk: int = 64) -> Tuple[Tensor, Tensor]:
    """q, k [N, T, H, K], v [N, T, H, V], beta [N, T, H] (already in the accumulation dtype,
    q and k already normalised if asked); S0 [N, H, K, V] or None.
    Returns (o [N, T, H, V], final state [N, H, K, V])."""
    N, T, H, K = q.shape
    V = v.shape[-1]
    n = (T + chunk - 1) // chunk
    pad = n * chunk - T
    if pad:  # zero keys and rates leave the state alone; the padded outputs are dropped
        q, k, v = (torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        beta = torch.nn.functional.pad(beta, (0, 0, 0, pad))

    def chunks(x):  # [N, T, H, D] -> [N, H, n, C, D]
        return x.reshape(N, n, chunk, H, x.shape[-1]).permute(0, 3, 1, 2, 4)

    Q, Kc, Vc = chunks(q), chunks(k), chunks(v)
    b = beta.reshape(N, n, chunk, H).permute(0, 3, 1, 2).unsqueeze(-1)      # [N, H, n, C, 1]
    strict = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril(-1)
    A = torch.eye(chunk, dtype=q.dtype, device=q.device) + \
        (b * (Kc @ Kc.transpose(-1, -2))).masked_fill(~strict, 0)
    W = torch.linalg.solve_triangular(A, b * Kc, upper=False, unitriangular=True)   # [N,H,n,C,K]
    U_ = torch.linalg.solve_triangular(A, b * Vc, upper=False, unitriangular=True)  # [N,H,n,C,V]
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    QK = (Q @ Kc.transpose(-1, -2)).masked_fill(~causal, 0)                 # [N, H, n, C, C]
    S = q.new_zeros(N, H, K, V) if S0 is None else S0
    outs = []
    for c in range(n):
        U = U_[:, :, c] - W[:, :, c] @ S                                     # [N, H, C, V]
        outs.append(scale * (Q[:, :, c] @ S + QK[:, :, c] @ U))
        S = S + Kc[:, :, c].transpose(-1, -2) @ U
    o = torch.stack(outs, 2).reshape(N, H, n * chunk, V).permute(0, 2, 1, 3)
    return o[:, :T], S


# --- fake (meta) kernels: output shapes for torch.compile and opcheck ---------------------------
@_fake("delta_rule_chunk")
def _delta_rule_chunk_fake(q, k, v, beta, initial_state, scale, chunk_size, save_states):
    BH, T, K = q.shape
    V = v.shape[-1]
    n = (T + chunk_size - 1) // chunk_size if T else 0
    states = q.new_empty(BH, n, K, V) if save_states else q.new_empty(0)
    return q.new_empty(BH, T, V), q.new_empty(BH, K, V), states


@_fake("_delta_rule_chunk_bwd")
def _delta_rule_chunk_bwd_fake(q, k, v, beta, states, grad_o, grad_final, scale, chunk_size):
    BH, _, K = q.shape
    return (q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape),
            beta.new_empty(beta.shape), q.new_empty(BH, K, v.shape[-1]))
