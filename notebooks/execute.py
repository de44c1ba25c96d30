"""Execute the notebooks headless, top to bottom, and save them with their outputs.

    .venv/bin/python notebooks/execute.py                       # every notebook
    .venv/bin/python notebooks/execute.py 02_inside_gridfs      # some of them

Each notebook is a pair: NAME.ipynb, saved with its outputs so that a code host
shows the plots, and NAME.py, its jupytext percent text form, the one to review.
For each pair this script syncs the inputs from whichever file changed last (as
`jupytext --sync` does), executes the notebook in a fresh kernel whose working
directory is this folder, and saves both files. coursekit.notebooks does the work;
the tests use it too, on a copy in memory: they never write the files.
"""

import asyncio
import sys
import time
from pathlib import Path

from coursekit.notebooks import FOLDER, execute_and_save, notebook_paths


def main(names):
    paths = [FOLDER / f"{Path(name).stem}.ipynb" for name in names] or notebook_paths()
    for path in paths:
        started = time.monotonic()
        print(f"{path.name}: executing ...", end=" ", flush=True)
        asyncio.run(execute_and_save(path))
        print(f"saved ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
