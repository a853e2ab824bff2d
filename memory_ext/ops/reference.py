"""Plain-PyTorch reference of every memory_ext op (the oracle of the tests and the eager
baseline of the benchmarks). Written independently of the kernels, straight from
docs/spec.md section 1; autograd gives its gradients (rule "grad" takes its inner
gradient with torch.autograd.grad(create_graph=True)).

Shapes: weights[l] [B, n_{l+1}, n_l]; keys [B, H, n_0]; per-layer targets [B, H, n_l];
values [B, H, n_L]; beta [B] or [B, L]; alpha None, float or [B].
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

_ACTS = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "identity": lambda x: x,
}


def _act(name: str):
    if name not in _ACTS:
        raise ValueError(f"activation must be one of {sorted(_ACTS)}, got {name!r}")
    return _ACTS[name]


def mlp_forward_all(weights: Sequence[Tensor], keys: Tensor, activation: str = "tanh") -> List[Tensor]:
    """Activations a^0..a^L of keys [B, H, n_0] (a^L linear). Returns a list of L + 1 tensors."""
    act = _act(activation)
    acts = [keys]
    for l, w in enumerate(weights):
        p = torch.matmul(acts[-1], w.transpose(1, 2))
        acts.append(act(p) if l < len(weights) - 1 else p)
    return acts


def mlp_read(weights: Sequence[Tensor], keys: Tensor, activation: str = "tanh") -> Tensor:
    """f_W(keys): [B, H, n_L]."""
    return mlp_forward_all(weights, keys, activation)[-1]


def _per_layer(beta: Tensor, L: int) -> List[Tensor]:
    """beta [B] or [B, L] -> L tensors [B, 1, 1]."""
    if beta.dim() == 1:
        return [beta[:, None, None]] * L
    return [beta[:, l, None, None] for l in range(L)]


def recon_loss(weights: Sequence[Tensor], keys: Tensor, values: Tensor, activation: str = "tanh") -> Tensor:
    """(1 / (H n_L)) sum_h ||f_W(k_h) - v_h||^2 per batch element: [B]."""
    out = mlp_read(weights, keys, activation)
    return ((out - values) ** 2).flatten(1).mean(1)


def _local_updates(weights, keys, targets, activation):
    acts = mlp_forward_all(weights, keys, activation)
    H = keys.shape[1]
    ups = []
    for l in range(len(weights)):
        n = weights[l].shape[1]
        err = (2.0 / (H * n)) * (acts[l + 1] - targets[l])  # [B, H, n_{l+1}]
        ups.append(torch.matmul(err.transpose(1, 2), acts[l]))  # [B, n_{l+1}, n_l]
    return ups


def _grad_updates(weights, keys, values, activation):
    need_graph = torch.is_grad_enabled() and any(
        t.requires_grad for t in (*weights, keys, values))
    with torch.enable_grad():
        # d loss / d W with the keys and values held fixed: a fresh alias of W, so that a path
        # W -> read -> controller -> keys is not counted (a plain W would give the total
        # derivative when the keys were made from an earlier read of this same W)
        ws = [w.view_as(w) if w.requires_grad else w.detach().requires_grad_() for w in weights]
        loss = recon_loss(ws, keys, values, activation).sum()
        grads = torch.autograd.grad(loss, ws, create_graph=need_graph)
    return list(grads) if need_graph else [g.detach() for g in grads]


def mlp_write(weights: Sequence[Tensor], keys: Tensor, targets: Union[Tensor, Sequence[Tensor]],
              beta: Tensor, *, rule: str = "local", activation: str = "tanh",
              alpha: Union[None, float, Tensor] = None) -> List[Tensor]:
    """One write (spec 1.2 / 1.3 / 1.5): W' = (1 - alpha) W - beta * update."""
    L = len(weights)
    if rule == "local":
        ups = _local_updates(weights, keys, list(targets), activation)
    elif rule == "grad":
        values = targets if isinstance(targets, Tensor) else targets[0]
        ups = _grad_updates(weights, keys, values, activation)
    else:
        raise ValueError(f"rule must be 'local' or 'grad', got {rule!r}")
    betas = _per_layer(beta, L)
    out = []
    for l in range(L):
        w = weights[l]
        if alpha is not None:
            a = alpha[:, None, None] if isinstance(alpha, Tensor) else alpha
            w = (1 - a) * w
        out.append(w - betas[l] * ups[l])
    return out


