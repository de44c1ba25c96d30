"""The exercises' checks, and the copy of the stage each one runs on.

tests/exercises/<stage>/test_<n>_<name>.py checks exercise n of the stage's lesson
through what a visitor sees (HTTP) and what the database holds; its RUNS_ON names
the stage. It gets the stage through tests/conftest.py's fixtures (`client`,
`serve`, `program`), which here serve, or run, the folder that `stage_dir` gives:

- your working copy of the stage, `<stage>/`, with `--yours` (or the copy in the
  folder that `--copies` names): that is what `python3 course.py check <stage> [n]`
  does (`check FOLDER/<stage> [n]`);
- otherwise (the suite), a copy of the stage in a temporary folder with the
  reference solution, solutions/<stage>/<n>_<name>.patch, applied by `git apply`:
  the check must pass; and the stage as it is: the check must fail, on an assertion
  (the message a learner reads), since an exercise that passes untouched is no
  exercise.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coursekit.stages import ROOT, load_stage

SOLUTIONS = ROOT / "solutions"
UNCHANGED = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="the stage as it is must fail the exercise's check (if you solved it in your copy, that is why)")


def pytest_generate_tests(metafunc):
    if "stage_dir" in metafunc.fixturenames:
        modes = ["yours"] if metafunc.config.getoption("yours") else ["solution", pytest.param("unchanged", marks=UNCHANGED)]
        metafunc.parametrize("stage_dir", modes, indirect=True, scope="module")


@pytest.fixture(scope="module")
def stage_dir(request, stage, tmp_path_factory):
    """The folder of the stage the checks run on: the stage itself, or a copy of it with
    the exercise's solution applied."""
    if request.param == "yours":
        return request.config.getoption("copies").resolve() / stage
    if request.param == "unchanged":
        return ROOT / stage
    patch = SOLUTIONS / stage / f"{request.path.stem.removeprefix('test_')}.patch"
    root = tmp_path_factory.mktemp("solution")
    shutil.copytree(ROOT / stage, root / stage, ignore=shutil.ignore_patterns("__pycache__"))
    applied = git_apply(patch, root)
    assert applied.returncode == 0, f"{patch.relative_to(ROOT)} no longer applies to {stage}:\n{applied.stderr}"
    return root / stage


def git_apply(patch, folder):
    """Apply `patch` to the files of `folder`, as `git apply` does in a clone: exactly,
    or not at all. `folder` is no repository, and git must not look for one above it."""
    return subprocess.run(["git", "apply", patch], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(folder).parent)})


@pytest.fixture(scope="module")
def stage_folder(stage_dir):
    return stage_dir


@pytest.fixture(scope="module")
def stage_app(stage, stage_dir):
    """The app.py of the folder the checks run on, imported."""
    return load_stage(stage) if stage_dir == ROOT / stage else load_stage(stage, stage_dir)
