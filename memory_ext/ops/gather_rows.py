"""gather_rows: one fused row gather over several tensors (spec 4): out[t][j] = tensors[t][index[j]]
for index[j] >= 0, zero rows where index[j] = -1; ElasticEmbedding compacts its weights, optimizer
moments, live mask and counts with it. The kernels: csrc/ops/gather_rows.cpp (checks),
csrc/cpu/gather_rows.cpp, csrc/cuda/gather_rows.cu."""
from typing import List, Sequence

import torch
from torch import Tensor

from ._fake import _fake


def gather_rows(tensors: Sequence[Tensor], index: Tensor, out_rows: int) -> List[Tensor]:
    """Rows index [n] (int64, -1 for a zero row) of each tensor [R, ...] into new tensors
    [out_rows, ...] (rows past n are zero). All tensors on index's device."""
    return torch.ops.memory_ext.gather_rows(list(tensors), index, out_rows)


@_fake("gather_rows")
def _gather_rows_fake(tensors, index, out_rows):
    return [t.new_empty((out_rows,) + tuple(t.shape[1:])) for t in tensors]