def mlp_step(weights, write_keys, targets, beta, read_keys, *, rule="local", activation="tanh",
             alpha=None, recon_values=None) -> Tuple[List[Tensor], Tensor, Optional[Tensor]]:
    """Write then read (spec 1.6). Returns (new_weights, reads [B, Hr, n_L], recon [B] or None).
    recon uses recon_values, or for rule "grad" the values being written."""
    new = mlp_write(weights, write_keys, targets, beta, rule=rule, activation=activation, alpha=alpha)
    reads = mlp_read(new, read_keys, activation)
    if recon_values is None and rule == "grad":
        recon_values = targets if isinstance(targets, Tensor) else targets[0]
    recon = None if recon_values is None else recon_loss(new, write_keys, recon_values, activation)
    return new, reads, recon


def mlp_scan(weights, write_keys, targets, beta, read_keys, *, rule="local", activation="tanh",
             alpha=None, recon_values=None) -> Tuple[Tensor, List[Tensor], Optional[Tensor]]:
    """T steps (spec 1.7), time is dim 1 of every stacked input. Keeps every W_t alive under
    autograd. Returns (reads [B, T, Hr, n_L], final_weights, recon [B, T] or None)."""
    T = write_keys.shape[1]
    w = list(weights)
    reads, recons = [], []
    for t in range(T):
        tg = targets[:, t] if isinstance(targets, Tensor) else [z[:, t] for z in targets]
        rv = None if recon_values is None else recon_values[:, t]
        w, r, rc = mlp_step(w, write_keys[:, t], tg, beta[:, t], read_keys[:, t], rule=rule,
                            activation=activation, alpha=alpha, recon_values=rv)
        reads.append(r)
        recons.append(rc)
    if T == 0:
        B, Hr, nL = read_keys.shape[0], read_keys.shape[2], weights[-1].shape[1]
        has_recon = recon_values is not None or rule == "grad"
        return (read_keys.new_zeros(B, 0, Hr, nL), w,
                read_keys.new_zeros(B, 0) if has_recon else None)
    recon = None if recons[0] is None else torch.stack(recons, 1)
    return torch.stack(reads, 1), w, recon


