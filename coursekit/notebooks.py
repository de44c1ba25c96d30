"""The notebooks, run headless: in a fresh kernel, from a copy in memory (the tests)
or to be saved with their outputs (notebooks/execute.py).

Each notebook is a pair: NAME.ipynb, saved with its outputs so that a code host
shows the plots, and NAME.py, its jupytext percent text form, the one to review.

The kernel is driven by nbclient, the library that nbmake, nbval and papermill
drive it with too. Those three run a notebook once, top to bottom, and report on
it; the tests ask more of a notebook than that, so they use nbclient directly
through kernel() below:

- nbmake 1.5 runs the .ipynb from disk, once, as one test; values can only be set
  from the notebook's own metadata (`nbmake.mock`), and no code of the test's own
  runs in the kernel before, between or after its cells, nor can it read the
  outputs afterwards (short of writing them over the committed notebook).
- nbval 0.11 runs each cell as a test, once, in one kernel per notebook, and
  compares outputs with the saved ones (ours change with ports and timings).
- papermill injects parameters and runs the notebook once. with_parameters()
  follows its convention (a cell tagged `injected-parameters` after the one tagged
  `parameters`) in eight lines, where papermill would add four packages (and
  aiohttp's on Python 3.12).

None runs every cell a second time in the same kernel, looks inside the kernel
for what was left open, or stops the processes a kernel leaves behind.
"""

import atexit
import contextlib
import os
import signal
import tempfile
import uuid
from pathlib import Path

import jupytext
import nbformat
import psutil
from jupyter_core.utils import ensure_async
from jupytext.cli import jupytext as jupytext_cli
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from .processes import unmeasured
from .stages import ROOT

FOLDER = ROOT / "notebooks"  # the notebooks, and the working directory of their kernels
PAIRING = "ipynb,py:percent"
CELL_TIMEOUT = 120  # seconds; each notebook takes well under 30 s in all
# Every process the kernel starts inherits this variable, so leftovers can be found.
RUN_MARKER = "COURSE_NOTEBOOK_RUN"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def notebook_paths():
    """Every notebook, as the path of its .ipynb, in reading order."""
    names = {path.stem for path in FOLDER.glob("[0-9]*.ipynb")}
    names |= {path.stem for path in FOLDER.glob("[0-9]*.py")}
    return [FOLDER / f"{name}.ipynb" for name in sorted(names)]


def text_form(path):
    """The jupytext percent file paired with the notebook at `path`."""
    return path.with_suffix(".py")


async def execute(nb, timeout=CELL_TIMEOUT):
    """Run every cell of `nb` in a fresh kernel, in place, as Jupyter would.

    Raises CellExecutionError if a cell raises. A notebook stops its servers in its
    last cell, so when an earlier cell fails the last one still runs. Whatever the
    kernel started and left running is stopped, and is an error of its own."""
    async with kernel(nb, timeout) as client:
        await execute_cells(client, nb)
    return nb


@contextlib.asynccontextmanager
async def kernel(nb, timeout=CELL_TIMEOUT, env=None):
    """A fresh kernel for `nb`, started in the notebooks' folder (with the variables
    `env` added to its environment): yields its NotebookClient, whose
    `async_execute_cell(cell, index)` runs a cell of `nb`.
    Processes the kernel started and left running are stopped afterwards, and raise
    RuntimeError."""
    marker = uuid.uuid4().hex
    # nbclient takes over SIGINT and SIGTERM while it runs and resets them to the
    # defaults afterwards: give the caller (pytest, coverage) its own handlers back.
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with tempfile.TemporaryDirectory(prefix="kernel-") as sockets:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name=nb.metadata["kernelspec"]["name"],
            resources={"metadata": {"path": str(FOLDER)}},
            record_timing=False,  # no timestamps in each cell's metadata: quieter diffs
            # Talk to the kernel over Unix sockets in a private folder, not over TCP.
            config=Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "ipc")}}),
        )
        try:
            async with client.async_setup_kernel(env={**unmeasured(os.environ), **(env or {}), RUN_MARKER: marker}):
                reply = await client.async_wait_for_reply(await ensure_async(client.kc.kernel_info()))
                nb.metadata["language_info"] = reply["content"]["language_info"]
                yield client
        finally:
            atexit.unregister(client._cleanup_kernel)  # left registered if the kernel did not start
            for number, handler in handlers.items():
                signal.signal(number, handler)
            leftovers = stop_leftovers(marker)
    if leftovers:
        raise RuntimeError(f"the notebook left processes running (now stopped): {leftovers}")


def with_parameters(nb, **values):
    """`nb` with a cell that sets `values` right after its cell tagged `parameters`, as
    papermill injects one: the notebook runs with them instead of its defaults."""
    [index] = [index for index, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    source = "# Injected: these values replace the defaults above.\n"
    source += "\n".join(f"{name} = {value!r}" for name, value in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb


async def execute_cells(client, nb):
    last = max(index for index, cell in enumerate(nb.cells) if cell.cell_type == "code")
    for index, cell in enumerate(nb.cells):
        try:
            await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        except CellExecutionError:
            if index < last:
                with contextlib.suppress(CellExecutionError):
                    await client.async_execute_cell(nb.cells[last], last)
            raise


def stop_leftovers(marker, grace=5):
    """Stop the processes that carry `marker` in their environment; return their command lines."""
    found = {}
    for process in psutil.process_iter(["environ", "cmdline"]):
        if (process.info["environ"] or {}).get(RUN_MARKER) == marker:
            found[process] = " ".join(process.info["cmdline"] or [str(process.pid)])
    for process in found:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(found, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    return list(found.values())


# --- Saving the pair ---


def sync(path):
    """Bring the pair in step, inputs from whichever file changed last (`jupytext --sync`)."""
    if path.exists():
        jupytext_cli(["--sync", "--quiet", str(path)])
    else:  # a new notebook, written as text: create its .ipynb
        jupytext_cli(["--set-formats", PAIRING, "--quiet", str(text_form(path))])


def save(nb, path):
    nbformat.write(nb, path)
    # Rewrite the text form from the notebook, last, so it is the more recent of
    # the two: Jupyter's jupytext support expects that of a pair.
    jupytext.write(nb, text_form(path), fmt="py:percent")


async def execute_and_save(path):
    """Sync the pair of the notebook at `path`, execute it in a fresh kernel from its
    default parameters, and save both files."""
    sync(path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata.setdefault("jupytext", {})["formats"] = PAIRING
    nb.metadata.setdefault("kernelspec", KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps: they would change on every run
    await execute(nb)
    save(nb, path)
