"""Public fused ops of the MLP fast-weight memory (docs/spec.md section 1).

Every function here is a thin typed front of a torch.ops.memory_ext op (CPU and CUDA kernels,
fake kernels for torch.compile, autograd through our own backward kernels). The weights of the
memory are a list of L tensors, weights[l] of shape [B, n_{l+1}, n_l] (out x in), l = 0..L-1.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ._fake import _dtype_like, _fake, _rank
from ._fake import _weights as _weight_ranks

_RULES = ("local", "grad")

BetaLike = Union[Tensor, float]
AlphaLike = Union[None, float, Tensor]


def _weights(weights: Sequence[Tensor], name: str = "weights") -> List[Tensor]:
    if isinstance(weights, Tensor) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"{name} must be a list of L tensors [B, n_(l+1), n_l], got {type(weights).__name__}")
    return list(weights)


def _targets(targets, rule: str, lead: str = "B") -> List[Tensor]:
    if rule not in _RULES:
        raise ValueError(f"rule must be 'local' or 'grad', got {rule!r}")
    if rule == "grad":
        if isinstance(targets, Tensor):
            return [targets]
        if isinstance(targets, (list, tuple)) and len(targets) == 1:
            return list(targets)
        raise TypeError(f"targets must be the values tensor [{lead}, H, n_L] for rule 'grad'")
    if isinstance(targets, Tensor) or not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list of L tensors [{lead}, H, n_l] (l = 1..L) for rule 'local'")
    return list(targets)


def _rate(value, like: Tensor, name: str, dims: int = 1) -> Tensor:
    """A tensor as it is; a float broadcast to the first `dims` dims of `like` ([B] or [B, T])."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float)):
        return torch.full(tuple(like.shape[:dims]), float(value), dtype=like.dtype, device=like.device)
    raise TypeError(f"{name} must be a tensor or a float, got {type(value).__name__}")


def _alpha(alpha: AlphaLike, like: Tensor) -> Optional[Tensor]:
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)):
        if not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        if float(alpha) == 0.0:
            return None  # no decay costs nothing
    return _rate(alpha, like, "alpha")


def mlp_memory_read(weights: Sequence[Tensor], keys: Tensor, activation: str = "tanh") -> Tensor:
    """Read the memory: push every key through the MLP f_W (spec 1.1).

    Args:
        weights: L tensors, weights[l]: [B, n_{l+1}, n_l] (float32; float64 on CPU)
        keys: [B, H, n_0]
        activation: hidden-layer activation, "tanh" | "sigmoid" | "relu" | "identity"

    Returns:
        reads: [B, H, n_L]

    Examples:
        >>> import torch, memory_ext
        >>> W = [torch.randn(2, 32, 16) * 0.1, torch.randn(2, 8, 32) * 0.1]
        >>> memory_ext.mlp_memory_read(W, torch.randn(2, 3, 16)).shape
        torch.Size([2, 3, 8])
    """
    return torch.ops.memory_ext.mlp_memory_read(_weights(weights), keys, activation)


def mlp_memory_write(weights: Sequence[Tensor], keys: Tensor, targets, beta: BetaLike, *,
                     rule: str = "local", activation: str = "tanh",
                     alpha: AlphaLike = None) -> List[Tensor]:
    """Write into the memory: one local-rule or gradient update of its weights (spec 1.2-1.5).

    Args:
        weights: L tensors, weights[l]: [B, n_{l+1}, n_l]
        keys: write keys [B, H, n_0]
        targets: rule "local": L tensors, targets[l]: [B, H, n_{l+1}] (per-layer targets);
            rule "grad": the values [B, H, n_L]
        beta: write rate [B] or [B, L] (a float is broadcast to [B])
        rule: "local" (MNM-p) or "grad" (one SGD step on the reconstruction loss)
        activation: "tanh" | "sigmoid" | "relu" | "identity"
        alpha: forgetting rate in [0, 1): None, a float or [B]; W' = (1 - alpha) W - beta U.
            A float is range-checked; a tensor's values are not (that would need a host sync).

    Returns:
        new_weights: L tensors like weights

    Examples:
        >>> import torch, memory_ext
        >>> W = [torch.zeros(1, 8, 4)]
        >>> k, v = torch.randn(1, 2, 4), torch.randn(1, 2, 8)
        >>> W2 = memory_ext.mlp_memory_write(W, k, v, torch.ones(1), rule="grad")
        >>> W2[0].shape
        torch.Size([1, 8, 4])
    """
    weights = _weights(weights)
    return list(torch.ops.memory_ext.mlp_memory_write(
        weights, keys, _targets(targets, rule), _rate(beta, keys, "beta"),
        _alpha(alpha, keys), rule, activation))


