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


def test_the_docs_repeat_the_readme_commands_exactly():
    """docs/ (build.md) repeats the install, bench and test commands: they must be the README's."""
    readme = {l.strip() for l in (ROOT / "README.md").read_text().splitlines()
              if l.strip().startswith("python3 -m venv")}
    assert len(readme) == 2, readme
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for line in doc.read_text().splitlines():
            if line.strip().startswith("python3 -m venv .venv") and "torch==2.13.0" in line:
                assert line.strip() in readme, (doc.name, line)
