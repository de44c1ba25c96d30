"""The README's run command: `python3 course.py run [STAGE]`.

It starts the embedded database when no MongoDB answers, keeps its data across
restarts, uses a MongoDB that answers, and Ctrl+C leaves no process behind."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import course
from coursekit.clients import Client
from coursekit.database import redact
from coursekit.images import image_bytes, lesson_photo
from coursekit.processes import Program, free_port, port_open, unmeasured
from coursekit.stages import ROOT, STAGES, lesson_programs

RUNS_ON = STAGES  # every stage


class RunCommand(Program):
    """`python3 course.py run STAGE` in a process group of its own, as in a terminal,
    its output in a log of the test's folder: start() returns once it serves (or says
    what it printed), run_to_end() is for a run that must fail. It is stopped by
    ctrl_c(), not by stop(): after its signal, stop() also ends what the command left
    running, which is what these tests look for."""

    def __init__(self, stage, mongodb_uri, tmp_path, db_name):
        port = free_port()
        env = {"PORT": str(port), "MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name,
               "COURSE_DATA": str(tmp_path / "data")}
        super().__init__([sys.executable, ROOT / "course.py", "run", stage], port, env, timeout=60,
                         log=open(tmp_path / f"run-{time.monotonic_ns()}.log", "w+"))
        self.client = Client(self.url)
        self.children = []

    def ctrl_c(self):
        """SIGINT to the whole process group, as the terminal sends it."""
        self.children = children(self.process.pid)
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=30)

    def processes_left(self):
        """The processes of this run still alive: course.py and its children."""
        return [pid for pid in [*([self.process.pid] if self.process else []), *self.children] if alive(pid)]


def children(pid):
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def run_command(tmp_path, db_name):
    started = []

    def start(stage, mongodb_uri):
        started.append(RunCommand(stage, mongodb_uri, tmp_path, db_name))
        return started[-1]

    yield start
    for run in started:
        for pid in run.processes_left():
            os.kill(pid, signal.SIGKILL)
        run.kill()  # reaps it, and ends what else mirakuru finds of it
        run.log.close()


@pytest.mark.takes(8)
async def test_run_starts_the_embedded_db_keeps_uploads_and_ctrl_c_stops_all(run_command, stage):
    uri = f"mongodb://localhost:{free_port()}"  # nothing answers there yet
    first = run_command(stage, uri)
    first.start()
    assert len(children(first.process.pid)) == 2  # the app and the database
    assert "starting the embedded database" in first.output()
    assert (await first.client.upload(image_bytes(), "kept.png")).code == 302
    assert first.ctrl_c() == 128 + signal.SIGINT
    assert not first.processes_left(), "Ctrl+C left a process behind"
    assert not port_open("127.0.0.1", int(uri.rsplit(":", 1)[1]))

    second = run_command(stage, uri)
    second.start()
    assert [name for _, name in await second.client.listed()] == ["kept.png"]
    second.ctrl_c()
    assert not second.processes_left()
    assert "Traceback" not in first.output() + second.output()


async def test_run_uses_the_mongodb_that_answers(run_command, mongodb_uri):
    run = run_command(STAGES[0], mongodb_uri)
    run.start()
    assert (await run.client.fetch("/")).code == 200
    run.ctrl_c()
    assert "Using the MongoDB that answers" in run.output()
    assert "embedded" not in run.output()




# One small program of each lesson that has them, and those that fork: the lessons'
# tests run them all, without course.py.
SMALL_PROGRAMS = [path.relative_to(ROOT).as_posix() for stage in STAGES for path in lesson_programs(stage)]
FORKING = [program for program in SMALL_PROGRAMS if "fork" in (ROOT / program).read_text()]


@pytest.mark.parametrize("program", sorted({*{Path(program).parts[0]: program for program in SMALL_PROGRAMS}.values(),
                                            *FORKING}))
async def test_run_serves_a_lessons_small_program_and_ctrl_c_stops_it_quietly(run_command, mongodb_uri, program):
    run = run_command(program, mongodb_uri)
    run.start()
    assert (await run.client.fetch("/")).code < 500
    assert run.ctrl_c() == 128 + signal.SIGINT
    assert not run.processes_left(), "Ctrl+C left a process behind"
    assert not port_open("127.0.0.1", run.port), "a process it forked still serves"
    assert "Traceback" not in run.output()
def test_run_explains_when_a_remote_mongodb_does_not_answer(run_command):
    # Two hosts: not a single local server, so the embedded database is not started.
    uri = f"mongodb://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    status, output = run_command(STAGES[0], uri).run_to_end(timeout=30)
    assert status == 1
    assert output.strip() == (
        f"error: no MongoDB answers at {uri}. The embedded database only starts for a "
        "mongodb:// URI on localhost; check the URI, the network and the credentials."
    )


def test_run_explains_when_the_database_port_is_taken(run_command):
    with socket.create_server(("127.0.0.1", 0)) as squatter:  # listens, but is no MongoDB
        port = squatter.getsockname()[1]
        status, output = run_command(STAGES[0], f"mongodb://localhost:{port}").run_to_end(timeout=60)
        assert status == 1
    assert f"error: the embedded database did not start on 127.0.0.1:{port} (is the port taken?)" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("mongodb://localhost:27017", "mongodb://localhost:27017"),
        ("mongodb://ann:s3cret@db.example.com/?tls=true", "mongodb://***@db.example.com/?tls=true"),
        ("mongodb+srv://ann:p%40ss@cluster0.example.net/", "mongodb+srv://***@cluster0.example.net/"),
    ],
)
def test_uris_are_shown_without_credentials(uri, shown):
    assert redact(uri) == shown


def test_an_old_python_is_told_what_to_do(monkeypatch):
    monkeypatch.setattr(course, "MIN_PYTHON", (99, 0))
    monkeypatch.setattr(course.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match=r"needs Python 99\.0 or newer .* and this is 3\."):
        course.ensure_python()


@pytest.mark.parametrize(
    "argv, parsed",
    [
        (["run"], ("run", STAGES[0], [])),
        (["run", STAGES[-1], "--port=8001"], ("run", STAGES[-1], ["--port=8001"])),
        (["run", STAGES[-1], "--help"], ("run", STAGES[-1], ["--help"])),  # the app's help, not ours
        (["test"], ("test", None, [])),
        (["test", "-k", "part1", "-x"], ("test", None, ["-k", "part1", "-x"])),
        (["test", "--help"], ("test", None, ["--help"])),  # pytest's
        (["test", STAGES[-1]], ("test", STAGES[-1], [])),  # that stage's tests only
        (["test", STAGES[-1], "-x"], ("test", STAGES[-1], ["-x"])),
        (["check", "part2_thumbnails"], ("check", "part2_thumbnails", [])),
        (["check", "part2_thumbnails", "1", "4"], ("check", "part2_thumbnails", ["1", "4"])),  # exercises
    ],
)
def test_arguments_after_the_stage_or_test_go_to_the_app_or_pytest(argv, parsed):
    assert course.parse(argv) == parsed


def run_to_its_end(*args, tmp_path):
    """`python3 course.py ARGS`, with nothing answering at MONGODB_URI: (status, output)."""
    env = {**os.environ, "MONGODB_URI": f"mongodb://localhost:{free_port()}", "COURSE_DATA": str(tmp_path)}
    result = subprocess.run([sys.executable, ROOT / "course.py", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_run_stage_help_is_the_stages_and_starts_nothing(tmp_path):
    status, output = run_to_its_end("run", "part2_thumbnails", "--help", tmp_path=tmp_path)
    assert status == 0
    assert "Usage: part2_thumbnails/app.py [OPTIONS]" in output
    assert "--db-name" in output and "--cookie-secret" in output
    assert "embedded database" not in output


@pytest.mark.parametrize("args, message", [
    (["run", "part2_thumbnails", "--port=eighty"], "error: invalid literal for int() with base 10: 'eighty'"),
    (["run", "part2_thumbnails", "--config", "part2.conf"], "error: Option 'config' requires a value"),
    (["run", "part2_thumbnails", "--config=/no/such.conf"],
     "error: [Errno 2] No such file or directory: '/no/such.conf'"),
    (["run", "part1_basic", "--port=8001"], "error: part1_basic takes no options: it reads PORT, MONGODB_URI "
                                            "and MONGODB_DB from the environment (given: --port=8001)"),
    (["run", "part1_basic/small/newest.py", "--port=8001"],
     "error: part1_basic/small/newest.py takes no options: it reads PORT, MONGODB_URI and MONGODB_DB from the "
     "environment (given: --port=8001)"),
    (["run", "part1_basic/small/no_such.py"], "course.py run: error: argument stage: no stage or small program "
                                             "'part1_basic/small/no_such.py' (stages: " + ", ".join(STAGES) +
                                             "; a small program: STAGE/small/NAME.py)"),
])
def test_an_option_error_is_told_before_anything_starts(tmp_path, args, message):
    status, output = run_to_its_end(*args, tmp_path=tmp_path)
    assert status in (1, 2)  # 2: argparse's own
    assert output.strip().splitlines()[-1] == message
    assert "embedded database" not in output and "Traceback" not in output


def test_without_chromium_the_browser_tests_are_skipped_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no chromium on it
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))  # no browser downloaded before
    monkeypatch.setenv("PLAYWRIGHT_DOWNLOAD_HOST", f"http://127.0.0.1:{free_port()}")  # and none to be had
    assert course.browser_tests_can_run() is False
    output = capsys.readouterr().out
    assert output.splitlines()[-1].startswith("Skipping the browser tests: no Chromium here")
    assert "Error" not in output and "Traceback" not in output


# --- `python3 course.py check STAGE [N...]`: the exercises' checks on the learner's copy ---


@pytest.fixture
def repository(tmp_path):
    """A copy of the repository, its virtual environment shared, where part 1's
    exercise 3 is solved (its solution applied) and the others are not."""
    # The copy's course.py would install what is not installed yet into the shared
    # environment, coursekit from the copy among it, which is deleted after the test.
    stale = course.stale(course.REQUIREMENTS["check"])
    assert not stale, f"{stale} changed since .venv was set up: run the tests with python3 course.py test"
    copy = tmp_path / "repository"
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache")
    copy.mkdir()
    for name in ["course.py", "pyproject.toml", "requirements.txt", "requirements-db.txt", "requirements-dev.txt"]:
        shutil.copy(ROOT / name, copy / name)
    for name in ["coursekit", "tests", "solutions", *STAGES]:
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    solution = ROOT / "solutions" / "part1_basic" / "1_delete_an_image.patch"
    subprocess.run(["git", "apply", solution], cwd=copy, check=True,
                   env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    return copy


def check(repository, *args):
    # It checks a copy of the stage, which the suite's coverage does not measure.
    result = subprocess.run([sys.executable, repository / "course.py", "check", *args], capture_output=True, text=True,
                            env=unmeasured(os.environ),
                            timeout=300)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.takes(12)
def test_check_says_which_exercises_pass_and_why_the_others_fail(repository):
    status, output = check(repository, "part1_basic", "1", "2")
    lines = output.splitlines()
    assert status == 1
    assert lines[0] == "part1_basic, exercise 1 (delete an image): PASS"
    assert lines[1] == "part1_basic, exercise 2 (search by name): FAIL"
    assert lines[2].startswith("  - the home page should have a search form")  # the check's own words
    assert "assert " not in output and "Traceback" not in output  # not pytest's
    assert check(repository, "part1_basic", "1") == (0, "part1_basic, exercise 1 (delete an image): PASS\n")


@pytest.mark.takes(6)
def test_check_shows_where_app_py_does_not_load(repository):
    app = repository / "part1_basic" / "app.py"
    app.write_text(app.read_text() + "def broken(:\n")
    status, output = check(repository, "part1_basic", "1")
    assert status == 1
    assert output.splitlines()[:2] == ["part1_basic, exercise 1 (delete an image): FAIL",
                                       f'  - File "{app}", line {app.read_text().count(chr(10))}']
    assert output.splitlines()[-1] == "    SyntaxError: invalid syntax"


def test_check_names_the_exercises_there_are(tmp_path):
    status, output = run_to_its_end("check", "part1_basic", "9", tmp_path=tmp_path)
    assert status == 1
    assert output.strip() == "error: part1_basic has no exercise 9; its exercises are 1, 2, 3, 4"


def test_the_tests_of_one_stage_are_those_that_run_on_it():
    def collected(*args):
        modules = ["tests/test_faults.py", "tests/test_bench.py", "tests/exercises/part1_basic",
                   "tests/exercises/part2_thumbnails"]
        result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                 *args, *modules], cwd=ROOT, capture_output=True, text=True, env=unmeasured(os.environ))
        return [line for line in result.stdout.splitlines() if "::" in line]

    everything, part1 = collected(), collected("--stage", "part1_basic")
    assert part1 and part1 == [test for test in everything if "part1_basic" in test]
    assert len(part1) < len(everything)


def test_the_closing_line_counts_an_expected_failure_as_passed_and_a_skip_as_skipped(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text("""<testsuites><testsuite tests="5" failures="1" errors="1" skipped="2">
        <testcase name="passes"/>
        <testcase name="fails"><failure message="no"/></testcase>
        <testcase name="breaks"><error message="no"/></testcase>
        <testcase name="skipped"><skipped type="pytest.skip" message="no nginx"/></testcase>
        <testcase name="fails as it must"><skipped type="pytest.xfail" message="unchanged stage"/></testcase>
    </testsuite></testsuites>""")
    assert course.summary([report]) == ("tests: 2 passed, 2 failed, 1 skipped", 1)


# --- A stage changed in place (an exercise done there): the suite says why it fails ---


@pytest.fixture
def clone(tmp_path):
    """A git clone of the repository, with the course's commands and tests as they are
    here (committed or not) and its virtual environment shared: its stages are the
    committed ones, as a learner's fresh clone has them."""
    stale = course.stale(course.REQUIREMENTS["test"])
    assert not stale, f"{stale} changed since .venv was set up: run the tests with python3 course.py test"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    shutil.copy(ROOT / "course.py", clone / "course.py")
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache")
    for name in ["coursekit", "tests"]:
        shutil.rmtree(clone / name)
        shutil.copytree(ROOT / name, clone / name, ignore=ignore)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    return clone