# --- delta rule (spec section 2), flash-linear-attention layout ------------------------------
def l2norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """x / sqrt(sum(x^2) + eps) over the last dim (fla's l2norm)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, *, scale: Optional[float] = None,
               initial_state: Optional[Tensor] = None, output_final_state: bool = False,
               use_qk_l2norm: bool = False, cu_seqlens: Optional[Tensor] = None):
    """Step-by-step delta rule (spec 2): q, k [B, T, H, K], v [B, T, H, V], beta [B, T, H],
    state [B, H, K, V] (float32; float64 when v is float64). cu_seqlens [N + 1] packs N
    sequences in B = 1. Returns (o [B, T, H, V] in v's dtype, final state [N, H, K, V] or None)."""
    if cu_seqlens is not None:
        outs, states = [], []
        bounds = cu_seqlens.tolist()
        for i in range(len(bounds) - 1):
            sl = slice(bounds[i], bounds[i + 1])
            s0 = None if initial_state is None else initial_state[i:i + 1]
            o, s = delta_rule(q[:, sl], k[:, sl], v[:, sl], beta[:, sl], scale=scale,
                              initial_state=s0, output_final_state=True,
                              use_qk_l2norm=use_qk_l2norm)
            outs.append(o)
            states.append(s)
        return torch.cat(outs, 1), (torch.cat(states, 0) if output_final_state else None)
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    scale = K ** -0.5 if scale is None else scale
    q, k, v, beta = (t.to(acc) for t in (q, k, v, beta))
    if use_qk_l2norm:
        q, k = l2norm(q), l2norm(k)
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    outs = []
    for t in range(T):
        kt = k[:, t]                                            # [B, H, K]
        u = v[:, t] - torch.einsum("bhk,bhkv->bhv", kt, S)       # [B, H, V]
        S = S + beta[:, t, :, None, None] * kt[..., :, None] * u[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    o = torch.stack(outs, 1) if T else v.new_zeros(B, 0, H, V, dtype=acc)
    return o.to(v.dtype), (S if output_final_state else None)


# --- slot memory (spec section 3) -----------------------------------------------------------

def slot_write(M: Tensor, C: Tensor, count: Tensor, m: Tensor, c: Tensor, policy: str = "append"):
    """Out-of-place reference of slot_write_: returns (M', C', count')."""
    N = M.shape[1]
    if policy == "append" and bool((count >= N).any()):
        raise RuntimeError("memory full")
    slot = count % N if policy == "ring" else count
    M, C = M.clone(), C.clone()
    rows = torch.arange(M.shape[0])
    M[rows, slot] = m
    C[rows, slot] = c
    return M, C, count + 1


def _live_rows(X: Tensor, live: Tensor) -> Tensor:
    """X [B, N, d] with the rows of dead slots (live [B, N] False) replaced by 0."""
    return torch.where(live[..., None], X, torch.zeros((), dtype=X.dtype, device=X.device))


def slot_read(query: Tensor, M: Tensor, C: Tensor, count: Tensor, hops: int, R=None):
    """Soft multi-hop read, spec 3.2: (u [B, d], attention [B, K, N])."""
    N = M.shape[-2]
    live = torch.arange(N, device=query.device)[None, :] < count[:, None]  # [B, N]
    u, attn = query, []
    for k in range(hops):
        # slots past count never take part: their rows are masked out (not multiplied by 0, which
        # would turn a NaN there, or in a gradient, into NaN), so their gradients are exactly 0
        Mk = _live_rows(M[k] if M.dim() == 4 else M, live)
        Ck = _live_rows(C[k] if C.dim() == 4 else C, live)
        s = torch.einsum("bd,bnd->bn", u, Mk).masked_fill(~live, float("-inf"))
        # a slot past count is not in the memory: its attention is 0 (an empty memory attends
        # nowhere), also when a NaN or Inf among the live slots makes their attention NaN
        p = torch.where(live, torch.softmax(s, -1), torch.zeros_like(s))
        o = torch.einsum("bn,bnd->bd", p, Ck)
        u = (u if R is None else u @ R.T) + o
        attn.append(p)
    return u, torch.stack(attn, 1)


def slot_read_hard(query: Tensor, M: Tensor, Q: Tensor, count: Tensor, hops: int):
    """Hard multi-hop read, spec 3.3: (indices [B, K], scores [B, K, N])."""
    N = M.shape[1]
    live = torch.arange(N, device=query.device)[None, :] < count[:, None]
    u, idx, scores = query, [], []
    rows = torch.arange(M.shape[0], device=query.device)
    M = _live_rows(M, live)
    for _ in range(hops):
        s = torch.einsum("bd,bnd->bn", u, M).masked_fill(~live, float("-inf"))
        o = s.argmax(-1)  # first maximum: the lowest index on ties
        o = torch.where(live.any(-1), o, torch.full_like(o, -1))
        u = u + torch.where((o >= 0)[:, None], Q[rows, o.clamp(min=0)], torch.zeros_like(u))
        idx.append(o)
        scores.append(s)
    return torch.stack(idx, 1), torch.stack(scores, 1)