def mlp_memory_step(weights: Sequence[Tensor], write_keys: Tensor, targets, beta: BetaLike,
                    read_keys: Tensor, *, rule: str = "local", activation: str = "tanh",
                    alpha: AlphaLike = None, recon_values: Optional[Tensor] = None
                    ) -> Tuple[List[Tensor], Tensor, Optional[Tensor]]:
    """One memory step in one fused call: write, then read (spec 1.6).

    Args:
        weights: L tensors, weights[l]: [B, n_{l+1}, n_l]
        write_keys: [B, H, n_0]
        targets: as in mlp_memory_write ([B, H, n_l] per layer, or values [B, H, n_L])
        beta: [B] or [B, L]
        read_keys: [B, Hr, n_0] (Hr may differ from H)
        rule, activation, alpha: as in mlp_memory_write
        recon_values: [B, H, n_L] or None. recon is computed against these, or for rule "grad"
            against the values being written; for rule "local" without them recon is None.

    Returns:
        (new_weights, reads [B, Hr, n_L], recon [B] or None)

    Examples:
        >>> import torch, memory_ext
        >>> W = [torch.randn(1, 64, 64) * 0.1 for _ in range(3)]
        >>> kw, kr = torch.randn(1, 4, 64), torch.randn(1, 4, 64)
        >>> z = [torch.randn(1, 4, 64) for _ in range(3)]
        >>> W, reads, recon = memory_ext.mlp_memory_step(W, kw, z, torch.full((1,), 0.5), kr)
        >>> reads.shape, recon is None
        (torch.Size([1, 4, 64]), True)
    """
    weights = _weights(weights)
    new_w, reads, recon = torch.ops.memory_ext.mlp_memory_step(
        weights, write_keys, _targets(targets, rule), _rate(beta, write_keys, "beta"), read_keys,
        _alpha(alpha, write_keys), recon_values, rule, activation)
    has_recon = recon_values is not None or rule == "grad"
    return list(new_w), reads, (recon if has_recon else None)


def mlp_memory_scan(weights: Sequence[Tensor], write_keys: Tensor, targets, beta: BetaLike,
                    read_keys: Tensor, *, rule: str = "local", activation: str = "tanh",
                    alpha: AlphaLike = None, recon_values: Optional[Tensor] = None,
                    checkpoint_every: int = 16
                    ) -> Tuple[Tensor, List[Tensor], Optional[Tensor]]:
    """T memory steps in one call, the weights kept in the kernel throughout (spec 1.7).

    Equal to T calls of mlp_memory_step. Training through it stores the weights only every
    `checkpoint_every` steps (O(T/C * L * d^2) memory) and recomputes inside each segment.

    Args:
        weights: L tensors, weights[l]: [B, n_{l+1}, n_l] (initial memory)
        write_keys: [B, T, H, n_0]
        targets: rule "local": L tensors [B, T, H, n_{l+1}]; rule "grad": values [B, T, H, n_L]
        beta: [B, T] or [B, T, L] (a float is broadcast to [B, T])
        read_keys: [B, T, Hr, n_0]
        rule, activation, alpha: as in mlp_memory_write (alpha None, a float or [B])
        recon_values: [B, T, H, n_L] or None (see mlp_memory_step)
        checkpoint_every: C, weights stored every C steps for the backward

    Returns:
        (reads [B, T, Hr, n_L], final_weights (L tensors like weights), recon [B, T] or None)

    Examples:
        >>> import torch, memory_ext
        >>> B, T, H, d = 2, 10, 2, 16
        >>> W = [torch.randn(B, d, d) * 0.1 for _ in range(2)]
        >>> kw, kr, v = torch.randn(B, T, H, d), torch.randn(B, T, H, d), torch.randn(B, T, H, d)
        >>> reads, W_T, recon = memory_ext.mlp_memory_scan(W, kw, v, torch.ones(B, T), kr, rule="grad")
        >>> reads.shape, recon.shape
        (torch.Size([2, 10, 2, 16]), torch.Size([2, 10]))
    """
    weights = _weights(weights)
    if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be an int >= 1, got {checkpoint_every!r}")
    beta = _rate(beta, write_keys, "beta", dims=2)
    reads, final_w, recon, _ = torch.ops.memory_ext.mlp_memory_scan(
        weights, write_keys, _targets(targets, rule, "B, T"), beta, read_keys,
        _alpha(alpha, write_keys), recon_values, rule, activation, checkpoint_every)
    has_recon = recon_values is not None or rule == "grad"
    return reads, list(final_w), (recon if has_recon else None)


# --- fake (meta) kernels: output shapes for torch.compile and opcheck ---------------------------
def _recon_shape(rule, recon_values, *dims):
    return list(dims) if (recon_values is not None or rule == "grad") else [0]


@_fake("mlp_memory_read")
def _read_fake(weights, keys, activation="tanh"):
    _weight_ranks("mlp_memory_read", weights)
    _rank("mlp_memory_read", "keys", keys, 3)
    return keys.new_empty(keys.shape[0], keys.shape[1], weights[-1].shape[1])


