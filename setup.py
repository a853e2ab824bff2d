"""Build driver of memory_ext: resolves the environment, then runs CMake + Ninja.

It builds against the torch that is already installed (use ``pip install --no-build-isolation``).

Environment:
  MEMORY_EXT_CPU_ONLY=1   build the CPU kernels only (no CUDA, no CUDA compile check)
  FORCE_CUDA=1            fail unless the CUDA kernels can be built (nvcc and a CUDA torch)
  TORCH_CUDA_ARCH_LIST    CUDA architectures, e.g. "8.0;9.0" (default "8.0;9.0")
  MAX_JOBS                parallel compile jobs (default: CPU count)
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"


def _find_nvcc():
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
            return os.path.join(home, "bin", "nvcc")
    return None


def _parse_arch_list(text):
    """'8.0;9.0+PTX' or '8.0 9.0' -> ['80', '90']."""
    archs = []
    for item in re.split(r"[;\s,]+", text.strip()):
        if not item:
            continue
        m = re.fullmatch(r"(\d+)\.(\d+)(\+PTX)?|(\d{2,3})", item)
        if not m:
            raise RuntimeError(f"TORCH_CUDA_ARCH_LIST: cannot parse {item!r} (expected e.g. '8.0;9.0')")
        archs.append(m.group(4) or m.group(1) + m.group(2))
    if not archs:
        raise RuntimeError("TORCH_CUDA_ARCH_LIST is empty")
    return archs


def resolve_config():
    """Decide CPU / CUDA / CUDA compile-only, and print why."""
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "memory_ext builds against an installed torch: install torch first "
            "(e.g. pip install torch==2.13.0) and build with pip install --no-build-isolation ."
        ) from e
    cpu_only = os.environ.get("MEMORY_EXT_CPU_ONLY", "0") == "1"
    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    nvcc = _find_nvcc()
    torch_cuda = torch.version.cuda is not None
    archs = _parse_arch_list(os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0"))
    if cpu_only and force_cuda:
        raise RuntimeError("MEMORY_EXT_CPU_ONLY=1 and FORCE_CUDA=1 contradict each other")
    if cpu_only:
        with_cuda, compile_only, why = False, False, "MEMORY_EXT_CPU_ONLY=1"
    elif torch_cuda and nvcc:
        with_cuda, compile_only, why = True, False, f"torch {torch.__version__} has CUDA {torch.version.cuda}, nvcc at {nvcc}"
    elif force_cuda:
        missing = "nvcc was not found (set CUDA_HOME or put nvcc on PATH)" if not nvcc else \
            f"torch {torch.__version__} is a CPU-only build"
        raise RuntimeError(f"FORCE_CUDA=1 but the CUDA kernels cannot be built: {missing}")
    elif nvcc:
        with_cuda, compile_only, why = False, True, \
            f"torch {torch.__version__} has no CUDA; nvcc at {nvcc}: .cu kernels compile-checked only"
    else:
        with_cuda, compile_only, why = False, False, "no nvcc found"
    cfg = dict(
        torch_version=torch.__version__,
        torch_include=cpp_extension.include_paths(),
        torch_lib=os.path.join(os.path.dirname(torch.__file__), "lib"),
        cxx11_abi=int(torch._C._GLIBCXX_USE_CXX11_ABI),
        with_cuda=with_cuda,
        compile_only=compile_only,
        archs=archs,
        why=why,
        nvcc=nvcc,
    )
    print("memory_ext build configuration:", flush=True)
    print(f"  torch        {cfg['torch_version']} (CXX11 ABI {cfg['cxx11_abi']})", flush=True)
    print(f"  CUDA kernels {'built' if with_cuda else ('compile-check only' if compile_only else 'off')} ({why})", flush=True)
    print(f"  CUDA archs   {';'.join(archs) if (with_cuda or compile_only) else '-'}", flush=True)
    return cfg


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        import pybind11

        cfg = resolve_config()
        out_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        build_dir = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        os.makedirs(build_dir, exist_ok=True)
        on = lambda b: "ON" if b else "OFF"  # noqa: E731
        args = [
            "cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DMEMORY_EXT_VERSION={VERSION}",
            f"-DMEMORY_EXT_TORCH_VERSION={cfg['torch_version']}",
            f"-DTORCH_INCLUDE_DIRS={';'.join(cfg['torch_include'])}",
            f"-DTORCH_LIBRARY_DIR={cfg['torch_lib']}",
            f"-DTORCH_CXX11_ABI={cfg['cxx11_abi']}",
            f"-DPYTHON_INCLUDE_DIR={sysconfig.get_paths()['include']}",
            f"-DPYBIND11_INCLUDE_DIR={pybind11.get_include()}",
            f"-DMEMORY_EXT_EXT_SUFFIX={sysconfig.get_config_var('EXT_SUFFIX')}",
            f"-DMEMORY_EXT_OUTPUT_DIR={out_dir}",
            f"-DMEMORY_EXT_WITH_CUDA={on(cfg['with_cuda'])}",
            f"-DMEMORY_EXT_CUDA_COMPILE_ONLY={on(cfg['compile_only'])}",
            f"-DMEMORY_EXT_CUDA_ARCHS={';'.join(cfg['archs'])}",
        ]
        if cfg["nvcc"] and cfg["with_cuda"]:
            args.append(f"-DCMAKE_CUDA_COMPILER={cfg['nvcc']}")
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.check_call(args)
        subprocess.check_call(["cmake", "--build", build_dir, "-j", jobs])


setup(
    version=VERSION,
    packages=["memory_ext", "memory_ext.bench"],
    ext_modules=[CMakeExtension("memory_ext._C")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
