"""The README's example and the docstring Examples run as written."""
import doctest
import importlib
import re
from pathlib import Path

import pytest

import memory_ext
from memory_ext import elastic, hash_table, modules, ops, vocab

ROOT = Path(__file__).resolve().parents[1]
# the submodule (memory_ext.delta_rule the attribute is the function)
delta_rule_module = importlib.import_module("memory_ext.delta_rule")


def test_readme_python_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


@pytest.mark.parametrize("module", [ops, modules, delta_rule_module, hash_table, elastic, vocab],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
