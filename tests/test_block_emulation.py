"""The CUDA kernels' synchronisation, checked without a GPU.

tests/block_emulation/emulate_blocks.cpp runs the shared per-batch-element algorithm the way
the CUDA kernels run it (a block of threads per batch element, loops strided by thread id, a
barrier at each sync()) on std::threads, built with ThreadSanitizer: a missing barrier is a data
race (TSan exits 66) or a wrong value, against the single-thread CPU run of the same code.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "tests" / "block_emulation" / "emulate_blocks.cpp"


def _compile(out: Path, sanitize: bool) -> bool:
    cmd = ["g++", "-std=c++20", "-O1", "-g", "-pthread", f"-I{ROOT / 'csrc' / 'include'}",
           f"-I{ROOT / 'csrc' / 'cpu'}", str(SRC), "-o", str(out)]
    if sanitize:
        cmd.insert(1, "-fsanitize=thread")
    return subprocess.run(cmd, capture_output=True, text=True).returncode == 0


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to build the block emulator")
    exe = tmp_path_factory.mktemp("emu") / "emulate_blocks"
    if not _compile(exe, sanitize=True):
        pytest.fail("emulate_blocks.cpp did not compile with -fsanitize=thread")
    return exe


@pytest.mark.parametrize("threads", [3, 8])
@pytest.mark.parametrize("act", [0, 1, 2, 3], ids=["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("rule", ["local", "grad"])
def test_block_emulation_matches_cpu_without_races(emulator, rule, act, threads):
    r = subprocess.run([str(emulator), rule, str(act), str(threads)], capture_output=True,
                       text=True, timeout=120)
    assert "ThreadSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1].startswith("OK"), r.stdout
