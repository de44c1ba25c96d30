"""The lessons tell the truth: code a lesson quotes is the stage's code.

In a lesson README, every ```python block is an excerpt of the stage's app.py.
A line holding only `...` (indented or not) marks code left out; each run of lines
between such marks must appear in app.py exactly, and in the order quoted."""

import re

import pytest

from support import ROOT, STAGES

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def excerpts(block):
    """The runs of quoted lines between the `...` marks of a code block."""
    runs = re.split(r"^[ \t]*\.\.\.[ \t]*\n", block, flags=re.M)
    return [run.strip("\n") for run in runs if run.strip()]


def python_blocks(stage):
    return PYTHON_BLOCK.findall((ROOT / stage / "README.md").read_text())


@pytest.mark.parametrize("stage", STAGES)
def test_the_lesson_quotes_code(stage):
    assert len(python_blocks(stage)) >= 3, "a lesson walks through its code"


@pytest.mark.parametrize("stage", STAGES)
def test_code_quoted_in_the_lesson_is_the_stages_code(stage):
    code = (ROOT / stage / "app.py").read_text()
    for block in python_blocks(stage):
        position = 0
        for run in excerpts(block):
            found = code.find(run, position)
            assert found >= 0, f"{stage}/README.md quotes code that is not in app.py (or not in this order):\n{run}"
            position = found + len(run)


def test_excerpts_split_at_ellipsis_lines():
    block = "def f():\n    a = 1\n    ...\n    return a\n"
    assert excerpts(block) == ["def f():\n    a = 1", "    return a"]
