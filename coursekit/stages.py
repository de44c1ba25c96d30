"""The stages, the one way to load one (load_stage), and what a stage defines,
whichever of its modules defines it (StageCode)."""

import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
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
    "part5_live": "/uploads/{}/orig",
}
# Where each stage's upload form posts (parts 3 to 5 add the `?_xsrf=` of the page).
FORM_PATHS = {
    "part1_basic": "/",
    "part2_thumbnails": "/",
    "part3_streaming": "/upload",
    "part4_production": "/upload",
    "part5_live": "/upload",
}
# The collection of each stage's records of its uploads, beside GridFS's own two. Part 1
# keeps none: it lists fs.files itself (and part 2's name stays empty there).
RECORDS = {
    "part1_basic": "imgs",
    "part2_thumbnails": "imgs",
    "part3_streaming": "uploads",
    "part4_production": "uploads",
    "part5_live": "uploads",
}


def lesson_programs(stage):
    """The smallest versions of a lesson's ideas: the programs of `<stage>/small/`, in order."""
    return sorted((ROOT / stage).glob("small/*.py"))


def load_stage(stage, folder=None):
    """Import `<stage>/app.py` under a module name of its own, so that stages live side
    by side in one process; or, given a `folder`, the app.py of a copy of the stage
    there (an exercise's solution applied), under a name of its own too.

    A stage may be several modules that import each other by name (`from thumbnails
    import make_thumbnail`), as a script's siblings do: `python part2_thumbnails/app.py`
    puts the script's folder first on the import path. Here each module of the stage
    is imported under the stage's name instead (`part2_thumbnails.thumbnails`, which
    stage_module() returns), once, and is known by its plain name only while the stage
    is being imported: one stage's `uploads` is never another's. (So a stage imports
    its siblings at the top of a module, never later.)"""
    return import_stage(*where(stage, folder))


@functools.cache  # by where the stage is: load_stage(s), load_stage(s, None) and stage_module(s, ...) alike
def import_stage(folder, prefix):
    """The app module of the stage in `folder`, its modules imported under `prefix`."""
    siblings = StageSiblings(folder, prefix)
    # Modules the process already knows by a name of the stage's own (another
    # program's `app`, say) step aside meanwhile: the stage's come first, as in a script.
    others = {path.stem: sys.modules.pop(path.stem) for path in folder.glob("*.py") if path.stem in sys.modules}
    sys.meta_path.insert(0, siblings)
    try:
        spec = siblings.find_spec("app")
        app = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        return app
    finally:
        sys.meta_path.remove(siblings)
        for name in siblings.imported:
            del sys.modules[name]
        sys.modules.update(others)


def stage_module(stage, name, folder=None):
    """The module `name` of a stage (or of the copy of one in `folder`), as load_stage()
    imported it: stage_module("part2_thumbnails", "thumbnails")."""
    load_stage(stage, folder)
    return sys.modules[f"{where(stage, folder)[1]}.{name}"]


def where(stage, folder=None):
    """(the stage's folder, the name its modules are imported under)."""
    if folder is None or Path(folder) == ROOT / stage:
        return ROOT / stage, stage
    return Path(folder), f"{stage}_{hashlib.sha256(bytes(Path(folder))).hexdigest()[:12]}"


class StageSiblings(importlib.abc.MetaPathFinder):
    """Finds the modules of a stage's folder, by their plain name (`thumbnails`) or the
    stage's (`part2_thumbnails.thumbnails`), and imports each under the stage's name."""

    def __init__(self, folder, prefix):
        self.folder, self.prefix = folder, prefix
        self.imported = []  # the plain names under which this stage's modules are known, for now

    def find_spec(self, fullname, path=None, target=None):
        name = fullname.removeprefix(f"{self.prefix}.")
        file = self.folder / f"{name}.py"
        if "." in name or not file.is_file():
            return None
        return importlib.util.spec_from_file_location(f"{self.prefix}.{name}", file,
                                                      loader=SiblingLoader(f"{self.prefix}.{name}", str(file), self))


class SiblingLoader(importlib.machinery.SourceFileLoader):
    """Loads a stage's module under the stage's name, and makes it known by its plain
    name too while the stage is being imported, so that its siblings share it."""

    def __init__(self, fullname, path, siblings):
        super().__init__(fullname, path)
        self.siblings = siblings

    def exec_module(self, module):
        plain = module.__name__.removeprefix(f"{self.siblings.prefix}.")
        sys.modules[plain] = module
        self.siblings.imported.append(plain)
        super().exec_module(module)



class StageCode:
    """What a stage defines, whichever of its modules defines it: `StageCode(app).
    check_filename` is part 1's from its app.py, part 2's from the module that holds it
    (`app`: the stage's app.py as load_stage() imported it). A test asks for the stage's
    function, not for the file it lives in."""

    def __init__(self, app):
        prefix = app.__name__.removesuffix(".app")
        self.modules = [app, *(module for name, module in sorted(sys.modules.items())
                               if name.startswith(prefix + ".") and module is not app)]

    def __getattr__(self, name):
        return getattr(self.module_of(name), name)

    def module_of(self, name):
        """The module of the stage that defines `name`."""
        for module in self.modules:
            if name not in module.__dict__:
                continue
            value = module.__dict__[name]
            # A function or a class is the module's own, not one it imported; any other
            # value, the first module's that has it (app.py first).
            if not (inspect.isfunction(value) or inspect.isclass(value)) or value.__module__ == module.__name__:
                return module
        raise AttributeError(f"no module of {self.modules[0].__name__.removesuffix('.app')} defines {name}")
