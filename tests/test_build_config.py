"""How setup.py decides what to build (python/build_config.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from build_config import _parse_arch_list, decide  # noqa: E402

NVCC = "/usr/local/cuda/bin/nvcc"


def test_cuda_torch_with_nvcc_builds_cuda():
    with_cuda, compile_only, why, archs = decide({}, NVCC, "2.11.0+cu130", "13.0")
    assert (with_cuda, compile_only, archs) == (True, False, ["80", "90"])
    assert "CUDA 13.0" in why


def test_cpu_torch_with_nvcc_compile_checks_only():
    with_cuda, compile_only, why, _ = decide({}, NVCC, "2.13.0+cpu", None)
    assert (with_cuda, compile_only) == (False, True)
    assert "compile-checked only" in why


def test_no_nvcc_builds_cpu_only():
    assert decide({}, None, "2.13.0+cpu", None)[:2] == (False, False)


@pytest.mark.parametrize("cuda", [None, "13.0"])
def test_cpu_only_wins(cuda):
    with_cuda, compile_only, why, _ = decide({"MEMORY_EXT_CPU_ONLY": "1"}, NVCC, "2.x", cuda)
    assert (with_cuda, compile_only, why) == (False, False, "MEMORY_EXT_CPU_ONLY=1")


def test_force_cuda_without_nvcc_fails_loudly():
    with pytest.raises(RuntimeError, match="FORCE_CUDA=1 but .*nvcc was not found"):
        decide({"FORCE_CUDA": "1"}, None, "2.11.0+cu130", "13.0")


def test_force_cuda_with_cpu_torch_fails_loudly():
    with pytest.raises(RuntimeError, match="FORCE_CUDA=1 but .*CPU-only build"):
        decide({"FORCE_CUDA": "1"}, NVCC, "2.13.0+cpu", None)


def test_force_cuda_and_cpu_only_contradict():
    with pytest.raises(RuntimeError, match="contradict"):
        decide({"FORCE_CUDA": "1", "MEMORY_EXT_CPU_ONLY": "1"}, NVCC, "2.11", "13.0")


@pytest.mark.parametrize("text, want", [
    ("8.0;9.0", ["80", "90"]), ("9.0", ["90"]), ("8.0 8.6 9.0+PTX", ["80", "86", "90"]),
    ("90", ["90"]),
])
def test_arch_list(text, want):
    assert decide({"TORCH_CUDA_ARCH_LIST": text}, NVCC, "2.11", "13.0")[3] == want
    assert _parse_arch_list(text) == want


@pytest.mark.parametrize("bad", ["", "sm_90", "9.x"])
def test_bad_arch_list(bad):
    with pytest.raises(RuntimeError, match="TORCH_CUDA_ARCH_LIST"):
        _parse_arch_list(bad)
