"""coursekit's own contracts that the rest of the suite relies on: load_stage()
imports a stage of several modules side by side with another; a process that
exits stops only the programs it started."""

import os
import subprocess
import sys

import pytest

from coursekit.stages import StageCode, load_stage, stage_module

RUNS_ON = []  # about the toolkit: copies of a made-up stage


def a_stage(folder, value):
    """A stage of two modules, app.py importing its sibling `uploads` by name, as a
    script's siblings do."""
    folder.mkdir()
    (folder / "uploads.py").write_text(f"VALUE = {value!r}\n\ndef store():\n    return VALUE\n")
    (folder / "app.py").write_text("import uploads\nfrom uploads import VALUE, store\n")
    return folder


def test_two_stages_with_a_module_of_the_same_name_each_keep_their_own(tmp_path, monkeypatch):
    mine = type(sys)("uploads")  # a module of the caller's own, by the same name
    monkeypatch.setitem(sys.modules, "uploads", mine)
    first = load_stage("part9_made_up", a_stage(tmp_path / "first", "first"))
    second = load_stage("part9_made_up", a_stage(tmp_path / "second", "second"))
    assert (first.VALUE, second.VALUE) == ("first", "second")
    assert first.uploads is stage_module("part9_made_up", "uploads", tmp_path / "first")
    assert first.uploads.__name__ == first.__name__.removesuffix(".app") + ".uploads"
    assert sys.modules["uploads"] is mine  # the caller's, untouched, and never the stages'
    assert "app" not in sys.modules
    assert str(tmp_path / "first") not in sys.path


def test_a_stage_is_imported_once_however_it_is_asked_for(tmp_path):
    folder = a_stage(tmp_path / "once", "once")
    module = stage_module("part9_made_up", "uploads", folder)  # first, as bench/harness.py may ask
    app = load_stage("part9_made_up", folder)
    assert app is load_stage("part9_made_up", folder=folder)
    assert app.uploads is module  # what the app uses is what a caller changes


def test_a_stages_code_is_found_in_the_module_that_defines_it(tmp_path):
    app = load_stage("part9_made_up", a_stage(tmp_path / "stage", "mine"))
    code = StageCode(app)
    assert code.module_of("store") is app.uploads  # not app.py, which imports it
    assert code.store() == "mine"
    assert code.module_of("VALUE") is app  # a value: the first module's, app.py's
    with pytest.raises(AttributeError, match="no module of part9_made_up_\\w+ defines missing"):
        code.missing


def test_a_process_that_exits_leaves_the_programs_of_others_running():
    # A process that has loaded coursekit exits. Another program's mirakuru_uuid holds
    # its id (mirakuru 3.1.0 alone would SIGKILL that program as the process exits).
    exiting = subprocess.Popen([sys.executable, "-c", "import coursekit.processes; print(flush=True); input()"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    exiting.stdout.readline()  # coursekit is loaded
    other = subprocess.Popen(["sleep", "30"], env={**os.environ, "mirakuru_uuid": f"1:{exiting.pid}-0"})
    try:
        exiting.communicate("\n", timeout=30)
        assert other.poll() is None, "another's program was killed"
    finally:
        other.kill()
        other.wait()
