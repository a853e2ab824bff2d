"""Build driver of memory_ext: resolves the environment, then runs CMake + Ninja.

It builds against the torch that is already installed (use ``pip install --no-build-isolation``).

Environment:
  MEMORY_EXT_CPU_ONLY=1   build the CPU kernels only (no CUDA, no CUDA compile check)
  FORCE_CUDA=1            fail unless the CUDA kernels can be built (nvcc and a CUDA torch)
  TORCH_CUDA_ARCH_LIST    CUDA architectures, e.g. "8.0;9.0" (default "8.0;9.0")
  MAX_JOBS                parallel compile jobs (default: CPU count)
  MEMORY_EXT_PTXAS_VERBOSE=1  print ptxas -v (registers, stack, spills, shared memory per kernel)
  MEMORY_EXT_SANITIZE=address,undefined  build the CPU kernels under these sanitizers (one ISA
                          variant; run with libasan preloaded, see .ci/asan_stage.sh)
"""
import os
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "python"))
from build_config import find_cmake, find_ninja, resolve_config  # noqa: E402  (python/build_config.py)

VERSION = "0.1.0"


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        import pybind11

        cfg = resolve_config()
        # the cmake and ninja packages of this Python environment, not whatever is first on PATH
        # (e.g. Debian's CMake 3.25.1, too old for nvcc's C++20 flags)
        cmake, ninja = find_cmake(), find_ninja()
        print(f"  cmake        {cmake}\n  ninja        {ninja}", flush=True)
        out_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        build_dir = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        os.makedirs(build_dir, exist_ok=True)
        on = lambda b: "ON" if b else "OFF"  # noqa: E731
        args = [
            cmake, "-S", ROOT, "-B", build_dir, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}",
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
            f"-DMEMORY_EXT_PTXAS_VERBOSE={on(os.environ.get('MEMORY_EXT_PTXAS_VERBOSE') == '1')}",
            f"-DMEMORY_EXT_SANITIZE={os.environ.get('MEMORY_EXT_SANITIZE', '')}",
        ]
        if cfg["nvcc"] and cfg["with_cuda"]:
            args.append(f"-DCMAKE_CUDA_COMPILER={cfg['nvcc']}")
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.check_call(args)
        subprocess.check_call([cmake, "--build", build_dir, "-j", jobs])
        # the torch this core was built against, readable before the core is loaded: importing
        # memory_ext under another torch stops with a clear message instead of an undefined
        # symbol (memory_ext/__init__.py)
        dirs = [out_dir]
        if getattr(self, "editable_mode", False) or self.inplace:  # the source tree imports it
            dirs.append(os.path.join(ROOT, "memory_ext"))
        for d in dirs:
            with open(os.path.join(d, "_built_with.py"), "w") as f:
                f.write('"""Written by setup.py at build time: the torch the compiled core was '
                        'built against."""\n'
                        f"TORCH_VERSION = {cfg['torch_version']!r}\n")


setup(
    version=VERSION,
    packages=["memory_ext", "memory_ext.ops", "memory_ext.ops.delta_rule", "memory_ext.nn",
              "memory_ext.babi", "memory_ext.chat", "memory_ext.bench", "memory_ext.compat"],
    package_data={"memory_ext.chat": ["data/*.pt"]},  # the small chatbot checkpoint `memory-ext chat` uses
    ext_modules=[CMakeExtension("memory_ext._C")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
