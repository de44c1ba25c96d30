"""The notebooks run headless, top to bottom, and their two forms say the same.

Each notebook in notebooks/ is executed in a fresh kernel from a copy in memory:
the committed .ipynb, with the outputs a code host shows, is never rewritten here.
A cell that raises fails the test, and so does a process left running."""

import difflib
import importlib.util
import re

import jupytext
import nbformat
import pytest

from support import ROOT, STAGES

spec = importlib.util.spec_from_file_location("notebooks_execute", ROOT / "notebooks" / "execute.py")
notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebooks)

NOTEBOOKS = notebooks.notebook_paths()
RESAVE = "re-execute and save it: .venv/bin/python notebooks/execute.py"


@pytest.fixture(params=NOTEBOOKS, ids=lambda path: path.stem)
def notebook(request):
    return request.param


def saved(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_notebooks_are_there():
    names = [path.stem for path in NOTEBOOKS]
    assert names == ["01_async_fundamentals", "02_inside_gridfs", "03_blocking_work", "04_streaming",
                     "05_motor_to_pymongo_async"]


async def test_the_notebook_runs_top_to_bottom(notebook):
    nb = saved(notebook)
    await notebooks.execute(nb)  # raises if a cell raises, or if anything is left running
    assert all(cell.execution_count for cell in code_cells(nb))


def test_the_text_form_is_in_step(notebook):
    text_path = notebooks.text_form(notebook)
    assert notebook.exists() and text_path.exists(), f"{notebook.stem} needs its .ipynb and its .py: {RESAVE}"
    nb, text = saved(notebook), jupytext.read(text_path)
    assert nb.metadata.jupytext.formats == notebooks.PAIRING
    in_notebook = [f"--- {cell.cell_type}\n{cell.source}" for cell in nb.cells]
    in_text = [f"--- {cell.cell_type}\n{cell.source}" for cell in text.cells]
    diff = "\n".join(difflib.unified_diff(in_notebook, in_text, notebook.name, text_path.name, lineterm=""))
    assert not diff, f"{notebook.name} and {text_path.name} differ ({RESAVE}):\n{diff}"


def test_the_saved_notebook_shows_its_outputs(notebook):
    """A code host shows the committed outputs: they must be there, in order, without errors."""
    cells = code_cells(saved(notebook))
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), RESAVE
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"], RESAVE
    if any("plt." in cell.source for cell in cells):
        assert any("image/png" in output.get("data", {}) for output in outputs), "its plots are saved as PNG"


def test_the_notebook_says_what_it_teaches_and_its_stage(notebook):
    first = saved(notebook).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "**Stage:" in first.source


@pytest.mark.parametrize("stage", STAGES)
def test_the_stage_lesson_links_its_notebooks(stage):
    """A notebook whose stage line names a stage is linked from that stage's lesson."""
    named = [path.name for path in NOTEBOOKS
             if re.search(rf"\*\*Stage:[^*]*`{stage}`", saved(path).cells[0].source)]
    lesson = (ROOT / stage / "README.md").read_text()
    assert named, f"no notebook says it goes with {stage}"
    assert [name for name in named if f"](../notebooks/{name})" not in lesson] == []
