"""nn.Module front of the MLP fast-weight memory."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from ..ops.mlp_memory import mlp_memory_scan, mlp_memory_step


def check_memory_config(widths: Sequence[int], rule: str, name: str = "widths") -> List[int]:
    """The widths [n_0, ..., n_L] (L = 1..4 layers, positive) as ints, and the rule checked."""
    widths = [int(w) for w in widths]
    if not 2 <= len(widths) <= 5 or min(widths) < 1:
        raise ValueError(f"{name} must list 2 to 5 positive widths [n_0, ..., n_L], got {widths}")
    if rule not in ("local", "grad"):
        raise ValueError(f"rule must be 'local' or 'grad', got {rule!r}")
    return widths


def initial_weights(widths: Sequence[int], std: float = 1.0) -> List[Tensor]:
    """Random W_0: L matrices [n_{l+1}, n_l] with entries of std / sqrt(n_l)."""
    return [torch.randn(widths[l + 1], widths[l]) * (std / math.sqrt(widths[l]))
            for l in range(len(widths) - 1)]


class MLPMemory(nn.Module):
    """A fast-weight MLP memory (Metalearned Neural Memory) with its initial weights.

    The initial weights W_0 (one [n_{l+1}, n_l] matrix per layer) are shared by the batch and
    are nn.Parameters when ``learnable`` (trained by backpropagating through writes), buffers
    otherwise. ``reset(B)`` starts B fresh memories; ``step`` / ``scan`` write and read them and
    keep the current weights ([B, n_{l+1}, n_l] each) in ``self.weights``.

    Args:
        widths: [n_0, ..., n_L], L = 1..4 layers (n_0 key width, n_L value width)
        activation: "tanh" | "sigmoid" | "relu" | "identity"
        rule: "local" or "grad"
        learnable: W_0 trainable (Parameter) or fixed (buffer)
        init_std: W_0 ~ N(0, init_std^2 / n_l); 0 gives a zero memory

    Examples:
        >>> import torch, memory_ext
        >>> mem = memory_ext.MLPMemory([16, 32, 16], rule="grad")
        >>> mem.reset(2)
        >>> k, v = torch.randn(2, 1, 16), torch.randn(2, 1, 16)
        >>> reads, recon = mem.step(k, v, torch.ones(2), k)
        >>> reads.shape
        torch.Size([2, 1, 16])
    """

    def __init__(self, widths: Sequence[int], *, activation: str = "tanh", rule: str = "local",
                 learnable: bool = True, init_std: float = 1.0):
        super().__init__()
        widths = check_memory_config(widths, rule)
        self.widths, self.activation, self.rule = widths, activation, rule
        for l, w in enumerate(initial_weights(widths, init_std)):
            if learnable:
                self.register_parameter(f"w0_{l}", nn.Parameter(w))
            else:
                self.register_buffer(f"w0_{l}", w)
        self.weights: Optional[List[Tensor]] = None

    @property
    def num_layers(self) -> int:
        return len(self.widths) - 1

    def initial_weights(self) -> List[Tensor]:
        return [getattr(self, f"w0_{l}") for l in range(self.num_layers)]

    def reset(self, batch_size: int) -> None:
        """Start batch_size fresh memories at W_0 (expanded, no copy)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights = [w.unsqueeze(0).expand(batch_size, -1, -1) for w in self.initial_weights()]

    def detach(self) -> None:
        """Cut the autograd history of the current weights (truncated backpropagation)."""
        if self.weights is not None:
            self.weights = [w.detach() for w in self.weights]

    def _current(self) -> List[Tensor]:
        if self.weights is None:
            raise RuntimeError("MLPMemory: call reset(batch_size) before step / scan")
        return self.weights

    def step(self, write_keys: Tensor, targets, beta, read_keys: Tensor, *, alpha=None,
             recon_values: Optional[Tensor] = None):
        """One write + read. write_keys [B, H, n_0], targets as in mlp_memory_step, beta [B] or
        [B, L], read_keys [B, Hr, n_0]. Returns (reads [B, Hr, n_L], recon [B] or None)."""
        self.weights, reads, recon = mlp_memory_step(
            self._current(), write_keys, targets, beta, read_keys, rule=self.rule,
            activation=self.activation, alpha=alpha, recon_values=recon_values)
        return reads, recon

    def scan(self, write_keys: Tensor, targets, beta, read_keys: Tensor, *, alpha=None,
             recon_values: Optional[Tensor] = None, checkpoint_every: int = 16):
        """T steps. write_keys [B, T, H, n_0], read_keys [B, T, Hr, n_0], beta [B, T] or
        [B, T, L]. Returns (reads [B, T, Hr, n_L], recon [B, T] or None)."""
        reads, self.weights, recon = mlp_memory_scan(
            self._current(), write_keys, targets, beta, read_keys, rule=self.rule,
            activation=self.activation, alpha=alpha, recon_values=recon_values,
            checkpoint_every=checkpoint_every)
        return reads, recon

    def extra_repr(self) -> str:
        return f"widths={self.widths}, activation={self.activation!r}, rule={self.rule!r}"
