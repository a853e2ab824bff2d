"""How setup.py decides what to build (python/build_config.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from build_config import MIN_CMAKE, _parse_arch_list, _version_tuple, decide, find_cmake  # noqa: E402

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


# --- which CMake builds (issue 13: Debian's 3.25.1 first on PATH broke the CUDA build) --------
VERSIONS = {"/pkg/cmake": (4, 4, 3), "/usr/bin/cmake": (3, 25, 1), "/new/cmake": (3, 25, 2)}


def test_package_cmake_wins_over_an_old_one_on_path():
    assert find_cmake("/pkg/cmake", "/usr/bin/cmake", VERSIONS.get) == "/pkg/cmake"


def test_path_cmake_used_when_no_package_and_new_enough():
    assert find_cmake("", "/new/cmake", VERSIONS.get) == "/new/cmake"


def test_old_cmake_alone_stops_with_the_version_needed():
    with pytest.raises(RuntimeError, match=r"CMake >= 3\.25\.2 \(/usr/bin/cmake is 3\.25\.1\)"):
        find_cmake("", "/usr/bin/cmake", VERSIONS.get)


def test_no_cmake_at_all_says_so():
    with pytest.raises(RuntimeError, match="no cmake was found"):
        find_cmake("", "", VERSIONS.get)


def test_min_cmake_matches_cmakelists_and_pyproject():
    root = Path(__file__).resolve().parents[1]
    need = ".".join(map(str, MIN_CMAKE))
    assert f"cmake_minimum_required(VERSION {need})" in (root / "CMakeLists.txt").read_text()
    assert f'"cmake>={need}"' in (root / "pyproject.toml").read_text()


@pytest.mark.parametrize("text, want", [("cmake version 3.25.1\n", (3, 25, 1)), ("4.4", (4, 4, 0)),
                                        ("nothing", None)])
def test_version_tuple(text, want):
    assert _version_tuple(text) == want
