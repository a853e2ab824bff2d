"""tools/ptxas_report.py: the ptxas -v table of the CUDA CI stage (.ci/cuda_stage.sh)."""
import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "ptxas_report.py"
sys.path.insert(0, str(TOOL.parent))
import ptxas_report  # noqa: E402

LOG = """\
  [20/31] Building CUDA object CMakeFiles/_C.dir/csrc/cuda/mlp_memory.cu.o
  ptxas info    : 0 bytes gmem
  ptxas info    : Compiling entry function '_ZN10memory_ext4cuda12_GLOBAL__N_111find_kernelEPllPKllS2_S2_b' for 'sm_80'
  ptxas info    : Function properties for _ZN10memory_ext4cuda12_GLOBAL__N_111find_kernelEPllPKllS2_S2_b
      0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
  ptxas info    : Used 18 registers, used 0 barriers, 416 bytes cmem[0]
  ptxas info    : Compiling entry function '_Z5spillPf' for 'sm_90'
  ptxas info    : Function properties for _Z5spillPf
      1040 bytes stack frame, 96 bytes spill stores, 128 bytes spill loads
  ptxas info    : Used 255 registers, used 1 barriers, 1040 bytes cumulative stack size, 4096 bytes smem
  ptxas info    : Compiling entry function '_ZN10memory_ext4cuda12_GLOBAL__N_111find_kernelEPllPKllS2_S2_b' for 'sm_80'
  ptxas info    : Function properties for _ZN10memory_ext4cuda12_GLOBAL__N_111find_kernelEPllPKllS2_S2_b
      0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
  ptxas info    : Used 18 registers, used 0 barriers, 416 bytes cmem[0]
"""


def test_parse_reads_every_kernel_once():
    rows = ptxas_report.parse(LOG)
    assert [(r["arch"], r["registers"], r["stack"], r["spill_stores"], r["spill_loads"], r["smem"])
            for r in rows] == [("sm_80", 18, 0, 0, 0, 0), ("sm_90", 255, 1040, 96, 128, 4096)]
    assert [r["kernel"] for r in ptxas_report.spills(rows)] == ["_Z5spillPf"]


def test_markdown_names_kernels_demangled():
    table = ptxas_report.markdown(ptxas_report.parse(LOG))
    assert "| `find_kernel` | sm_80 | 18 | 0 | 0 | 0 | 0 |" in table
    assert "| `spill` | sm_90 | 255 | 1040 | 96 | 128 | 4096 |" in table


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


def test_cli_fails_on_a_spill_and_writes_json(tmp_path):
    log = tmp_path / "build.log"
    log.write_text(LOG)
    out = tmp_path / "ptxas.json"
    r = run(str(log), "--json", str(out), "--fail-on-spill")
    assert r.returncode == 1 and "_Z5spillPf (sm_90) spills 96 B stores" in r.stderr
    assert len(json.loads(out.read_text())) == 2
    assert run(str(log)).returncode == 0  # without --fail-on-spill: the table only


def test_cli_log_without_ptxas_lines_is_an_error(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("[1/2] Building CXX object x.o\n")
    r = run(str(log))
    assert r.returncode == 2 and "no ptxas -v lines" in r.stderr
    r = run(str(tmp_path / "missing.log"))
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