def git(clone, *args):
    subprocess.run(["git", "-c", "user.name=Learner", "-c", "user.email=learner@example.com", *args],
                   cwd=clone, check=True, capture_output=True)


def test_the_stages_you_changed_are_found_committed_or_not_and_the_way_back_works(clone):
    assert course.changed_stages(clone) == {}
    with open(clone / "part2_thumbnails" / "app.py", "a") as app:
        app.write("# my exercise\n")
    (clone / "part1_basic" / "mine.py").write_text("print('mine')\n")
    changed = {"part1_basic": ["part1_basic/mine.py"], "part2_thumbnails": ["part2_thumbnails/app.py"]}
    assert course.changed_stages(clone) == changed
    # The note's way back: commit the work on a branch, and go back to the course's.
    git(clone, "switch", "-q", "-c", "exercises")
    git(clone, "add", "part1_basic/", "part2_thumbnails/")
    git(clone, "commit", "-q", "-m", "exercises")
    assert course.changed_stages(clone) == changed, "committed, the stages still differ from the course's"
    git(clone, "switch", "-q", "-")
    assert course.changed_stages(clone) == {}


@pytest.mark.takes(30)
def test_the_suite_failing_on_a_changed_stage_says_why_and_how_to_get_back(clone):
    app = clone / "part1_basic" / "app.py"
    app.write_text(app.read_text() + "def broken(:\n")  # an exercise gone wrong
    test = subprocess.run([sys.executable, clone / "course.py", "test", "part1_basic", "-n", "0",
                           "tests/test_stages.py", "-k", "test_home_page_shows_the_form_and_no_uploads"],
                          cwd=clone, capture_output=True, text=True, env=unmeasured(os.environ), timeout=300)
    assert test.returncode == 1
    note = test.stdout.strip().splitlines()[-1]
    assert note.startswith("Note: you changed 1 file in part1_basic/ (`git status part1_basic/` lists them")
    assert "`git checkout -- part1_basic/`" in note

    # Back to the course's code, as the note says: the same test passes, and there is no
    # note (the run fails all the same: so few tests cover less of the code than the bar).
    git(clone, "checkout", "--", "part1_basic/")
    test = subprocess.run(test.args, cwd=clone, capture_output=True, text=True, env=unmeasured(os.environ),
                          timeout=300)
    assert "Coverage failure" in test.stdout
    assert test.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed, 0 skipped"), test.stdout


