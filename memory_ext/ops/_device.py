"""Checks a `device=` argument of the public constructors before any tensor is made."""
from typing import Optional

import torch


def check_device(device, name: str = "device") -> Optional[torch.device]:
    """torch.device(device) (None stays None); a CUDA device needs a GPU torch can use, else a
    RuntimeError that says so (instead of torch's AssertionError deep in the first allocation)."""
    if device is None:
        return None
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{name} must be a torch device such as 'cpu' or 'cuda', got {device!r}") from e
    if d.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{name}={str(device)!r} needs an NVIDIA GPU and a CUDA build of torch "
                           f"(torch {torch.__version__}: torch.cuda.is_available() is False)")
    return d
