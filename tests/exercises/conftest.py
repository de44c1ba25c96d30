"""The exercises' checks, and the stage each one runs on.

tests/exercises/<stage>/test_<n>_<name>.py checks exercise n of the stage's lesson
through what a visitor sees (HTTP) and what the database holds. Run on:

- your working copy of the stage, `<stage>/`, with `--yours`: that is what
  `python3 course.py check <stage> [n]` does;
- otherwise (the suite), on a copy of the stage in a temporary folder with the
  reference solution, solutions/<stage>/<n>_<name>.patch, applied by `git apply`:
  it must pass; and on the stage as it is: it must fail, on an assertion (the
  message a learner reads), since an exercise that passes untouched is no exercise.
"""

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import ROOT, Client, load_stage, served

SOLUTIONS = ROOT / "solutions"
UNCHANGED = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="the stage as it is must fail the exercise's check (if you solved it in your copy, that is why)")


def pytest_generate_tests(metafunc):
    if "stage_dir" in metafunc.fixturenames:
        modes = ["yours"] if metafunc.config.getoption("yours") else ["solution", pytest.param("unchanged", marks=UNCHANGED)]
        metafunc.parametrize("stage_dir", modes, indirect=True, scope="module")


@pytest.fixture(scope="module")
def stage_dir(request, tmp_path_factory):
    """The folder of the stage the checks run on: the stage itself, or a copy of it with
    the exercise's solution applied."""
    stage = request.path.parent.name
    if request.param != "solution":
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
def stage_app(stage_dir):
    """The stage's app.py, imported."""
    name = stage_dir.name
    return load_stage(name) if stage_dir == ROOT / name else load_stage(name, stage_dir)


@pytest.fixture
async def serve(stage_app, db):
    """serve(**settings): a Client of the stage's make_app(db, **settings), served on a
    free port, that has seen the home page (and has its XSRF cookie, as a browser would)."""
    async with contextlib.AsyncExitStack() as servers:
        async def start(**settings):
            client = Client(await servers.enter_async_context(served(stage_app.make_app(db, **settings))), db)
            await client.fetch("/")
            return client

        yield start


@pytest.fixture
async def client(serve):
    """A Client of the stage's make_app(db)."""
    return await serve()
