"""IntHashTable: int64 key -> dense int64 id with use counts, batched, on CPU or CUDA
(spec section 4). The table is two tensors on the device (see csrc/include/memory_ext/
hash_table_core.h): slots [capacity, 3] = (key, id, count) with open addressing and linear
probing, and meta [3] = (used slots, live keys, next id)."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import Tensor

from ._device import check_device
from ._fake import _fake

_EMPTY = -(2 ** 63)
_MAX_NEXT_ID = 2 ** 62  # ids are int64: room for 2**62 more after any loaded table


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


class IntHashTable:
    """Batched int64 key -> id map. New keys get ids 0, 1, 2, ... in order of first occurrence
    (on the CPU; on CUDA in an unspecified order); ids of erased keys are not reused.

    The load factor (used slots / capacity, erased slots included) stays <= max_load, so a probe
    ends within a few slots on average. A call never waits on the device unless the table might
    have to grow: the host keeps an upper bound of the used slots and reads the true count only
    when that bound would pass max_load; if the table then grows (re-hashed into a power-of-two
    capacity, dropping erased slots), the call says so in its return value.

    Args:
        capacity: initial slot count (rounded up to a power of two)
        device: where the table lives
        max_load: in (0, 1); 0.5 by default

    Examples:
        >>> import torch, memory_ext
        >>> t = memory_ext.IntHashTable()
        >>> ids, grew = t.lookup_or_insert(torch.tensor([7, 3, 7]))
        >>> ids.tolist(), grew
        ([0, 1, 0], False)
        >>> t.find(torch.tensor([3, 5])).tolist()
        [1, -1]
    """

    def __init__(self, capacity: int = 1024, device="cpu", max_load: float = 0.5):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        if not 0.0 < float(max_load) < 1.0:
            raise ValueError(f"max_load must be in (0, 1), got {max_load!r}")
        self.max_load = float(max_load)
        device = check_device(device)
        cap = _pow2_at_least(capacity)
        self.slots = torch.full((cap, 3), _EMPTY, dtype=torch.int64, device=device)
        self.meta = torch.zeros(3, dtype=torch.int64, device=device)
        self._used_bound = 0  # host-side upper bound of meta[0]

    @property
    def capacity(self) -> int:
        return self.slots.shape[0]

    @property
    def device(self) -> torch.device:
        return self.slots.device

    def __len__(self) -> int:
        """Live keys (reads the device)."""
        return int(self.meta[1].item())

    def _check_keys(self, keys: Tensor) -> None:
        if not isinstance(keys, Tensor) or keys.dtype != torch.int64 or keys.dim() != 1:
            got = f"{keys.dtype} {list(keys.shape)}" if isinstance(keys, Tensor) else type(keys).__name__
            raise TypeError(f"keys must be a 1-D int64 tensor [N], got {got}")
        if keys.device != self.device:
            raise ValueError(f"keys must be on the table's device {self.device}, got {keys.device}")

    def _grow_if_needed(self, keys: Tensor) -> bool:
        n = keys.shape[0]
        limit = self.max_load * self.capacity
        if self._used_bound + n <= limit:
            return False
        used, live = (int(x) for x in self.meta[:2].tolist())  # the one host sync
        self._used_bound = used
        if used + n <= limit:
            return False
        # the keys' values are checked (reserved keys) before the table is re-hashed, so that a
        # refused call leaves the table as it was; this path waits on the device anyway
        torch.ops.memory_ext.hash_find(self.slots, keys)
        self._rehash(_pow2_at_least(int((live + n) / self.max_load) + 1))
        return True

    def _rehash(self, capacity: int) -> None:
        rows = self.slots[self.slots[:, 0] > _EMPTY + 1]  # live (key, id, count)
        slots = torch.full((capacity, 3), _EMPTY, dtype=torch.int64, device=self.device)
        torch.ops.memory_ext._hash_rebuild_(slots, rows)
        self.slots = slots
        self.meta[0] = rows.shape[0]
        self._used_bound = rows.shape[0]

    def lookup_or_insert(self, keys: Tensor) -> Tuple[Tensor, bool]:
        """Ids of keys [N], inserting the missing ones; every occurrence counts one use.
        Equal keys in one batch get one id. Returns (ids [N] int64, grew: the table was
        re-hashed into a larger capacity first)."""
        self._check_keys(keys)
        grew = self._grow_if_needed(keys)
        ids = torch.ops.memory_ext.hash_lookup_or_insert_(self.slots, self.meta, keys)
        self._used_bound += keys.shape[0]
        return ids, grew

    def find(self, keys: Tensor) -> Tensor:
        """Ids of keys [N], -1 where absent (no insert, no count)."""
        self._check_keys(keys)
        return torch.ops.memory_ext.hash_find(self.slots, keys)[0]

    def counts(self, keys: Tensor) -> Tensor:
        """Use counts of keys [N] (0 where absent)."""
        self._check_keys(keys)
        return torch.ops.memory_ext.hash_find(self.slots, keys)[1]

    def erase(self, keys: Tensor) -> Tensor:
        """Removes keys; returns erased [N] bool (False where absent or already erased)."""
        self._check_keys(keys)
        return torch.ops.memory_ext.hash_erase_(self.slots, self.meta, keys)

    def state_dict(self) -> Dict:
        rows = self.slots[self.slots[:, 0] > _EMPTY + 1]
        return {"format": "memory_ext.IntHashTable/1", "entries": rows.cpu(),
                "next_id": int(self.meta[2].item()), "max_load": self.max_load}

    def load_state_dict(self, state: Dict) -> None:
        """Validated first (distinct keys, ids unique and in [0, next_id), next_id >= 0,
        counts >= 0); nothing changes on error."""
        if state.get("format") != "memory_ext.IntHashTable/1":
            raise ValueError(f"not an IntHashTable state_dict (format {state.get('format')!r})")
        e, next_id = state["entries"], int(state["next_id"])
        if not isinstance(e, Tensor) or e.dtype != torch.int64 or e.dim() != 2 or e.shape[1] != 3:
            raise ValueError("state_dict['entries'] must be an int64 tensor [M, 3]")
        if not 0 <= next_id <= _MAX_NEXT_ID:  # negative: ids find() reports as absent; near
            # the end of int64: new ids would overflow
            raise ValueError(f"state_dict['next_id'] must be in [0, 2**62], got {next_id}")
        if e.shape[0]:
            if bool((e[:, 0] <= _EMPTY + 1).any()):
                raise ValueError("state_dict['entries'] holds a reserved key")
            if e[:, 0].unique().numel() != e.shape[0] or e[:, 1].unique().numel() != e.shape[0]:
                raise ValueError("state_dict['entries'] keys and ids must be distinct")
            if bool((e[:, 1] < 0).any()) or bool((e[:, 1] >= next_id).any()) or bool((e[:, 2] < 0).any()):
                raise ValueError("state_dict['entries'] ids must be in [0, next_id), counts >= 0")
        cap = max(self.capacity, _pow2_at_least(int(e.shape[0] / self.max_load) + 1))
        slots = torch.full((cap, 3), _EMPTY, dtype=torch.int64, device=self.device)
        torch.ops.memory_ext._hash_rebuild_(slots, e.to(self.device))
        self.slots = slots
        self.meta = torch.tensor([e.shape[0], e.shape[0], next_id], dtype=torch.int64, device=self.device)
        self._used_bound = e.shape[0]


# --- fake (meta) kernels: output shapes for torch.compile and opcheck ---------------------------
@_fake("hash_lookup_or_insert_")
def _hash_lookup_or_insert_fake(slots, meta, keys):
    return keys.new_empty(keys.shape)


@_fake("hash_find")
def _hash_find_fake(slots, keys):
    return keys.new_empty(keys.shape), keys.new_empty(keys.shape)


@_fake("hash_erase_")
def _hash_erase_fake(slots, meta, keys):
    return keys.new_empty(keys.shape, dtype=torch.bool)


@_fake("_hash_rebuild_")
def _hash_rebuild_fake(slots, entries):
    return None