@_fake("_mlp_memory_read_bwd")
def _read_bwd_fake(weights, keys, grad_reads, activation):
    _weight_ranks("_mlp_memory_read_bwd", weights)
    _rank("_mlp_memory_read_bwd", "keys", keys, 3)
    _rank("_mlp_memory_read_bwd", "grad_reads", grad_reads, 3)
    return [w.new_empty(w.shape) for w in weights], keys.new_empty(keys.shape)


@_fake("mlp_memory_write")
def _write_fake(weights, write_keys, targets, beta, alpha=None, rule="local", activation="tanh"):
    _weight_ranks("mlp_memory_write", weights)
    _rank("mlp_memory_write", "write_keys", write_keys, 3)
    return [w.new_empty(w.shape) for w in weights]


@_fake("mlp_memory_step")
def _step_fake(weights, write_keys, targets, beta, read_keys, alpha=None, recon_values=None,
               rule="local", activation="tanh"):
    _weight_ranks("mlp_memory_step", weights)
    _rank("mlp_memory_step", "write_keys", write_keys, 3)
    _rank("mlp_memory_step", "read_keys", read_keys, 3)
    B = write_keys.shape[0]
    reads = read_keys.new_empty(B, read_keys.shape[1], weights[-1].shape[1])
    recon = write_keys.new_empty(_recon_shape(rule, recon_values, B))
    return [w.new_empty(w.shape) for w in weights], reads, recon


@_fake("mlp_memory_scan")
def _scan_fake(weights, write_keys, targets, beta, read_keys, alpha=None, recon_values=None,
               rule="local", activation="tanh", checkpoint_every=16):
    _weight_ranks("mlp_memory_scan", weights)
    _rank("mlp_memory_scan", "write_keys", write_keys, 4)
    _rank("mlp_memory_scan", "read_keys", read_keys, 4)
    B, T = write_keys.shape[0], write_keys.shape[1]
    nc = (T + checkpoint_every - 1) // checkpoint_every
    reads = read_keys.new_empty(B, T, read_keys.shape[2], weights[-1].shape[1])
    recon = write_keys.new_empty(_recon_shape(rule, recon_values, B, T))
    ckpts = [w.new_empty(B, nc, w.shape[1], w.shape[2]) for w in weights]
    return reads, [w.new_empty(w.shape) for w in weights], recon, ckpts


@_fake("_mlp_memory_scan_bwd")
def _scan_bwd_fake(checkpoints, write_keys, targets, beta, read_keys, alpha, recon_values,
                   grad_reads, grad_final_weights, grad_recon, rule, activation, checkpoint_every):
    like = lambda t: t.new_empty(t.shape)  # noqa: E731
    return ([c.new_empty(c.shape[0], c.shape[2], c.shape[3]) for c in checkpoints],
            like(write_keys), [like(z) for z in targets], like(beta), like(read_keys),
            like(alpha) if alpha is not None else write_keys.new_empty(0),
            like(recon_values) if recon_values is not None else write_keys.new_empty(0))


def step_saved_numel(weights, heads: int) -> int:
    """Elements per batch element of _mlp_memory_step_'s saved block (mlp_step_saved in C++:
    per layer l = 1..L, A, D and g of H * n_l each, rounded up to 8)."""
    return sum(3 * ((heads * w.shape[1] + 7) // 8 * 8) for w in weights)


@_fake("_mlp_memory_step_")
def _step_inplace_fake(weights, write_keys, targets, beta, read_keys, alpha, recon_values, rule,
                       activation):
    _weight_ranks("_mlp_memory_step_", weights)
    _rank("_mlp_memory_step_", "write_keys", write_keys, 3)
    _rank("_mlp_memory_step_", "read_keys", read_keys, 3)
    B, H = write_keys.shape[0], write_keys.shape[1]
    reads = read_keys.new_empty(B, read_keys.shape[1], weights[-1].shape[1])
    recon = write_keys.new_empty(_recon_shape(rule, recon_values, B))
    return reads, recon, write_keys.new_empty(B, step_saved_numel(weights, H))


@_fake("_mlp_memory_step_bwd_")
def _step_bwd_inplace_fake(weights, grad_weights, saved, write_keys, targets, beta, read_keys,
                           alpha, recon_values, grad_reads, grad_recon, rule, activation):
    _weight_ranks("_mlp_memory_step_bwd_", weights)
    _weight_ranks("_mlp_memory_step_bwd_", grad_weights, "grad_weights")
    _rank("_mlp_memory_step_bwd_", "write_keys", write_keys, 3)
    _rank("_mlp_memory_step_bwd_", "read_keys", read_keys, 3)
    like = lambda t: t.new_empty(t.shape)  # noqa: E731
    g_targets = write_keys.new_empty(*write_keys.shape[:2], sum(z.shape[-1] for z in targets))
    return (like(write_keys), g_targets, like(beta), like(read_keys),
            like(alpha) if alpha is not None else write_keys.new_empty(0),
            like(recon_values) if recon_values is not None else write_keys.new_empty(0))
