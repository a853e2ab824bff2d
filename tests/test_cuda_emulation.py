"""Every CUDA kernel of csrc/cuda, run from its own source on the CPU under the CUDA
execution-model emulator (tests/cuda_emulation), and compared with the CPU kernels.

The .cu files are compiled as C++ with tests/cuda_emulation first on the include path, so the
kernels, CudaExec, the launch functions (the *_launch.h entry points that the CUDA registration
calls) and their launch configuration run as written; only the launch itself and the dynamic
shared memory go through the helpers of csrc/cuda/launch.cuh. Threads of a block run
concurrently, so a missing barrier is a data race: the emulator is built twice, with
ThreadSanitizer and with AddressSanitizer + UndefinedBehaviorSanitizer, and every case runs under
both. This is evidence about the CUDA code, not a GPU run.
"""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "cuda_emulation"
CXX = os.environ.get("CXX", "g++")
SANITIZERS = {
    "tsan": ["-fsanitize=thread"],
    "asan": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
             "-fno-omit-frame-pointer"],
}
COMMON = ["-std=c++20", "-O1", "-g", "-pthread", "-Wall", "-Werror", "-Wno-unknown-pragmas"]
INCLUDES = [f"-I{EMU}", f"-I{ROOT / 'csrc' / 'include'}", f"-I{ROOT / 'csrc' / 'cuda'}",
            f"-I{ROOT / 'csrc' / 'cpu'}"]
ACTS = {"tanh": 0, "sigmoid": 1, "relu": 2, "identity": 3}


def _sanitizer_works(flags, tmp: Path) -> bool:
    src = tmp / "probe.cpp"
    src.write_text("#include <thread>\nint main() { std::thread t([] {}); t.join(); }\n")
    r = subprocess.run([CXX, *flags, "-pthread", str(src), "-o", str(tmp / "probe")],
                       capture_output=True, text=True)
    return r.returncode == 0 and subprocess.run([str(tmp / "probe")]).returncode == 0


