"""tools/gpu_check.sh (the one command for a lent GPU) and its report, as far as they can be
checked without a GPU: argument handling, the stop without a GPU, the report format, and that
the kernel smoke driver it runs under compute-sanitizer works (on the CPU against itself)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
sys.path.insert(0, str(ROOT / "tools"))
import gpu_report  # noqa: E402

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the stop without a GPU")


def run(*args, env=None):
    e = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=e,
                          timeout=120)


def test_no_argument_is_a_usage_error():
    r = run()
    assert r.returncode == 2 and "expected one argument, the report folder" in r.stderr


def test_unknown_option_is_a_usage_error():
    r = run("--fast")
    assert r.returncode == 2 and "unknown option --fast" in r.stderr


def test_help_prints_usage():
    r = run("--help")
    assert r.returncode == 0 and "tools/gpu_check.sh REPORT_DIR" in r.stdout


def test_unwritable_report_folder_is_an_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run(str(f / "sub"))
    assert r.returncode == 2 and "cannot write the report folder" in r.stderr


@no_gpu
def test_without_a_gpu_it_stops_clearly_and_writes_a_report(tmp_path):
    r = run(str(tmp_path / "rep"))
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("gpu_check: no GPU: ") and "nothing was run" in r.stderr
    assert "Traceback" not in r.stderr
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["status"] == "no_gpu" and rep["steps"] == [] and rep["message"]


def test_report_collects_steps_ptxas_and_bench(tmp_path):
    (tmp_path / "steps.tsv").write_text("build\t0\t61\ntests\t1\t30\nbench\tskipped\t0\n")
    (tmp_path / "ptxas.json").write_text(json.dumps([{"kernel": "k", "stack": 0}]))
    (tmp_path / "nvidia-smi.log").write_text("GPU 0: NVIDIA H200 (UUID: x)\n")
    assert gpu_report.main([str(tmp_path), "--status", "failed", "--message", "tests",
                            "--seconds", "91"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["steps"] == [dict(name="build", rc=0, seconds=61, log="build.log"),
                            dict(name="tests", rc=1, seconds=30, log="tests.log"),
                            dict(name="bench", rc="skipped", seconds=0, log="bench.log")]
    assert rep["ptxas"] == [{"kernel": "k", "stack": 0}] and rep["bench"] is None
    assert rep["gpu"].startswith("GPU 0: NVIDIA H200") and rep["seconds"] == 91
    assert set(rep) == {"status", "message", "seconds", "gpu", "torch", "python", "steps",
                        "ptxas", "bench"}


def test_report_rejects_an_unknown_status(tmp_path):
    with pytest.raises(ValueError, match="status must be one of"):
        gpu_report.build_report(str(tmp_path), "fine", "")


def test_kernel_smoke_driver_runs_on_the_cpu():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_kernel_smoke.py"), "--device",
                        "cpu"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gpu_kernel_smoke: 0 failed" in r.stdout and "FAIL" not in r.stdout


@no_gpu
def test_kernel_smoke_driver_without_a_gpu_says_so():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_kernel_smoke.py")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no CUDA device" in r.stderr
