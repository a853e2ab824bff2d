"""ElasticEmbedding: an embedding and output projection whose rows grow and are compacted while
training, keeping ids, the Parameter objects and the optimizer state correct (spec section 4)."""
from __future__ import annotations

import weakref
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from ..ops._device import check_device

_FORMAT = "memory_ext.ElasticEmbedding/1"


def _replace_data(p: nn.Parameter, new: Tensor) -> None:
    """p.data = new (another number of rows) with a fresh gradient accumulator.

    torch keeps a Parameter's AccumulateGrad node, and the shape it expects, for as long as an
    old graph (say the previous step's loss, still referenced) holds it, and drops it only when
    the dtype or device changes: a graph built after a reallocation would then fail in backward
    ("invalid gradient ... got [21, 8] but expected [10, 8]"). Setting data of another dtype
    first drops it, so the next graph makes a new one with the new shape.
    """
    other = torch.float64 if new.dtype != torch.float64 else torch.float32
    p.data = new.new_empty(0, dtype=other)
    p.data = new


class ElasticEmbedding(nn.Module):
    """Rows [capacity, D] of which the first `size` are in use, each live or dead.

    The output projection is tied to the embedding (logits = h W^T) or its own weight
    [capacity, D] with an optional bias [capacity]. Dead rows get -inf logits. New rows start at
    the mean of the live rows plus N(0, noise^2) (the mean from a running row sum: O(D) per new
    row, no pass over the table; the sum is refreshed exactly by compact() and state loading).
    Past capacity the tensors are reallocated geometrically; the nn.Parameter objects stay the
    same (their .data is swapped) and every attached optimizer's per-row state (Adam / AdamW
    exp_avg, exp_avg_sq, max_exp_avg_sq; SGD momentum_buffer) is resized with them.

    Args:
        num_embeddings: rows live from the start (ids 0 .. num_embeddings - 1)
        embedding_dim: D
        capacity: rows allocated (>= num_embeddings); default max(16, 2 * num_embeddings)
        tied: output projection = the embedding (else its own weight)
        bias: an output bias [capacity]
        init_std: std of the initial rows; noise: std added to the mean for new rows
        growth: capacity factor when it must grow (> 1)
        seed: seeds the initial rows and the noise of new rows (a batch of new rows: by the seed
            and its first id, so the same ids get the same rows in every process)

    Shapes: forward(ids [*]) -> [*, D]; logits(h [*, D]) -> [*, size].

    Examples:
        >>> import torch, memory_ext
        >>> emb = memory_ext.ElasticEmbedding(4, 8)
        >>> new = emb.grow(3)
        >>> new.tolist(), emb.size, emb(torch.tensor([0, 6])).shape, emb.logits(torch.randn(2, 8)).shape
        ([4, 5, 6], 7, torch.Size([2, 8]), torch.Size([2, 7]))
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, capacity: Optional[int] = None,
                 tied: bool = True, bias: bool = False, init_std: float = 0.02,
                 noise: float = 1e-3, growth: float = 2.0, seed: int = 0, device=None,
                 dtype=None):
        super().__init__()
        if not isinstance(num_embeddings, int) or num_embeddings < 0:
            raise ValueError(f"num_embeddings must be an int >= 0, got {num_embeddings!r}")
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be an int >= 1, got {embedding_dim!r}")
        capacity = max(16, 2 * num_embeddings) if capacity is None else capacity
        if not isinstance(capacity, int) or capacity < max(1, num_embeddings):
            raise ValueError(f"capacity must be an int >= max(1, num_embeddings) = "
                             f"{max(1, num_embeddings)}, got {capacity!r}")
        if not growth > 1.0:
            raise ValueError(f"growth must be > 1, got {growth!r}")
        device = check_device(device)
        self.embedding_dim, self.tied, self.noise, self.growth, self.seed = (
            embedding_dim, tied, float(noise), float(growth), int(seed))
        g = torch.Generator().manual_seed(self.seed)
        w = torch.zeros(capacity, embedding_dim, dtype=dtype or torch.float32)
        w[:num_embeddings] = torch.randn(num_embeddings, embedding_dim, generator=g) * init_std
        self.weight = nn.Parameter(w.to(device))
        self.out_weight = None if tied else nn.Parameter(
            torch.cat([torch.randn(num_embeddings, embedding_dim, generator=g) * init_std,
                       torch.zeros(capacity - num_embeddings, embedding_dim)]).to(w.dtype).to(device))
        self.out_bias = nn.Parameter(torch.zeros(capacity, dtype=w.dtype, device=device)) if bias else None
        live = torch.zeros(capacity, dtype=torch.bool, device=device)
        live[:num_embeddings] = True
        self.register_buffer("live", live)
        self.register_buffer("counts", torch.zeros(capacity, dtype=torch.int64, device=device))
        self.size = num_embeddings
        self._optimizers: List[weakref.ref] = []
        self._row_sums: Dict[str, Tensor] = {}
        self.refresh_mean()

    # --- shapes and access ------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.weight.shape[0]

    @property
    def num_live(self) -> int:
        return int(self.live[: self.size].sum().item())

    def _params(self) -> Dict[str, nn.Parameter]:
        """The row-aligned parameters by name."""
        out = {"weight": self.weight}
        if self.out_weight is not None:
            out["out_weight"] = self.out_weight
        if self.out_bias is not None:
            out["out_bias"] = self.out_bias
        return out

    def check_ids(self, ids: Tensor, name: str = "ids") -> None:
        """Raises unless every id is a live row (one host sync)."""
        if not isinstance(ids, Tensor) or ids.dtype != torch.int64:
            raise TypeError(f"{name} must be an int64 tensor, got "
                            f"{ids.dtype if isinstance(ids, Tensor) else type(ids).__name__}")
        if ids.numel() == 0:
            return
        lo, hi = (int(x) for x in torch.aminmax(ids))
        if lo < 0 or hi >= self.size:
            raise IndexError(f"{name} must be in [0, size = {self.size}), got values in [{lo}, {hi}]")
        dead = ~self.live[ids]
        if bool(dead.any()):
            raise IndexError(f"{name} holds dead (freed) rows, e.g. {int(ids[dead][0])}")

    def forward(self, ids: Tensor, check: bool = True) -> Tensor:
        """Rows of ids [*] -> [*, D]. check=False skips the live-row check (a host sync)."""
        if check:
            self.check_ids(ids)
        return nn.functional.embedding(ids, self.weight)

    def logits(self, h: Tensor) -> Tensor:
        """Output scores h [*, D] -> [*, size], -inf at dead rows."""
        w = (self.weight if self.out_weight is None else self.out_weight)[: self.size]
        b = None if self.out_bias is None else self.out_bias[: self.size]
        return nn.functional.linear(h, w, b).masked_fill(~self.live[: self.size], float("-inf"))

    # --- optimizers ---------------------------------------------------------------------------
    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep `optimizer`'s per-row state aligned with the rows from now on (and fit it now,
        e.g. after optimizer.load_state_dict from a module of another capacity)."""
        if not any(r() is optimizer for r in self._optimizers):
            self._optimizers.append(weakref.ref(optimizer))
        self._fit_optimizer_state(optimizer)

    def _optimizers_alive(self) -> List[torch.optim.Optimizer]:
        self._optimizers = [r for r in self._optimizers if r() is not None]
        return [r() for r in self._optimizers]

    @staticmethod
    def _row_state(opt, p: nn.Parameter, rows: int):
        """(key, tensor) of opt's state for p that is row-aligned with `rows` rows."""
        for key, t in opt.state.get(p, {}).items():
            if isinstance(t, Tensor) and t.dim() == p.dim() and t.shape[0] == rows and \
                    t.shape[1:] == p.shape[1:]:
                yield key, t

    def _fit_optimizer_state(self, opt) -> None:
        for p in self._params().values():
            for key, t in list(opt.state.get(p, {}).items()):
                if not isinstance(t, Tensor) or t.dim() != p.dim() or t.shape[1:] != p.shape[1:] \
                        or t.shape[0] == p.shape[0]:
                    continue
                if t.shape[0] < self.size:
                    raise ValueError(f"optimizer state '{key}' has {t.shape[0]} rows, fewer than "
                                     f"the {self.size} rows in use")
                fit = t.new_zeros(p.shape)
                n = min(t.shape[0], p.shape[0])
                fit[:n] = t[:n]
                opt.state[p][key] = fit

    # --- growth -----------------------------------------------------------------------------
    def _reserve(self, rows: int) -> None:
        """Capacity >= rows, reallocating geometrically (same Parameter objects)."""
        if rows <= self.capacity:
            return
        cap = max(rows, int(self.capacity * self.growth) + 1)
        old = self.capacity
        for p in self._params().values():
            states = [(opt, key, t) for opt in self._optimizers_alive()
                      for key, t in self._row_state(opt, p, old)]
            new = p.data.new_zeros((cap,) + tuple(p.shape[1:]))
            new[:old] = p.data
            _replace_data(p, new)
            if p.grad is not None:
                g = p.grad.new_zeros(new.shape)
                g[:old] = p.grad
                p.grad = g
            for opt, key, t in states:
                s = t.new_zeros(new.shape)
                s[:old] = t
                opt.state[p][key] = s
        for name in ("live", "counts"):
            b = getattr(self, name)
            nb = b.new_zeros(cap)
            nb[:old] = b
            setattr(self, name, nb)

    def refresh_mean(self) -> None:
        """Recompute the running row sums of live rows exactly (one pass over the rows)."""
        live = self.live[: self.size]
        self._row_sums = {n: p.data[: self.size][live].double().sum(0)
                          for n, p in self._params().items()}

    def _init_rows(self, rows: Tensor) -> None:
        """New rows = mean of the live rows + noise; zero optimizer state; mark live."""
        n_live = max(1, self.num_live)
        # seeded by the first new id, not by a call count: processes that agree on the ids
        # (ElasticVocab.sync) make the same rows whatever each grew before
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(rows.min()) if rows.numel() else 0)
        for name, p in self._params().items():
            mean = (self._row_sums[name] / n_live).to(p.dtype)
            noise = torch.randn((rows.numel(),) + tuple(p.shape[1:]), generator=g) * self.noise
            vals = mean.to(p.device) + noise.to(p.device, p.dtype)
            p.data[rows] = vals
            self._row_sums[name] += vals.double().sum(0)
            self._zero_optimizer_rows(p, rows)
        self._mark(rows, True)

    def grow(self, n: int) -> Tensor:
        """n new live rows at the end; returns their ids [n]."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        self._reserve(self.size + n)
        rows = torch.arange(self.size, self.size + n, device=self.weight.device)
        self.size += n
        self._init_rows(rows)
        return rows

    def ensure(self, ids: Tensor) -> Tensor:
        """Make every id live: ids past `size` extend the rows (rows skipped over stay dead),
        dead ids inside are revived; both start as new rows. Returns the rows made live."""
        if not isinstance(ids, Tensor) or ids.dtype != torch.int64:
            raise TypeError("ids must be an int64 tensor")
        if ids.numel() == 0:
            return ids.new_empty(0)
        if int(ids.min()) < 0:
            raise IndexError(f"ids must be >= 0, got {int(ids.min())}")
        top = int(ids.max()) + 1
        if top > self.size:
            self._reserve(top)
            self.size = top
        ids = ids.to(self.weight.device)
        new = ids.unique()
        new = new[~self.live[new]]
        if new.numel():
            self._init_rows(new)
        return new

    def free(self, rows: Tensor) -> None:
        """Mark rows dead (their values and optimizer state zeroed; ids may be reused)."""
        self.check_ids(rows, "rows")
        rows = rows.unique()
        for name, p in self._params().items():
            self._row_sums[name] -= p.data[rows].double().sum(0)
            p.data[rows] = 0
            self._zero_optimizer_rows(p, rows)
        self._mark(rows, False)

    def _zero_optimizer_rows(self, p: nn.Parameter, rows: Tensor) -> None:
        """Zero the per-row optimizer state (moments, momentum) of p's rows in every attached
        optimizer."""
        for opt in self._optimizers_alive():
            for _, t in self._row_state(opt, p, p.shape[0]):
                t[rows] = 0

    def _mark(self, rows: Tensor, live: bool) -> None:
        """rows become live (a fresh word) or dead (freed); their use counts restart at 0."""
        self.live[rows] = live
        self.counts[rows] = 0

    # --- compaction -------------------------------------------------------------------------
    def compact(self, remap: Tensor) -> None:
        """Apply the old -> new row map `remap` [size] (-1: dropped; kept rows renumbered
        0..n-1, e.g. TokenTable.compact()) to every row-aligned tensor at once: weights, output
        weight and bias, optimizer moments, live mask and counts, in ONE fused gather
        (torch.ops.memory_ext.gather_rows). Kept rows' values and state stay bit-identical."""
        if not isinstance(remap, Tensor) or remap.dtype != torch.int64 or remap.dim() != 1:
            raise TypeError("remap must be a 1-D int64 tensor [size]")
        if remap.shape[0] != self.size:
            raise ValueError(f"remap must have one entry per row in use (size = {self.size}), "
                             f"got {remap.shape[0]}")
        remap = remap.to(self.weight.device)
        kept = (remap >= 0).nonzero().flatten()
        n = kept.numel()
        src = torch.empty(n, dtype=torch.int64, device=remap.device)
        targets = remap[kept]
        if n and not torch.equal(targets.sort().values, torch.arange(n, device=remap.device)):
            raise ValueError("remap must send the kept rows to 0 .. n-1, each once")
        src[targets] = kept
        tensors, where = [], []
        for name, p in self._params().items():
            tensors.append(p.data)
            where.append(("param", p, None))
            for opt in self._optimizers_alive():
                for key, t in self._row_state(opt, p, p.shape[0]):
                    tensors.append(t)
                    where.append(("state", opt, (p, key)))
        tensors += [self.live, self.counts]
        where += [("buffer", "live", None), ("buffer", "counts", None)]
        outs = torch.ops.memory_ext.gather_rows(tensors, src, self.capacity)
        for (kind, obj, extra), out in zip(where, outs):
            if kind == "param":
                obj.data = out
                obj.grad = None  # a gradient of the old layout would be wrong
            elif kind == "state":
                obj.state[extra[0]][extra[1]] = out
            else:
                setattr(self, obj, out)
        self.size = n
        self.refresh_mean()

    # --- checkpoints ------------------------------------------------------------------------
    def get_extra_state(self):
        return {"format": _FORMAT, "size": self.size}

    def set_extra_state(self, state) -> None:
        """Nothing: _load_from_state_dict reads the extra state itself, validated, before any
        tensor is replaced (a checkpoint of an older version may carry "grow_calls": ignored)."""

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name in list(self._params()) + ["live", "counts"]:  # only the rows in use
            destination[prefix + name] = destination[prefix + name][: self.size]

    def check_state(self, state_dict, prefix: str = "") -> List[str]:
        """Why `state_dict` (keys under `prefix`) cannot be loaded into this module; [] if it can.
        Checks the format, the rows ([size, D] weights, [size] bias, bool live, int64 counts
        >= 0) and that the floats are finite. Nothing changes."""
        extra = state_dict.get(prefix + "_extra_state")
        if not isinstance(extra, dict) or extra.get("format") != _FORMAT:
            return [f"{prefix}_extra_state: not an ElasticEmbedding checkpoint"]
        size = extra.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return [f"{prefix}_extra_state: size must be an int >= 0, got {size!r}"]
        for name in list(self._params()) + ["live", "counts"]:
            t = state_dict.get(prefix + name)
            if not isinstance(t, Tensor) or t.dim() < 1 or t.shape[0] != size:
                return [f"{prefix}{name}: expected {size} rows, got "
                        f"{None if not isinstance(t, Tensor) else list(t.shape)}"]
        D = self.embedding_dim
        for name in self._params():
            t = state_dict[prefix + name]
            want = (size,) if name == "out_bias" else (size, D)
            if tuple(t.shape) != want:
                return [f"{prefix}{name}: expected shape {list(want)}, got {list(t.shape)}"]
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                return [f"{prefix}{name}: expected finite floats, got {t.dtype}"
                        + (" with NaN or inf" if t.is_floating_point() else "")]
        live, counts = state_dict[prefix + "live"], state_dict[prefix + "counts"]
        if live.dtype != torch.bool or live.dim() != 1 or counts.dtype != torch.int64 or \
                counts.dim() != 1 or bool((counts < 0).any()):
            return [f"{prefix}live/counts: expected bool live and int64 counts >= 0"]
        return []

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        errors = self.check_state(state_dict, prefix)
        if errors:
            error_msgs.extend(errors)
            return
        extra = state_dict[prefix + "_extra_state"]
        size = extra["size"]
        names = list(self._params()) + ["live", "counts"]
        live, counts = state_dict[prefix + "live"], state_dict[prefix + "counts"]
        for k in state_dict:
            if k.startswith(prefix) and k[len(prefix):] not in names + ["_extra_state"]:
                unexpected_keys.append(k)
        self._reserve(size)
        for name, p in self._params().items():
            p.data.zero_()
            p.data[:size] = state_dict[prefix + name].to(p.device, p.dtype)
        self.live.zero_()
        self.live[:size] = live.to(self.live.device)
        self.counts.zero_()
        self.counts[:size] = counts.to(self.counts.device)
        self.size = size
        self.refresh_mean()
        for opt in self._optimizers_alive():
            self._fit_optimizer_state(opt)
