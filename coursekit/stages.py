"""The stages, and the one way to load one: load_stage()."""

import functools
import hashlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = sorted(path.parent.name for path in ROOT.glob("part*/app.py"))
# Where each stage serves an uploaded file, by its id.
ORIGINAL_PATHS = {
    "part1_basic": "/imgs/{}",
    "part2_thumbnails": "/imgs/{}/orig",
    "part3_streaming": "/uploads/{}/orig",
    "part4_production": "/uploads/{}/orig",
}
# Where each stage's upload form posts (parts 3 and 4 add the `?_xsrf=` of the page).
FORM_PATHS = {
    "part1_basic": "/",
    "part2_thumbnails": "/",
    "part3_streaming": "/upload",
    "part4_production": "/upload",
}
# The collection of each stage's records of its uploads, beside GridFS's own two. Part 1
# keeps none: it lists fs.files itself (and part 2's name stays empty there).
RECORDS = {
    "part1_basic": "imgs",
    "part2_thumbnails": "imgs",
    "part3_streaming": "uploads",
    "part4_production": "uploads",
}


@functools.cache
def load_stage(stage, folder=None):
    """Import `<stage>/app.py` under a module name of its own, so that stages live side
    by side in one process; or, given a `folder`, the app.py of a copy of the stage
    there (an exercise's solution applied), under a name of its own too."""
    if folder is None:
        module_name, folder = f"{stage}.app", ROOT / stage
    else:
        module_name = f"{stage}.app_{hashlib.sha256(bytes(Path(folder))).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, Path(folder) / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
