"""The notebooks run headless, twice over in one kernel, and leave nothing behind;
their two forms say the same; each is a place to explore, built the same way.

Each notebook in notebooks/ is executed in a fresh kernel from a copy in memory,
with the small parameters below injected after its `parameters` cell (as papermill
does): the committed .ipynb, with the outputs of the default parameters, is never
rewritten here. The kernel is coursekit.notebooks' (nbclient's, driven directly:
that module says what nbmake and nbval would not do here)."""

import ast
import difflib
import inspect
import json
import re

import jupytext
import nbformat
import pytest

from coursekit import lab, notebooks
from coursekit.links import dead_links
from coursekit.stages import ROOT, STAGES

RUNS_ON = STAGES  # every stage

NOTEBOOKS = notebooks.notebook_paths()
STAGES_WITHOUT_NOTEBOOK = {"part4_production", "part5_live"}  # part 3's notebooks serve them too
RESAVE = "re-execute and save it: .venv/bin/python notebooks/execute.py"
# Small enough to keep the runs short, large enough that every cell has work to do.
SMALL = {
    "01_async_fundamentals": dict(FETCHES=3, SLOW_PAGE_SECONDS=0.05, DEADLOCK_TIMEOUT=0.3, CALLS=500,
                                  BLOCKING_CALLS=2, BLOCKING_SECONDS=0.05, WORKERS=2, CHUNKS=2,
                                  CHUNK_SECONDS=0.02, SITE_PAGES=7, PAGE_SECONDS=0.01, CRAWLERS=3),
    "02_inside_gridfs": dict(BIG_FILE_MB=1),
    "03_blocking_work": dict(PHOTOS=2, PHOTO_SIZE=(1200, 800), SAVE_TRIES=2),
    "04_streaming": dict(UPLOAD_MB=6, STORM_CLIENTS=30, GRIDFS_HANDLER_CLIENTS=4, CONCURRENCY=4),
    "05_motor_to_pymongo_async": dict(),
    "06_templates_and_auth": dict(SCRYPT_N=1024, LOGINS=2, TIMING_TRIES=2),
}


# These use the suite's database, as a notebook uses $MONGODB_URI when it is set: each
# run of their setup cell would start an embedded database of its own, about a third
# of their time. Notebook 02 still starts its own, and stops it: both ways stay tested.
ON_THE_SUITES_DATABASE = {"03_blocking_work", "04_streaming", "05_motor_to_pymongo_async"}
assert ON_THE_SUITES_DATABASE <= {path.stem for path in NOTEBOOKS}, "a notebook named there is gone"


@pytest.fixture(params=NOTEBOOKS, ids=lambda path: path.stem)
def notebook(request):
    return request.param


