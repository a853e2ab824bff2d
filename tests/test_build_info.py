"""memory_ext.build_info(): how the compiled core was built."""
import torch

import memory_ext

KEYS = {"version", "torch_version", "cuda", "cuda_archs", "cpu_threads", "cpu_isa"}


def test_build_info_keys():
    info = memory_ext.build_info()
    assert set(info) == KEYS


def test_build_info_torch_version_is_the_running_torch():
    assert memory_ext.build_info()["torch_version"] == torch.__version__


def test_build_info_version_is_package_version():
    assert memory_ext.build_info()["version"] == memory_ext.__version__


def test_build_info_cuda_off_without_cuda_torch():
    info = memory_ext.build_info()
    assert isinstance(info["cuda"], bool)
    if torch.version.cuda is None:
        assert info["cuda"] is False
        assert info["cuda_archs"] in ("", None, [])


def test_build_info_cpu_fields():
    info = memory_ext.build_info()
    assert isinstance(info["cpu_threads"], int) and info["cpu_threads"] >= 1
    assert isinstance(info["cpu_isa"], str) and info["cpu_isa"]


def test_build_info_returns_a_fresh_dict():
    info = memory_ext.build_info()
    info["version"] = "tampered"
    assert memory_ext.build_info()["version"] != "tampered"
