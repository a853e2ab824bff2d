"""Issue 18: the torch a core was built against is recorded, and importing it under another
torch stops with one clear message (tested by faking the recorded version in a copy of the
installed package); the sdist carries what a build needs (MANIFEST.in)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import memory_ext
from memory_ext import _torch_check

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(memory_ext.__file__).resolve().parent


def test_the_build_recorded_the_torch_it_was_built_against():
    assert _torch_check.built_torch_version() == torch.__version__ == memory_ext.build_info()["torch_version"]


def _copy_with_recorded(tmp_path, recorded):
    dst = tmp_path / "site" / "memory_ext"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns("__pycache__"))
    (dst / "_built_with.py").write_text(f"TORCH_VERSION = {recorded!r}\n")
    return dst.parent


def test_import_under_another_torch_is_one_clear_error(tmp_path):
    site = _copy_with_recorded(tmp_path, "2.0.0+fake")
    r = subprocess.run([sys.executable, "-c", "import memory_ext"], cwd=tmp_path, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(site)))
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: memory_ext was built against torch 2.0.0+fake, but torch "
                           f"{torch.__version__} is installed"), r.stderr
    assert "rebuild memory_ext against this torch" in last and "undefined symbol" not in r.stderr


def test_the_command_under_another_torch_prints_one_line(tmp_path):
    site = _copy_with_recorded(tmp_path, "2.0.0+fake")
    script = tmp_path / "memory-ext"
    script.write_text("import sys\nfrom memory_ext.cli import main\nsys.exit(main())\n")
    r = subprocess.run([sys.executable, str(script), "info"], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(site)))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("memory-ext: error: memory_ext was built against")


def test_the_same_torch_imports(tmp_path):
    site = _copy_with_recorded(tmp_path, torch.__version__)
    r = subprocess.run([sys.executable, "-c", "import memory_ext; print(memory_ext.__version__)"], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(site)))
    assert r.returncode == 0, r.stderr


def test_info_prints_the_built_and_the_running_torch(capsys):
    from memory_ext.cli import main
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"torch_version: {torch.__version__}" in out and f"torch_running: {torch.__version__}" in out


def test_the_manifest_carries_every_build_input():
    text = (ROOT / "MANIFEST.in").read_text()
    for needed in ("LICENSE", "CMakeLists.txt", "recursive-include csrc *.h *.cuh *.cpp *.cu",
                   "recursive-include python *.py *.cpp", "memory_ext/chat/data/chatbot.pt"):
        assert needed in text
