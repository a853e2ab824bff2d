"""Shared fixtures of the memory_ext tests.

MEMORY_EXT_DEBUG_NAN_FILL makes the C++ fill every forward output with NaN before a kernel
writes it, so an element a kernel forgets to write shows up as NaN. It is read once, when the
extension is first used, so it must be set before memory_ext is imported.
"""
import os

os.environ["MEMORY_EXT_DEBUG_NAN_FILL"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

import memory_ext  # noqa: E402,F401

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
    ]),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
