"""The README's test command is exactly what CI runs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = [l.strip() for l in (ROOT / "README.md").read_text().splitlines()]
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    readme_cmds = [l for l in readme if "pytest" in l and l.startswith("python3 -m venv")]
    ci_cmds = [l for l in ci if l and not l.startswith("#") and "pytest" in l]
    assert len(readme_cmds) == 1, readme_cmds
    assert ci_cmds == readme_cmds


def test_ci_runs_the_cuda_stage_after_the_test_command():
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    test_cmd = next(i for i, l in enumerate(ci) if "pytest" in l and not l.startswith("#"))
    assert "bash .ci/cuda_stage.sh" in ci[test_cmd + 1:]
