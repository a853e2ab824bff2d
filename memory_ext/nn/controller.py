"""Controllers of the fast-weight MLP memory (Metalearned Neural Memory, Munkhdalai et al. 2019).

MNMController is the paper's model: an LSTM fed [x_t ; r_{t-1}] whose hidden state makes the
interaction vectors of one memory step per time step. MemoryTransformerBlock makes the keys of a
whole sequence at once with a causal transformer layer and runs them through mlp_memory_scan.
Both keep (memory weights, controller state) across calls: a conversation or a long story is
fed in pieces, with reset() at its start and detach() for truncated back-propagation.

impl="fused" uses the fused ops (mlp_memory_step / mlp_memory_scan); impl="reference" the
plain-PyTorch oracle (memory_ext.reference), for tests and speed comparisons.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..ops import reference
from ..ops.mlp_memory import mlp_memory_read, mlp_memory_scan, mlp_memory_step
from .mlp_memory import check_memory_config, initial_weights
from .mnm_sequence import SequenceSpec, local_targets, mnm_sequence, split_heads

_IMPLS = ("fused", "reference")


class _MemoryHeads(nn.Module):
    """The memory, its initial weights W_0 (learned, shared by the batch) and the map from
    controller features to one step's interaction vectors (the part both controllers share).

    features [..., F] -> tanh(W f + b) split into beta' [n_beta] and per head [k_w | v_w | k_r];
    beta = sigmoid(w . beta' + b) [...]; rule "local": targets[l] = Linear_l(v_w) for l = 1..L;
    rule "grad": the values v_w."""

    def __init__(self, features: int, widths: Sequence[int], heads: int, rule: str,
                 activation: str, impl: str, n_beta: int = 8):
        super().__init__()
        widths = check_memory_config(widths, rule, "memory_widths")
        if impl not in _IMPLS:
            raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.widths, self.heads, self.rule, self.activation, self.impl = widths, heads, rule, activation, impl
        n0, nL = widths[0], widths[-1]
        self.n_beta = n_beta
        self.interact = nn.Linear(features, n_beta + heads * (2 * n0 + nL))
        self.beta = nn.Linear(n_beta, 1)
        self.targets = nn.ModuleList([nn.Linear(nL, w) for w in widths[1:]]) if rule == "local" else None
        self.w0 = nn.ParameterList([nn.Parameter(w) for w in initial_weights(widths)])

    @property
    def read_width(self) -> int:
        return self.heads * self.widths[-1]

    def initial(self, batch: int) -> List[Tensor]:
        return [w.unsqueeze(0).expand(batch, -1, -1) for w in self.w0]

    def merged_target_map(self) -> Optional[Tuple[Tensor, Tensor]]:
        """Rule "local": the L target Linears stacked into one (weight [sum n_l, nL], bias), so
        a step makes every layer's targets in one matmul; None for rule "grad"."""
        if self.targets is None:
            return None
        return (torch.cat([m.weight for m in self.targets]), torch.cat([m.bias for m in self.targets]))

    @property
    def spec(self) -> SequenceSpec:
        return SequenceSpec(self.n_beta, self.heads, tuple(self.widths), self.rule, self.activation)

    def interaction(self, f: Tensor, maps: Optional[Tuple[Tensor, Tensor]] = None):
        """f [..., F] -> (k_w [..., H, n0], targets, beta [...], k_r [..., H, n0], v_w [..., H, nL]).
        maps: merged_target_map(), made once per sequence by a caller that steps (else here)."""
        z = torch.tanh(self.interact(f))
        beta = torch.sigmoid(self.beta(z[..., : self.n_beta])).squeeze(-1)
        k_w, v_w, k_r = split_heads(z, self.spec)
        if self.rule == "grad":
            return k_w, v_w, beta, k_r, v_w
        weight, bias = maps if maps is not None else self.merged_target_map()
        return k_w, local_targets(v_w, weight, bias, self.spec), beta, k_r, v_w

    def step(self, W: List[Tensor], f: Tensor, maps=None, write: Optional[Tensor] = None):
        """One write + read from features f [B, F]: (new weights, reads [B, H nL], recon [B]).
        maps: as for interaction(); write [B] bool or None: rows where it is False write nothing
        (beta 0 leaves their weights exactly as they were)."""
        k_w, targets, beta, k_r, v_w = self.interaction(f, maps)
        if write is not None:
            beta = beta * write.to(beta.dtype)
        step = mlp_memory_step if self.impl == "fused" else reference.mlp_step
        W, reads, recon = step(W, k_w, targets, beta, k_r, rule=self.rule, activation=self.activation,
                               recon_values=v_w)
        return W, reads.flatten(1), recon

    def scan(self, W: List[Tensor], f: Tensor, mask: Optional[Tensor] = None):
        """T steps from features f [B, T, F]: (reads [B, T, H nL], final weights, recon [B, T]).
        mask [B, T] bool: steps where it is False write nothing (beta 0)."""
        k_w, targets, beta, k_r, v_w = self.interaction(f)
        if mask is not None:
            beta = beta * mask.to(beta.dtype)
        scan = mlp_memory_scan if self.impl == "fused" else reference.mlp_scan
        reads, W, recon = scan(W, k_w, targets, beta, k_r, rule=self.rule, activation=self.activation,
                               recon_values=v_w)
        return reads.flatten(2), W, recon

    def read(self, W: List[Tensor], keys: Tensor) -> Tensor:
        """Reads only, no write: keys [B, R, n0] -> f_W(keys) [B, R, nL] (any number R of keys)."""
        read = mlp_memory_read if self.impl == "fused" else reference.mlp_read
        return read(W, keys, activation=self.activation)


class _Stateful(nn.Module):
    """State handling shared by the controllers: `state` holds tensors carried across calls."""

    state: Optional[dict]

    def reset(self) -> None:
        """Forget everything: the next call starts from W_0 and a zero controller state."""
        self.state = None

    def detach(self) -> None:
        """Cut the autograd history of the carried state (truncated back-propagation)."""
        if self.state is not None:
            self.state = {k: ([t.detach() for t in v] if isinstance(v, list) else v.detach())
                          for k, v in self.state.items()}

    def _check_inputs(self, x: Tensor, width: int, mask: Optional[Tensor]) -> Tuple[int, int]:
        """x [B, T, width] and mask [B, T] bool (or None) against each other and the carried
        state (its batch is that of the memory weights). Returns (B, T)."""
        if x.dim() != 3 or x.shape[-1] != width:
            raise ValueError(f"x must be [B, T, {width}], got {tuple(x.shape)}")
        B, T = x.shape[:2]
        if mask is not None and (mask.shape != (B, T) or mask.dtype != torch.bool):
            raise ValueError(f"mask must be a bool tensor [B, T] = [{B}, {T}], got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        if self.state is not None and self.state["W"][0].shape[0] != B:
            raise ValueError(f"x has batch {B} but the carried state has batch "
                             f"{self.state['W'][0].shape[0]}; call reset() first")
        return B, T


class MNMController(_Stateful):
    """Metalearned Neural Memory: LSTM controller + fast-weight MLP memory, one fused
    mlp_memory_step per time step.

    Args:
        input_size: width of x_t
        hidden_size: LSTM width
        output_size: width of the output Linear([h ; read])
        memory_widths: [n_0, ..., n_L] of the memory MLP
        heads: write / read heads per step (H)
        rule: "local" (targets from a learned linear map of v_w, one per layer) or "grad"
        activation: hidden activation of the memory MLP
        impl: "fused" or "reference" (the eager oracle, same parameters and results)

    forward(x [B, T, input_size]) -> (y [B, T, output_size], recon [B, T]); the state (memory
    weights [B, n_{l+1}, n_l] per layer, LSTM (h, c), last read) carries over to the next call.

    Examples:
        >>> import torch, memory_ext
        >>> ctl = memory_ext.MNMController(10, 32, 5, memory_widths=[16, 32, 16])
        >>> y, recon = ctl(torch.randn(2, 7, 10))
        >>> y.shape, recon.shape
        (torch.Size([2, 7, 5]), torch.Size([2, 7]))
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *,
                 memory_widths: Sequence[int] = (32, 64, 32), heads: int = 1, rule: str = "local",
                 activation: str = "tanh", impl: str = "fused"):
        super().__init__()
        self.memory = _MemoryHeads(hidden_size, memory_widths, heads, rule, activation, impl)
        self.input_size = input_size
        self.lstm = nn.LSTMCell(input_size + self.memory.read_width, hidden_size)
        self.out = nn.Linear(hidden_size + self.memory.read_width, output_size)
        self.state = None
        # impl "fused": the whole time loop is one autograd node (mnm_sequence) unless this is
        # False, which runs a per-step autograd loop around the fused memory step instead
        self.sequence_node = True

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """x [B, T, input_size]; mask [B, T] bool or None: at steps where it is False the row
        keeps its state (no LSTM update, no write; y and recon are 0 there)."""
        B, T = self._check_inputs(x, self.input_size, mask)
        if self.state is None:
            h = x.new_zeros(B, self.lstm.hidden_size)
            st = {"W": self.memory.initial(B), "h": h, "c": h, "reads": x.new_zeros(B, self.memory.read_width)}
        else:
            st = dict(self.state)
        if T == 0:
            self.state = st
            return x.new_zeros(B, 0, self.out.out_features), x.new_zeros(B, 0)
        # nn.LSTMCell's math with the input projection of all T steps in one matmul and one
        # matmul per step for [read ; h]
        lstm, I = self.lstm, self.input_size
        gx = nn.functional.linear(x, lstm.weight_ih[:, :I], lstm.bias_ih + lstm.bias_hh)
        w_rec = torch.cat([lstm.weight_ih[:, I:], lstm.weight_hh], 1).t()  # [R + hidden, 4 hidden]
        maps = self.memory.merged_target_map()
        if self.memory.impl == "fused" and self.sequence_node:
            mem = self.memory
            w_tgt, b_tgt = maps if maps is not None else (None, None)
            hs, rs, recon, (h, c, reads, W) = mnm_sequence(
                mem.spec, gx, None if mask is None else mask.to(x.dtype), st["h"], st["c"],
                st["reads"], st["W"], w_rec, mem.interact.weight, mem.interact.bias,
                mem.beta.weight, mem.beta.bias, w_tgt, b_tgt)
        else:
            hs, rs, recon, (h, c, reads, W) = self._step_loop(gx, w_rec, maps, mask, st)
        self.state = {"W": W, "h": h, "c": c, "reads": reads}
        y = self.out(torch.cat([hs, rs], -1))  # all T at once
        if mask is not None:
            y = y * mask[..., None]
        return y, recon

    def _step_loop(self, gx: Tensor, w_rec: Tensor, maps, mask: Optional[Tensor], st: dict):
        """The recurrence as a per-step autograd loop (impl "reference", or sequence_node
        False); same contract as mnm_sequence()."""
        W, h, c, reads = st["W"], st["h"], st["c"], st["reads"]
        hs, rs, recons = [], [], []
        for t in range(gx.shape[1]):
            gates = torch.addmm(gx[:, t], torch.cat([reads, h], 1), w_rec)
            i, f, g, o = gates.chunk(4, 1)
            c1 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h1 = torch.sigmoid(o) * torch.tanh(c1)
            if mask is None:
                W, reads, recon = self.memory.step(W, h1, maps=maps)
                h, c = h1, c1
            else:  # a masked row writes nothing (beta 0 leaves W exactly as it is)
                m = mask[:, t, None]
                W, reads1, recon = self.memory.step(W, h1, maps=maps, write=m[:, 0])
                h, c, reads = (torch.where(m, a, b) for a, b in ((h1, h), (c1, c), (reads1, reads)))
                recon = recon * m[:, 0]
            hs.append(h1)
            rs.append(reads if mask is None else reads1)
            recons.append(recon)
        return torch.stack(hs, 1), torch.stack(rs, 1), torch.stack(recons, 1), (h, c, reads, W)


class MemoryTransformerBlock(_Stateful):
    """A causal transformer layer makes every step's interaction vectors of a sequence at once;
    one mlp_memory_scan writes and reads them all; output Linear([h ; read]).

    forward(x [B, T, d_model], mask [B, T] bool or None) -> (y [B, T, output_size],
    recon [B, T]). Steps where mask is False (padding) write nothing. The memory weights carry
    over to the next call (the attention sees only the current call's tokens).
    """

    def __init__(self, d_model: int, output_size: int, *, nhead: int = 4,
                 memory_widths: Sequence[int] = (32, 64, 32), heads: int = 1,
                 rule: str = "local", activation: str = "tanh", impl: str = "fused",
                 dim_feedforward: int = 0, dropout: float = 0.0):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward or 4 * d_model,
                                                dropout, batch_first=True)
        self.memory = _MemoryHeads(d_model, memory_widths, heads, rule, activation, impl)
        self.out = nn.Linear(d_model + self.memory.read_width, output_size)
        self.d_model = d_model
        self.state = None

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        B, T = self._check_inputs(x, self.d_model, mask)
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=x.device, dtype=x.dtype)
        h = self.layer(x, src_mask=causal, is_causal=True)
        W = self.memory.initial(B) if self.state is None else self.state["W"]
        reads, W, recon = self.memory.scan(W, h, mask)
        self.state = {"W": W}
        return self.out(torch.cat([h, reads], -1)), recon


def mnm_loss(task_loss: Tensor, recon: Tensor, lam: float = 0.1) -> Tensor:
    """task loss + lambda * mean reconstruction loss (recon [B, T] from a controller)."""
    return task_loss + lam * recon.mean()