def saved(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def markdown(nb):
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def text_of(cell):
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def test_the_notebooks_are_there():
    names = [path.stem for path in NOTEBOOKS]
    assert names == ["01_async_fundamentals", "02_inside_gridfs", "03_blocking_work", "04_streaming",
                     "05_motor_to_pymongo_async", "06_templates_and_auth"]
    assert set(SMALL) == set(names)


# --- Run twice over in one kernel, and nothing left behind ---


def open_resources(baseline):
    """Runs in the kernel: what it holds open that it did not hold at `baseline` (the
    result of open_resources(None), taken before the notebook's first cell)."""
    import asyncio
    import gc
    import os
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import psutil

    process = psutil.Process()
    # Idle workers of the pools that live as long as the kernel are no leak: asyncio's
    # default executor, and pools that are module globals (Motor's, the stages').
    pools = [asyncio.get_running_loop()._default_executor]
    for module in list(sys.modules.values()):
        pools += [value for value in vars(module).values() if isinstance(value, ThreadPoolExecutor)]
    expected_threads = {thread for pool in pools if pool is not None for thread in pool._threads}
    # The kernel's own machinery starts threads when it needs them (pyzmq's garbage collector).
    expected_threads |= {thread for thread in threading.enumerate()
                     if type(thread).__module__.split(".")[0] in ("zmq", "ipykernel", "IPython")}

    def described(thread):
        return f"{thread.name} ({type(thread).__name__}, target {getattr(thread, '_target', None)})"

    for thread in set(threading.enumerate()) - expected_threads - {threading.current_thread()}:
        if baseline is not None and described(thread) not in baseline["threads"]:
            thread.join(timeout=2)  # one that is stopping gets the time to end
    sockets = process.net_connections("inet")
    gc.collect()
    clients = []
    if "pymongo" in sys.modules:
        from pymongo import AsyncMongoClient, MongoClient

        # issubclass(type(...)): isinstance() would raise on dead weak proxies
        clients = [f"{type(thing).__name__} {list(thing.topology_description.server_descriptions())}"
                   for thing in gc.get_objects()
                   if issubclass(type(thing), (MongoClient, AsyncMongoClient)) and thing._opened and not thing._closed]
    library = os.path.realpath(sys.prefix)  # fonts and the like, opened once and kept
    found = {
        "listening sockets": [f"{s.laddr.ip}:{s.laddr.port}" for s in sockets if s.status == psutil.CONN_LISTEN],
        "connections": [f"{s.laddr.port} -> {s.raddr and s.raddr.port} {s.status}"
                        for s in sockets if s.status != psutil.CONN_LISTEN],
        "child processes": [" ".join(child.cmdline()) for child in process.children(recursive=True)],
        "threads": [described(thread) for thread in threading.enumerate() if thread not in expected_threads],
        "open MongoDB clients": clients,
        "asyncio tasks": [repr(task.get_coro()).split(" at ")[0]
                          for task in asyncio.all_tasks() if task is not asyncio.current_task()],
        "open files": [file.path for file in process.open_files()
                       if not os.path.realpath(file.path).startswith(library)],
    }
    if baseline is None:
        return found
    left = {kind: [item for item in items if item not in baseline[kind]] for kind, items in found.items()}
    return {kind: items for kind, items in left.items() if items}


def watch_figures(palette):
    """Runs in the kernel: from now on, plt.show() notes what each figure lacks in
    `figure_problems`: a title, axis labels, a legend for two series or more, colours
    from `palette` (which readers with a colour blindness tell apart)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    allowed = {to_hex(colour) for colour in palette} | {"#ffffff", "#000000"}
    problems = []

    def colours(ax):
        for line in ax.get_lines():
            yield line.get_color()
        for patch in ax.patches:
            yield patch.get_facecolor()
        for collection in ax.collections:
            yield from collection.get_facecolors()
            yield from collection.get_edgecolors()

    def check(figure):
        shown.append(figure)
        for number, ax in enumerate(figure.axes, 1):
            where = f"figure {len(shown)}, axes {number}"
            rows_named = any(char.isalpha() for label in ax.get_yticklabels() for char in label.get_text())
            if not (ax.get_title() or ax.get_title(loc="left") or figure.get_suptitle()):
                problems.append(f"{where}: no title")
            if not ax.get_xlabel() and ax.get_subplotspec().is_last_row():
                problems.append(f"{where}: no x label")
            if not ax.get_ylabel() and not rows_named and ax.get_subplotspec().is_first_col():
                problems.append(f"{where}: no y label")
            series = {artist.get_label() for artist in ax.get_lines() + ax.patches + ax.collections
                      if not artist.get_label().startswith("_")}
            if len(series) > 1 and not (ax.get_legend() or figure.legends):
                problems.append(f"{where}: {len(series)} series and no legend")
            strange = {to_hex(colour) for colour in colours(ax)} - allowed
            if strange:
                problems.append(f"{where}: colours outside the palette: {sorted(strange)}")

    shown, show = [], plt.show

    def checked_show(*args, **kwargs):
        for number in plt.get_fignums():
            check(plt.figure(number))
        return show(*args, **kwargs)

    plt.show = checked_show
    return problems


# In the kernel, before the notebook: the two functions above, what is open already,
# plt.show() watched. (The cell awaits, as LEFT_OPEN does: the kernel runs such cells
# in a task of their own.)
BASELINE = f"""{inspect.getsource(open_resources)}
{inspect.getsource(watch_figures)}
import asyncio, json
await asyncio.sleep(0)
_baseline = open_resources(None)
_figure_problems = watch_figures({lab.PALETTE!r})
print(json.dumps(_baseline))"""
# A moment for what is closing to close, then what is left.
LEFT_OPEN = "await asyncio.sleep(0.2)\nprint(json.dumps(open_resources(_baseline)))"


class Kernel:
    """Runs cells of `nb`, and code of the test's own, in one kernel."""

    def __init__(self, client, nb):
        self.client, self.nb = client, nb

    async def run_cell(self, index):
        await self.client.async_execute_cell(self.nb.cells[index], index)
        return self.nb.cells[index]

    async def evaluate(self, code):
        """Run `code` in the kernel; what its last line prints, read as JSON."""
        self.nb.cells.append(nbformat.v4.new_code_cell(code))
        cell = await self.run_cell(len(self.nb.cells) - 1)
        self.nb.cells.pop()
        return json.loads(text_of(cell).strip().splitlines()[-1])


@pytest.mark.takes(20)
async def test_the_notebook_runs_twice_in_one_kernel_and_leaves_nothing_behind(notebook, mongodb_uri):
    """Run All; then every code cell again, each twice in a row (so the setup cell
    replaces a running session, and the last cell closes a closed one). After each
    pass: no socket, connection, process, thread, MongoDB client, task or file left."""
    nb = notebooks.with_parameters(saved(notebook), **SMALL[notebook.stem])
    code = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    env = {"MONGODB_URI": mongodb_uri} if notebook.stem in ON_THE_SUITES_DATABASE else {}
    async with notebooks.kernel(nb, env=env) as client:
        kernel = Kernel(client, nb)
        baseline = await kernel.evaluate(BASELINE)
        first_pass = [await kernel.run_cell(index) for index in code]
        after_first = await kernel.evaluate(LEFT_OPEN)
        for index in code:
            for _ in range(2):
                await kernel.run_cell(index)
        after_second = await kernel.evaluate(LEFT_OPEN)
        figure_problems = await kernel.evaluate("print(json.dumps(_figure_problems))")
    assert baseline["child processes"] == []
    assert after_first == {}, "left open after one run"
    assert after_second == {}, "left open after the second run, each cell twice"
    assert all(cell.execution_count for cell in first_pass)
    assert figure_problems == []
    assert_exercises_checked(first_pass)


def assert_exercises_checked(cells):
    """Each solution's check says "not yet" before it (to the starting code) and "solved" after it."""
    for before, solution in zip(cells, cells[1:]):
        if "solution" in solution.metadata.get("tags", []):
            assert lab.NOT_YET in text_of(before), before.source
            assert lab.SOLVED in text_of(solution) and lab.NOT_YET not in text_of(solution), solution.source


# --- The parameters ---


def parse(source):
    """The syntax tree of a cell, which may `await` at the top level."""
    return compile(source, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def parameters(nb):
    tagged = [cell for cell in code_cells(nb) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code_cells(nb)[0], "the first code cell, alone, is tagged `parameters`"
    names = {}
    for statement in parse(tagged[0].source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, ast.unparse(statement)
        names[statement.targets[0].id] = ast.literal_eval(statement.value)  # plain values only
    return names


def test_the_parameters_are_set_once_at_the_top(notebook):
    nb = saved(notebook)
    names = parameters(nb)
    assert set(SMALL[notebook.stem]) <= set(names), "the tests' small values are parameters of the notebook"
    for cell in code_cells(nb)[1:]:
        for node in ast.walk(parse(cell.source)):
            assigned = node.id if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) else None
            declared = node.names if isinstance(node, ast.Global) else []
            assert assigned not in names and not set(declared) & set(names), \
                f"a later cell sets the parameter {assigned or declared}:\n{cell.source}"


# --- The two forms and the saved outputs ---


def test_the_text_form_is_in_step(notebook):
    text_path = notebooks.text_form(notebook)
    assert notebook.exists() and text_path.exists(), f"{notebook.stem} needs its .ipynb and its .py: {RESAVE}"
    nb, text = saved(notebook), jupytext.read(text_path)
    assert nb.metadata.jupytext.formats == notebooks.PAIRING
    in_notebook = [f"--- {cell.cell_type} {cell.metadata.get('tags', [])}\n{cell.source}" for cell in nb.cells]
    in_text = [f"--- {cell.cell_type} {cell.metadata.get('tags', [])}\n{cell.source}" for cell in text.cells]
    diff = "\n".join(difflib.unified_diff(in_notebook, in_text, notebook.name, text_path.name, lineterm=""))
    assert not diff, f"{notebook.name} and {text_path.name} differ ({RESAVE}):\n{diff}"


def test_the_saved_notebook_shows_its_outputs(notebook):
    """A code host shows the committed outputs: they must be there, in order, without
    errors, from the default parameters, with every exercise's check run."""
    nb = saved(notebook)
    cells = code_cells(nb)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), RESAVE
    assert not [cell for cell in cells if "injected-parameters" in cell.metadata.get("tags", [])]
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"], RESAVE
    if any("plt." in cell.source for cell in cells):
        assert any("image/png" in output.get("data", {}) for output in outputs), "its plots are saved as PNG"
    assert_exercises_checked(cells)


def test_the_warnings_a_learner_sees_are_announced(notebook):
    """A cell that prints to stderr (a warning, a log line) comes after text that says so."""
    nb = saved(notebook)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(output.get("name") == "stderr" for output in cell.outputs):
            before = [earlier for earlier in nb.cells[:index] if earlier.cell_type == "markdown"][-1]
            assert "warning" in before.source.lower(), f"announce what this cell logs:\n{cell.source}"


# --- What a learner finds in each: the lesson, exercises, a recap, the way on ---


def test_the_notebook_says_what_it_teaches_its_stage_and_its_lesson(notebook):
    first = saved(notebook).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "**Stage:" in first.source
    assert "## What you will learn" in first.source
    assert re.search(r"\]\(\.\./part\d_\w+/README\.md(#[\w-]+)?\)", first.source), "it links its lesson"


def test_the_notebook_has_exercises_with_checks_and_folded_solutions(notebook):
    nb = saved(notebook)
    exercises = re.findall(r"^### Exercise \d+", markdown(nb), re.M)
    solutions = [cell for cell in nb.cells if "solution" in cell.metadata.get("tags", [])]
    assert 2 <= len(exercises) == len(solutions) <= 3
    assert all(cell.metadata.get("jupyter", {}).get("source_hidden") for cell in solutions), "folded away"


def test_the_notebook_ends_with_a_recap_questions_and_the_way_on(notebook):
    nb = saved(notebook)
    text = markdown(nb)
    assert "## Recap" in text and "## Review questions" in text
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and "Previous:" in last.source and "Next:" in last.source
    assert code_cells(nb)[-1].source.strip() == "await session.close()"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)  # README.md: with the documents, test_lessons.py
def test_the_links_lead_somewhere(path):
    assert not dead_links(path)


def test_the_stage_lesson_links_its_notebooks(stage):
    """A notebook whose stage line names a stage is linked from that stage's lesson."""
    named = [path.name for path in NOTEBOOKS
             if re.search(rf"\*\*Stage:[^*]*`{stage}`", saved(path).cells[0].source)]
    lesson = (ROOT / stage / "README.md").read_text()
    assert named or stage in STAGES_WITHOUT_NOTEBOOK, f"no notebook says it goes with {stage}"
    assert [name for name in named if f"](../notebooks/{name})" not in lesson] == []


def test_the_readme_gives_the_order_and_the_embedded_database_note():
    readme = (notebooks.FOLDER / "README.md").read_text()
    linked = re.findall(r"\]\((\d\d_\w+)\.ipynb\)", readme)
    assert linked[:len(NOTEBOOKS)] == [path.stem for path in NOTEBOOKS]
    assert "MONGODB_URI" in readme and "SecantusDB" in readme
    assert "SecantusDB" in markdown(saved(notebooks.FOLDER / "02_inside_gridfs.ipynb"))