def _build(kind: str, out: Path) -> Path:
    """Compiles every .cu file as C++ under the emulator, the CPU MLP kernels and the driver."""
    flags = SANITIZERS[kind]
    jobs = [[CXX, *flags, *COMMON, "-x", "c++", "-DMEMORY_EXT_CUDA_EMULATION", *INCLUDES, "-c",
             str(cu), "-o", str(out / f"{cu.stem}.o")] for cu in sorted((ROOT / "csrc" / "cuda").glob("*.cu"))]
    # the CPU kernels with MEMORY_EXT_CUDA_EMULATION too: every file of the binary then sees the
    # same inline code of the shared headers (the nvcc form of their layer loops, common.h)
    jobs.append([CXX, *flags, *COMMON, "-fopenmp-simd", "-DMEMORY_EXT_CPU_CAP=base",
                 "-DMEMORY_EXT_CUDA_EMULATION", *INCLUDES,
                 "-c", str(ROOT / "csrc" / "cpu" / "mlp_memory_kernels.cpp"), "-o",
                 str(out / "cpu_mlp_kernels.o")])
    jobs.append([CXX, *flags, *COMMON, "-DMEMORY_EXT_CUDA_EMULATION", *INCLUDES, "-c",
                 str(EMU / "emulate.cpp"), "-o", str(out / "emulate.o")])
    jobs.append([CXX, *flags, *COMMON, "-DMEMORY_EXT_CUDA_EMULATION", *INCLUDES, "-c",
                 str(EMU / "selftest.cpp"), "-o", str(out / "selftest.o")])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        results = list(ex.map(lambda c: subprocess.run(c, capture_output=True, text=True), jobs))
    for cmd, r in zip(jobs, results):
        if r.returncode != 0:
            pytest.fail(f"emulator build ({kind}) failed: {' '.join(cmd)}\n{r.stderr[-4000:]}")
    kernels = [str(p) for p in out.glob("*.o") if p.name not in ("emulate.o", "selftest.o")]
    for exe, objs in (("emulate", [*kernels, str(out / "emulate.o")]),
                      ("selftest", [str(out / "selftest.o")])):
        r = subprocess.run([CXX, *flags, "-pthread", *objs, "-o", str(out / exe)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"emulator link ({kind}, {exe}) failed:\n{r.stderr[-4000:]}")
    return out


@pytest.fixture(scope="session", params=list(SANITIZERS))
def emulator(request, tmp_path_factory):
    kind = request.param
    if shutil.which(CXX) is None:
        pytest.skip(f"{CXX} is needed to build the CUDA emulator")
    tmp = tmp_path_factory.mktemp(f"emu_{kind}")
    if not _sanitizer_works(SANITIZERS[kind], tmp):
        pytest.skip(f"{CXX} cannot build and run with {' '.join(SANITIZERS[kind])}")
    return kind, _build(kind, tmp)


def run(emulator, *args, exe="emulate", timeout=600, wait_s=120):
    """Runs the emulator; wait_s: how long a barrier or shuffle waits for missing threads."""
    kind, d = emulator
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66",
               CUDA_EMU_TIMEOUT_S=str(wait_s),
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return subprocess.run([str(d / exe), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def assert_clean(r):
    report = r.stdout[-3000:] + r.stderr[-6000:]
    for word in ("ThreadSanitizer", "AddressSanitizer", "runtime error", "LeakSanitizer",
                 "CUDA emulation error"):
        assert word not in r.stderr, report
    assert r.returncode == 0, report
    lines = r.stdout.strip().splitlines()
    assert lines and lines[-1] == "OK" and not any(l.startswith("MISMATCH") for l in lines), report
    assert sum(l.startswith("ok ") for l in lines) > 0, report
    return lines


def paths(lines):
    return {l.split()[1]: l.split()[2] for l in lines if l.startswith("path ")}


# --- MLP memory: read, write/step/scan forward and backward, the in-place step -------------------
# (rule, activation, B, T, H, Hr, C, beta per layer, alpha, recon, widths)
MLP_CASES = [
    *[(rule, act, 2, 5, 2, 3, 2, rule == "grad", True, True, (12, 40, 24))
      for rule in ("local", "grad") for act in ACTS],               # checkpoints at t = 0, 2, 4
    ("local", "tanh", 2, 4, 3, 2, 3, False, False, False, (33, 17)),  # L = 1, no alpha, no recon
    ("grad", "sigmoid", 1, 3, 2, 2, 1, True, True, True, (20, 33, 47, 9)),   # L = 3, C = 1
    ("grad", "tanh", 2, 3, 1, 1, 2, False, True, True, (8, 16, 24, 16, 8)),  # L = 4
    ("local", "relu", 2, 3, 2, 2, 16, True, True, True, (8, 16, 24, 16, 8)),  # L = 4, C > T
    ("local", "tanh", 1, 1, 2, 2, 1, False, True, True, (12, 40, 24)),  # B = 1, T = 1: in place
    ("grad", "identity", 2, 1, 3, 1, 1, True, True, True, (31, 65, 33)),  # in place, odd widths
    ("local", "tanh", 2, 6, 2, 0, 3, False, True, True, (12, 40, 24)),  # no read heads
    ("local", "tanh", 0, 3, 2, 2, 2, False, True, True, (12, 40, 24)),  # B = 0: nothing launched
    ("grad", "tanh", 2, 0, 2, 2, 2, False, True, True, (12, 40, 24)),   # T = 0: w_out = w0
]


def mlp_args(case):
    rule, act, B, T, H, Hr, C, per_layer, alpha, recon, widths = case
    return [rule, ACTS[act], B, T, H, Hr, C, int(per_layer), int(alpha), int(recon), *widths]


@pytest.mark.parametrize("case", MLP_CASES, ids=lambda c: f"{c[0]}-{c[1]}-B{c[2]}-T{c[3]}-C{c[6]}-n{'x'.join(map(str, c[10]))}")
def test_mlp_kernels_match_cpu(emulator, case):
    lines = assert_clean(run(emulator, "h100", "mlp", *mlp_args(case)))
    B, T = case[2], case[3]
    if B > 0:  # these widths fit the opt-in shared memory of an H100
        assert paths(lines)["mlp_scan_fwd"] == "on_chip"
    if B > 0 and T > 0:
        assert any(l.startswith("ok bwd g_w0[0]") for l in lines)
    if B > 0 and T == 1:
        assert any(l.startswith("ok step_bwd_ weights undone") for l in lines)


@pytest.mark.parametrize("device, widths, want", [
    ("h100", (64, 256, 256), "global"),        # 2 x 256 KB of weights > 227 KB opt-in
    ("small", (24, 200, 200, 24), "global"),   # > 64 KB opt-in: the global-workspace fallback
    ("small", (12, 40, 24), "on_chip"),
])
def test_mlp_kernels_shared_memory_limit_and_fallback(emulator, device, widths, want):
    lines = assert_clean(run(emulator, device, "mlp", "grad", 0, 2, 3, 2, 2, 2, 1, 1, 1, *widths))
    got = paths(lines)
    assert got["mlp_scan_fwd"] == want and got["mlp_scan_bwd"] == want, got


# --- delta rule step, slots, gather_rows, hash table --------------------------------------------
@pytest.mark.parametrize("B, H, K, V", [(2, 3, 24, 40), (1, 1, 1, 1), (2, 2, 64, 200), (3, 1, 7, 31),
                                        (0, 2, 8, 8)])
def test_delta_rule_step_kernel_matches_cpu(emulator, B, H, K, V):
    assert_clean(run(emulator, "h100", "delta", B, H, K, V))


@pytest.mark.parametrize("B, N, d, K, per_hop, with_r, counts", [
    (3, 7, 20, 3, 1, 1, (0, 4, 9)),      # empty, partly full, count above N (full)
    (3, 7, 20, 3, 0, 0, (7, 2, 1)),      # memories shared by the hops, no R
    (130, 5, 4, 2, 1, 0, tuple(i % 7 for i in range(130))),  # two blocks of 128 threads
    (0, 4, 4, 1, 0, 0, ()),              # B = 0: nothing launched
])
def test_slot_kernels_match_cpu(emulator, B, N, d, K, per_hop, with_r, counts):
    assert_clean(run(emulator, "h100", "slot", B, N, d, K, per_hop, with_r, *counts))


@pytest.mark.parametrize("out_rows, src_rows, n_index, row_bytes", [
    (10, 6, 8, (16, 13, 4, 64)),    # 16-byte vectors and byte copies, zero-filled tail rows
    (5, 5, 5, (0, 48)),             # a zero-width tensor
    (3, 1, 0, (32,)),               # nothing gathered: all zero
    (0, 1, 0, (8,)),                # no rows: nothing launched
])
def test_gather_rows_kernel_matches_cpu(emulator, out_rows, src_rows, n_index, row_bytes):
    assert_clean(run(emulator, "h100", "gather", out_rows, src_rows, n_index, *row_bytes))


@pytest.mark.parametrize("cap, n, distinct", [(64, 100, 20), (1024, 600, 300), (16, 5, 2),
                                              (256, 1000, 3)])
def test_hash_table_kernels_match_cpu(emulator, cap, n, distinct):
    assert_clean(run(emulator, "h100", "hash", cap, n, distinct))


# --- the emulator catches what it is for ----------------------------------------------------------
@pytest.mark.parametrize("bug, tsan_only, expect", [
    ("ok", False, None),
    ("missing_barrier", True, "ThreadSanitizer: data race"),
    ("shfl_mask_leaves_out_caller", False, "leaves out the calling lane"),
    ("shfl_lane_never_arrives", False, "never arrive at __shfl_down_sync"),
    ("shfl_masks_differ", False, "lanes of one warp call __shfl_down_sync with mask"),
    ("smem_write_past_end", False, None),  # ASan: heap-buffer-overflow; else the guard bytes
    ("smem_too_large_without_optin", False, "launch failed: invalid argument"),
    ("empty_grid", False, "launch failed: invalid configuration argument"),
    ("barrier_not_reached", False, "never arrive"),  # lanes in a shuffle, one at a barrier
])
def test_emulator_reports_injected_bugs(emulator, bug, tsan_only, expect):
    kind = emulator[0]
    if tsan_only and kind != "tsan":
        pytest.skip("a data race is seen by ThreadSanitizer (the tsan build), not by ASan")
    r = run(emulator, bug, exe="selftest", timeout=120, wait_s=5)
    if bug == "ok":
        assert r.returncode == 0 and "ThreadSanitizer" not in r.stderr, r.stdout + r.stderr
        return
    assert r.returncode != 0, f"{bug} was not reported:\n{r.stdout}\n{r.stderr[-2000:]}"
    if bug == "smem_write_past_end":
        want = ("AddressSanitizer: heap-buffer-overflow" if kind == "asan"
                else "dynamic shared memory written 0 bytes past its launched size")
        assert want in r.stderr + r.stdout, r.stderr[-2000:]
    else:
        assert expect in r.stderr + r.stdout, r.stdout + r.stderr[-2000:]
