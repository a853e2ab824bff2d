"""What the fake (meta) kernels of every op family share: ``_fake`` registers one.

A fake kernel gives the output shapes for torch.compile and opcheck; each family's fakes sit in
its module beside its front (mlp_memory.py, slots.py, ...). They also run when real meta tensors
are passed; a meta tensor mixed with tensors of another device would silently run them instead
of a kernel (uninitialised outputs, in-place ops doing nothing), so every fake first checks that
all tensor arguments share one device, and the ranks and dtypes the CPU op checks.
"""
import functools

import torch

_lib = "memory_ext::"


def _tensors(values):
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from _tensors(v)


def _rank(op, name, t, *ranks):
    """The CPU op's rank check, for the fakes (which would otherwise index a missing dim)."""
    if t.dim() not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise RuntimeError(f"{op}: {name} must be {want}, got {t.dim()}-D {list(t.shape)}")


def _weights(op, weights, name="weights"):
    for i, w in enumerate(weights):
        _rank(op, f"{name}[{i}]", w, 3)


def _dtype_like(op, name, t, ref, ref_name):
    if t.dtype != ref.dtype:
        raise RuntimeError(f"{op}: {name} must have {ref_name}'s dtype {ref.dtype}, got {t.dtype}")


def _fake(name):
    """register_fake for memory_ext::<name>, behind the one-device check."""
    def register(fn):
        @functools.wraps(fn)
        def checked(*args, **kwargs):
            devices = {t.device for t in _tensors([*args, *kwargs.values()])}
            if len(devices) > 1:
                raise RuntimeError(
                    f"memory_ext.{name}: all tensors must be on one device, got "
                    f"{', '.join(sorted(map(str, devices)))} (a meta tensor among real ones would "
                    "run no kernel)")
            return fn(*args, **kwargs)
        torch.library.register_fake(_lib + name)(checked)
        return fn
    return register
