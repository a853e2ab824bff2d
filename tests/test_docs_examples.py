"""The examples of README.md and docs/*.md, and every docstring example of the package, run as
written."""
import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import memory_ext

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# every module of the package (the compiled core and the applications' heavy imports included)
MODULES = sorted(m.name for m in pkgutil.walk_packages(memory_ext.__path__, "memory_ext."))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_markdown_python_examples_run(doc):
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    for code in blocks:
        exec(compile(code, str(doc.relative_to(ROOT)), "exec"), {})


def test_readme_has_a_python_example():
    assert re.search(r"```python\n", (ROOT / "README.md").read_text())


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_docstring_examples_are_found():
    """The walk finds the modules with examples (a broken walk would pass every test above)."""
    attempted = {}
    for name in MODULES:
        finder = doctest.DocTestFinder()
        module = importlib.import_module(name)
        attempted[name] = sum(len(t.examples) for t in finder.find(module))
    for name in ("memory_ext.ops.mlp_memory", "memory_ext.ops.delta_rule.front", "memory_ext.nn.mlp_memory",
                 "memory_ext.ops.hash_table", "memory_ext.nn.elastic_embedding", "memory_ext.nn.elastic_vocab"):
        assert attempted.get(name, 0) > 0, (name, attempted)