@pytest.mark.takes(10)
def test_check_checks_a_copy_kept_outside_the_repository(tmp_path):
    copy = tmp_path / "course-work" / "part1_basic"
    shutil.copytree(ROOT / "part1_basic", copy, ignore=shutil.ignore_patterns("__pycache__"))
    solution = next((ROOT / "solutions" / "part1_basic").glob("*_delete_an_image.patch"))
    number = solution.name.split("_")[0]
    subprocess.run(["git", "apply", solution], cwd=copy.parent, check=True,
                   env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert check(ROOT, str(copy), number) == (0, f"part1_basic, exercise {number} (delete an image): PASS\n")
    status, output = check(ROOT, "part1_basic", number)  # the course's stage, where the exercise is not done
    assert status == 1
    assert output.splitlines()[0] == f"part1_basic, exercise {number} (delete an image): FAIL"
    if course.changed_stages() == {}:  # in a clone of the course as it is, the check says so
        assert output.splitlines()[-1].startswith("Note: part1_basic/ is as the course ships it")


# --- `python3 course.py samples [FOLDER]`: the files the lessons upload ---


def test_samples_writes_the_lessons_photo_and_a_sparse_gibibyte(tmp_path):
    status, output = run_to_its_end("samples", str(tmp_path / "samples"), tmp_path=tmp_path)
    assert status == 0, output
    photo, big = tmp_path / "samples" / "photo.png", tmp_path / "samples" / "big.bin"
    assert photo.read_bytes() == lesson_photo()
    assert big.stat().st_size == 2**30
    assert output.startswith(f"Wrote {photo} (a 300x200 PNG, {photo.stat().st_size} bytes) and {big} (1 GiB")


def test_coverage_measures_every_stage():
    """A stage left out of pyproject.toml's coverage sources would be reported as nothing."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert settings["tool"]["coverage"]["run"]["source"] == STAGES
