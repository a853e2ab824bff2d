"""Resolves how memory_ext is built (CPU only, CUDA, or CUDA compile-check) from the
environment; used by setup.py and tested by tests/test_build_config.py.

  MEMORY_EXT_CPU_ONLY=1   CPU kernels only (no CUDA, no CUDA compile check)
  FORCE_CUDA=1            fail unless the CUDA kernels can be built (nvcc and a CUDA torch)
  TORCH_CUDA_ARCH_LIST    CUDA architectures, e.g. "8.0;9.0" (default "8.0;9.0")
"""
import os
import re
import shutil
import subprocess

# The oldest CMake that builds memory_ext: 3.25.2 is the first that knows nvcc's C++20 flags
# (3.25.1 stops at generate: 'Target "_C" requires the language dialect "CUDA20"'). Keep in step
# with cmake_minimum_required in CMakeLists.txt and the cmake requirement in pyproject.toml.
MIN_CMAKE = (3, 25, 2)


def _version_tuple(text):
    """'cmake version 3.25.1' (or '3.25.1') -> (3, 25, 1); None if there is no version."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return None if m is None else (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def _cmake_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return _version_tuple(out.stdout) if out.returncode == 0 else None


def _package_tool(module_name, dir_attr, exe):
    """The executable of a pip package (cmake, ninja) in this build's Python environment."""
    try:
        mod = __import__(module_name)
    except ImportError:
        return None
    path = os.path.join(getattr(mod, dir_attr, ""), exe)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def find_cmake(package_cmake=None, path_cmake=None, version_of=_cmake_version):
    """The CMake to build with: the `cmake` package of this Python environment (a build
    requirement), else the `cmake` first on PATH if it is new enough; otherwise a RuntimeError
    naming the version needed. Arguments are for tests (defaults: look them up)."""
    need = ".".join(map(str, MIN_CMAKE))
    package_cmake = package_cmake if package_cmake is not None else _package_tool("cmake", "CMAKE_BIN_DIR", "cmake")
    candidates = [c for c in (package_cmake,
                              path_cmake if path_cmake is not None else shutil.which("cmake")) if c]
    seen = []
    for c in candidates:
        v = version_of(c)
        if v is not None and v >= MIN_CMAKE:
            return c
        seen.append(f"{c} is {'.'.join(map(str, v)) if v else 'unusable'}")
    found = "; ".join(seen) if seen else "no cmake was found"
    raise RuntimeError(
        f"memory_ext needs CMake >= {need} ({found}). Install it into the build's environment "
        f"(pip install 'cmake>={need}') and build with pip install --no-build-isolation .")


def find_ninja():
    """The ninja of the `ninja` package of this Python environment, else the one on PATH."""
    found = _package_tool("ninja", "BIN_DIR", "ninja") or shutil.which("ninja")
    if found is None:
        raise RuntimeError("memory_ext builds with Ninja: pip install ninja (none was found)")
    return found

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


def decide(env, nvcc, torch_version, torch_cuda_version):
    """(with_cuda, compile_only, why, archs) for an environment dict, the nvcc path (or None)
    and the installed torch's version and CUDA version (None for a CPU build)."""
    cpu_only = env.get("MEMORY_EXT_CPU_ONLY", "0") == "1"
    force_cuda = env.get("FORCE_CUDA", "0") == "1"
    torch_cuda = torch_cuda_version is not None
    archs = _parse_arch_list(env.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0"))
    if cpu_only and force_cuda:
        raise RuntimeError("MEMORY_EXT_CPU_ONLY=1 and FORCE_CUDA=1 contradict each other")
    if cpu_only:
        with_cuda, compile_only, why = False, False, "MEMORY_EXT_CPU_ONLY=1"
    elif torch_cuda and nvcc:
        with_cuda, compile_only, why = True, False, f"torch {torch_version} has CUDA {torch_cuda_version}, nvcc at {nvcc}"
    elif force_cuda:
        missing = "nvcc was not found (set CUDA_HOME or put nvcc on PATH)" if not nvcc else \
            f"torch {torch_version} is a CPU-only build"
        raise RuntimeError(f"FORCE_CUDA=1 but the CUDA kernels cannot be built: {missing}")
    elif nvcc:
        with_cuda, compile_only, why = False, True, \
            f"torch {torch_version} has no CUDA; nvcc at {nvcc}: .cu kernels compile-checked only"
    else:
        with_cuda, compile_only, why = False, False, "no nvcc found"
    return with_cuda, compile_only, why, archs


def resolve_config():
    """Decide CPU / CUDA / CUDA compile-only for this machine, and print why."""
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "memory_ext builds against an installed torch: install torch first "
            "(e.g. pip install torch==2.13.0) and build with pip install --no-build-isolation ."
        ) from e
    nvcc = _find_nvcc()
    with_cuda, compile_only, why, archs = decide(os.environ, nvcc, torch.__version__,
                                                 torch.version.cuda)
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
