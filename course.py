#!/usr/bin/env python3
"""Set up the course, serve a stage, run the tests, check the exercises, make the sample files.

    python3 course.py run [STAGE [APP OPTIONS...]]   # serves part1_basic by default
    python3 course.py run STAGE/small/NAME.py        # serves a lesson's smallest version
    python3 course.py test [STAGE] [PYTEST OPTIONS...]  # the whole suite (or one stage's tests)
    python3 course.py check STAGE [N...]             # checks your solutions to its exercises
    python3 course.py check FOLDER/STAGE [N...]      # ... in your copy of the stage, out of the repository
    python3 course.py samples [FOLDER]               # writes photo.png and big.bin (1 GiB), in samples/

Each command creates `.venv/` and installs the pinned requirements the first time
(and again whenever a requirements file changes): requirements-db.txt for `run`,
requirements-dev.txt for the others, each with coursekit/, the toolkit of the
tests, benchmarks and notebooks (pyproject.toml says how). When no MongoDB answers
at MONGODB_URI (default mongodb://localhost:27017), `run` starts the embedded
database, SecantusDB, on that address and keeps its data in `.data/` (or in
COURSE_DATA), so uploads survive a restart. Ctrl+C stops the app and the
database together.

Until the virtual environment exists only the standard library is used; then
the script runs itself again with the environment's Python.
"""

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
DATA = Path(os.environ.get("COURSE_DATA", ROOT / ".data"))
STAGES = sorted(path.parent.name for path in ROOT.glob("part*/app.py"))
DEFAULT_URI = "mongodb://localhost:27017"
MIN_PYTHON = (3, 11)  # Tornado 6.6, PyMongo 4.20 and Pillow 13 need it
STOP_GRACE = 40  # seconds a stage may take to stop before it is killed
# What each command installs. A requirements file names the ones it builds on (-r).
REQUIREMENTS = {"run": "requirements-db.txt", "test": "requirements-dev.txt", "check": "requirements-dev.txt",
                "samples": "requirements-db.txt"}


# --- Setting up: the right Python, the virtual environment, the pinned packages ---


def ensure_python():
    """Re-run with a Python new enough for the pinned libraries, or explain."""
    if sys.version_info >= MIN_PYTHON:
        return
    for name in ("python3.14", "python3.13", "python3.12", "python3.11"):
        if found := shutil.which(name):
            os.execv(found, [found, __file__, *sys.argv[1:]])
    wanted = ".".join(map(str, MIN_PYTHON))
    sys.exit(
        f"error: this course needs Python {wanted} or newer (Tornado 6.6, PyMongo 4.20 and "
        f"Pillow 13 do), and this is {sys.version.split()[0]}. Install a newer Python "
        "(python.org, Homebrew, your package manager or pyenv) and run this command with it."
    )


def ensure_venv(requirements):
    """Create .venv and install `requirements` into it, and coursekit, unless done."""
    if not VENV_PYTHON.exists():
        print("Creating the virtual environment in .venv/ ...", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except subprocess.CalledProcessError:
            shutil.rmtree(VENV, ignore_errors=True)
            sys.exit(
                "error: Python could not create a virtual environment. On Debian or Ubuntu, "
                "install it with: sudo apt install python3-venv"
            )
    if not stale(requirements):
        return
    print(f"Installing the pinned packages from {requirements} ...", flush=True)
    pip = [VENV_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # The project itself, editable: `import coursekit` finds coursekit/ from anywhere.
    if subprocess.run([*pip, "-r", ROOT / requirements]).returncode or \
            subprocess.run([*pip, "--no-deps", "--editable", ROOT]).returncode:
        sys.exit(f"error: pip could not install {requirements} (its message is above); "
                 "check the network, then run the same command again.")
    for name in included(requirements):
        stamp(name).write_text(pins(name))


def stale(requirements):
    """Which of `requirements` and the files it includes changed since .venv installed
    them (or were never installed): a stamp per file, the digest of what it installs."""
    return [name for name in included(requirements)
            if not stamp(name).exists() or stamp(name).read_text() != pins(name)]


def stamp(requirements):
    return VENV / f"installed-{requirements}"


def pins(requirements):
    """The digest of what `requirements` installs: its pins, those it includes, and the project."""
    return digest_of(*included(requirements), "pyproject.toml")


def included(requirements):
    """`requirements` and the files it includes with -r, the included first."""
    names = re.findall(r"^-r\s+(\S+)", (ROOT / requirements).read_text(), re.M)
    return [name for included_name in names for name in included(included_name)] + [requirements]


def digest_of(*names):
    return hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in names)).hexdigest()


def in_venv():
    return Path(sys.prefix).resolve() == VENV.resolve()


# --- The database: use the one at MONGODB_URI, or start the embedded one ---


@contextlib.contextmanager
def database(uri):
    """Yield a MongoDB URI that answers: `uri`, or the embedded database started there."""
    from coursekit.database import embedded_db, local_address, mongodb_answers, redact

    if mongodb_answers(uri):
        print(f"Using the MongoDB that answers at {redact(uri)}", flush=True)
        yield uri
        return
    address = local_address(uri)
    if address is None:
        sys.exit(
            f"error: no MongoDB answers at {redact(uri)}. The embedded database only starts "
            "for a mongodb:// URI on localhost; check the URI, the network and the credentials."
        )
    host, port = address
    print(f"No MongoDB answers at {redact(uri)}: starting the embedded database "
          f"(SecantusDB) on {host}:{port}, data in {DATA / 'secantus'}", flush=True)
    with embedded_db(port, DATA / "secantus", host) as embedded_uri:
        # Keep the user's URI (it may name a database or options) when it reaches us.
        yield uri if mongodb_answers(uri) else embedded_uri


# --- The commands: run, test, check ---


def check_app_args(stage, app_args):
    """Read the stage's options as the stage will, before anything starts: --help, or
    a mistake, is answered at once, not after the database has started."""
    from coursekit.stages import load_stage

    # Part 1, and the lessons' small programs, read environment variables only.
    options = None if small_program(stage) else getattr(load_stage(stage), "options", None)
    if options is None:
        if app_args:
            sys.exit(f"error: {stage} takes no options: it reads PORT, MONGODB_URI and MONGODB_DB "
                     f"from the environment (given: {' '.join(app_args)})")
        return
    sys.argv[0] = f"{stage}/app.py"  # the program --help names
    try:
        options.parse_command_line([sys.argv[0], *app_args], final=False)
    except Exception as error:  # a bad value, an unknown option, a --config file that fails (it is Python)
        sys.exit(f"error: {error}")


def small_program(word):
    """A lesson's smallest version, `STAGE/small/NAME.py`, as a path; None if `word`
    names none."""
    stage, _, rest = word.partition("/small/")
    path = ROOT / stage / "small" / rest
    if stage in STAGES and re.fullmatch(r"[\w-]+\.py", rest) and path.is_file():
        return path
    return None


def stage_or_program(word):
    """argparse's check of what `run` serves: a stage, or a lesson's small program."""
    if word in STAGES or small_program(word):
        return word
    raise argparse.ArgumentTypeError(
        f"no stage or small program {word!r} (stages: {', '.join(STAGES)}; a small program: STAGE/small/NAME.py)")


def serve(stage, app_args):
    """Serve a stage (or a lesson's small program) on the database, until Ctrl+C."""
    check_app_args(stage, app_args)
    program = small_program(stage)
    uri = os.environ.get("MONGODB_URI", DEFAULT_URI)
    with database(uri) as answering_uri:
        app = subprocess.Popen(
            [sys.executable, program or ROOT / stage / "app.py", *app_args],
            env={**os.environ, "MONGODB_URI": answering_uri},
            process_group=0,
        )
        try:
            return app.wait()
        finally:
            # The app has a process group of its own, so Ctrl+C in the terminal reaches
            # this script alone, which stops the app, then the database. Part 4 lets
            # requests under way finish first (--shutdown_timeout, 25 s by default,
            # then up to --db_timeout to delete what it cut): wait for that.
            if program:  # no handler of its own: SIGTERM ends it quietly, and any process it forked
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(app.pid, signal.SIGTERM)
            elif app.poll() is None:
                app.send_signal(signal.SIGINT)
            try:
                app.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()


def browser_tests_can_run():
    """Whether there is a Chromium for the browser tests: the system's, or Playwright's,
    downloaded now if need be. If not, say so in one line."""
    from coursekit.browser import find_chromium

    if find_chromium():
        return True
    print("No Chromium found for the browser tests: downloading Playwright's ...", flush=True)
    download = subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"],
                              capture_output=True, text=True)
    if download.returncode == 0:
        return True
    print("Skipping the browser tests: no Chromium here, and Playwright's could not be downloaded. "
          "Install one (on Debian: sudo apt install chromium) or set CHROMIUM to one.", flush=True)
    return False


# How many pytest-xdist workers run the suite side by side: two a core, since many
# tests spend most of their time waiting (for a timeout, a program, the database);
# each worker has a database server of its own. At most 8.
WORKERS = min(8, 2 * (os.cpu_count() or 1))
SUITE_MINUTES = 4  # about how long the whole suite takes on a 2-core machine (CI's), as measured


def test(stage, pytest_args):
    """Run the test suite (all of it, or what concerns `stage`) with coverage, the
    browser tests beside it; say what runs, for how long, and how it went. Return
    the exit status."""
    started = time.monotonic()
    changed = changed_stages()  # before anything runs: a test may leave files behind
    browser_tests = browser_tests_can_run()
    coverage = [sys.executable, "-m", "coverage"]
    results = DATA / "test-results"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    subprocess.run([*coverage, "erase"], cwd=ROOT, check=True)
    only = [f"--stage={stage}"] if stage else []  # one word: pytest would take a second for a folder
    # A test at a time to each worker as it is free (--maxschedchunk 1), not a batch
    # each up front, which leaves workers idle at the end while one works through its own.
    told = {"-n", "--numprocesses", "no:xdist"} & set(pytest_args)  # you said how many, or none
    workers = [] if told else ["-n", str(WORKERS), "--maxschedchunk=1"]
    pytest = [*coverage, "run", "-m", "pytest", *only]
    which = f"the tests that concern {stage} (its modules' RUNS_ON)" if stage else "the whole suite"
    print(f"Running {which}: the suite on {WORKERS} workers side by side"
          + (", and the browser tests (headless Chromium) beside it, in a process of their own"
             if browser_tests else "")
          + f". All of it takes about {SUITE_MINUTES} minutes on a 2-core machine.", flush=True)
    browser_log = results / "browser.log"
    with browser_log.open("w") as log:
        browser = browser_tests and subprocess.Popen(  # Playwright drives its own event loop: a process of its own
            [*pytest, "-q", f"--junit-xml={results / 'browser.xml'}", "tests/browser"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        statuses = [subprocess.run([*pytest, *workers, f"--junit-xml={results / 'suite.xml'}", *pytest_args],
                                   cwd=ROOT).returncode]
        print(f"The suite took {took(started)}." if (results / "suite.xml").exists() else
              "The suite did not run: pytest's message is above.", flush=True)
        if browser:
            statuses.append(browser.wait())
    if browser:
        print(f"The browser tests{' failed' if statuses[-1] else ''} ({took(started)} since the start):", flush=True)
        print(browser_log.read_text() if statuses[-1] else browser_log.read_text().strip().splitlines()[-1])
    subprocess.run([*coverage, "combine", "-q"], cwd=ROOT, check=True)
    print("Coverage of the stages' code by these tests (the bar: 95%):", flush=True)
    statuses.append(subprocess.run([*coverage, "report", *([f"--include={stage}/*"] if stage else [])],
                                   cwd=ROOT).returncode)
    closing_line, expected_failures = summary(results.glob("*.xml"))
    if stage:
        ran = sum(int(number) for number in re.findall(r"(\d+) \w+", closing_line))
        print(f"These were the {ran} tests that concern {stage}; python3 course.py test runs them all.")
    if expected_failures:
        print(f"The {expected_failures} xfailed are the exercises' checks failing on the stages as shipped, "
              "as they must until you solve them (tests/exercises/README.md): counted as passed below.")
    print(f"In all: {took(started)}.")
    print(closing_line)
    if any(statuses) and changed:
        print(changed_stages_note(changed))
    return 1 if any(statuses) else 0


def changed_stages(root=ROOT):
    """{stage: [its files that differ from the course's]}, as git sees them: changed,
    added or deleted and not committed, or committed since the course's own history
    (the branch's upstream, or origin's HEAD). None outside a git clone."""
    def git(*args):
        try:
            result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        except OSError:  # no git
            return []
        return result.stdout.splitlines() if result.returncode == 0 else []

    if not git("rev-parse", "--is-inside-work-tree"):
        return None

    stages = [f"{stage}/" for stage in STAGES]
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in git("status", "--porcelain", "--", *stages)]
    for upstream in ("@{upstream}", "origin/HEAD"):
        if git("rev-parse", "--verify", "-q", upstream):
            paths += git("diff", "--name-only", f"{upstream}...HEAD", "--", *stages)
            break
    prefix = "".join(git("rev-parse", "--show-prefix"))  # git names files from the top of its clone
    changed = {}
    for path in paths:
        path = path.removeprefix(prefix)
        changed.setdefault(path.split("/")[0], set()).add(path)
    return {stage: sorted(files) for stage, files in sorted(changed.items())}


def changed_stages_note(changed):
    """One paragraph for a learner whose stages differ from the course's: why the
    suite may fail, and how to get back."""
    names = " and ".join(f"{len(files)} file{'s' * (len(files) > 1)} in {stage}/" for stage, files in changed.items())
    folders = " ".join(f"{stage}/" for stage in changed)
    return (f"Note: you changed {names} (`git status {folders}` lists them, `git diff` shows how), "
            "and the suite tests the course's code as shipped: a stage changed in place, by an exercise "
            "say, fails tests written for it. To get the course's code back, commit your work on a branch "
            f"(`git switch -c exercises`, `git add {folders}`, `git commit -m exercises`, then `git switch -`) "
            f"or drop it (`git checkout -- {folders}`, then `git clean -fd {folders}` for new files). Or work "
            "in a copy outside the repository: `python3 course.py check "
            f"~/course-work/{next(iter(changed))}` checks it.")


def took(started):
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def summary(junit_files):
    """(one closing line for all the pytest runs, how many expected failures it
    counts as passed), from their JUnit XML reports."""
    import xml.etree.ElementTree as ElementTree

    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    expected_failures = 0  # strict xfails: an exercise's check failing on the stage as it is, as it must
    for path in junit_files:
        root = ElementTree.parse(path).getroot()
        for suite in root.iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
        expected_failures += sum(skipped.get("type") == "pytest.xfail" for skipped in root.iter("skipped"))
    failed = counts["failures"] + counts["errors"]
    skipped = counts["skipped"] - expected_failures
    passed = counts["tests"] - failed - skipped
    return f"tests: {passed} passed, {failed} failed, {skipped} skipped", expected_failures


EXERCISES = ROOT / "tests" / "exercises"


def check(stage, numbers):
    """Run the checks of a stage's exercises (all, or those numbered) on your working
    copy of the stage (or on the copy of it that `stage` names, a folder outside the
    repository); say which pass and which fail, and why. Return the exit status."""
    folder = Path(stage).resolve()
    if stage in STAGES or folder == ROOT / folder.name:
        folder = ROOT / folder.name
    elif folder.is_relative_to(ROOT):
        sys.exit(f"error: keep your copy of {folder.name} outside the repository ({stage} is inside it): "
                 "the suite would take its lesson for one of the course's")
    stage = folder.name
    exercises = {path.stem.split("_")[1]: path for path in sorted((EXERCISES / stage).glob("test_*_*.py"))}
    if not exercises:
        sys.exit(f"error: {stage}'s exercises have no checks yet")
    if unknown := [number for number in numbers if number not in exercises]:
        sys.exit(f"error: {stage} has no exercise {unknown[0]}; its exercises are {', '.join(exercises)}")
    chosen = [exercises[number] for number in numbers] or list(exercises.values())
    with tempfile.TemporaryDirectory(prefix="course-check-") as scratch:
        report = Path(scratch) / "report.xml"
        pytest = subprocess.run([sys.executable, "-m", "pytest", "--yours", f"--copies={folder.parent}", "-q",
                                 f"--junit-xml={report}", *chosen], cwd=ROOT, capture_output=True, text=True)
        if pytest.returncode not in (0, 1) or not report.exists():  # pytest itself could not run them
            print(pytest.stdout + pytest.stderr)
            return pytest.returncode or 1
        failures = check_failures(report)
    for path in chosen:
        number, title = path.stem.split("_", 2)[1:]
        reasons = failures.get(path.stem, [])
        print(f"{stage}, exercise {number} ({title.replace('_', ' ')}): {'FAIL' if reasons else 'PASS'}")
        for reason in reasons:
            print("  - " + "\n    ".join(line.removeprefix("  ") for line in reason.splitlines()))
    changed = changed_stages() if failures and folder == ROOT / stage else None  # None: no note
    if changed is not None and stage not in changed:
        print(f"Note: {stage}/ is as the course ships it: these checks look at your changes in it. "
              f"Working in a copy? Name it: python3 course.py check ~/course-work/{stage}")
    return 1 if failures else 0


def check_failures(junit_file):
    """{test module's name: [why each of its tests failed]} from a JUnit XML report."""
    import xml.etree.ElementTree as ElementTree

    failures = {}
    for case in ElementTree.parse(junit_file).getroot().iter("testcase"):
        for problem in [*case.iter("failure"), *case.iter("error")]:
            message = problem.get("message") or "(no message)"
            if message.startswith("AssertionError: "):
                # The check's own words, for the learner, without pytest's "assert ..." after them.
                reason = message.removeprefix("AssertionError: ").split("\nassert ")[0]
            else:  # something crashed (app.py would not load, say): its last lines say where and what
                reason = "\n".join(re.sub(r'^failed on \w+ with "(.*)"$', r"\1", message, flags=re.S).splitlines()[-4:])
            reasons = failures.setdefault(case.get("classname").rsplit(".", 1)[-1], [])
            if reason not in reasons:  # app.py that does not load fails every test alike
                reasons.append(reason)
    return failures


# --- Sample files for the lessons: a photo to upload, and a big file to stream ---

BIG_FILE_SIZE = 1 << 30  # 1 GiB: far more than a server should hold in memory at once


def samples(folder):
    """Write photo.png (the 300x200 PNG the lessons' commands upload) and big.bin
    (1 GiB of zeros, written sparse: no time, and next to no disk where the file
    system allows it) into `folder`."""
    from coursekit.images import lesson_photo

    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    photo = folder / "photo.png"
    photo.write_bytes(lesson_photo())
    big = folder / "big.bin"
    with big.open("wb") as file:
        file.truncate(BIG_FILE_SIZE)  # a hole: the file system stores no zeros
    here = Path.cwd()
    photo, big = (path.relative_to(here) if path.is_relative_to(here) else path for path in (photo, big))
    print(f"Wrote {photo} (a 300x200 PNG, {photo.stat().st_size} bytes) and {big} (1 GiB of zeros; "
          f"{big.stat().st_blocks * 512 // 2**20} MiB of it on disk).")
    return 0


def parse(argv):
    """(command, stage, extra arguments for the app or for pytest).

    What follows the stage (or `test`) is the app's (or pytest's), --help included:
    argparse never sees it, or it would answer --help itself."""
    named_stage = argv[:1] in (["run"], ["check"], ["test"]) and argv[1:2] and (
        argv[1] in STAGES or (argv[0] == "run" and small_program(argv[1]))
        or (argv[0] == "check" and is_stage_or_copy(argv[1])))
    cut = 2 if named_stage else 1 if argv[:1] == ["test"] else len(argv)
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Anything after the stage (for run), or after test and its stage, goes to the app or to pytest; "
               "after check's stage come the numbers of the exercises to check.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="serve a stage (or STAGE/small/NAME.py) at http://localhost:$PORT")
    run_parser.add_argument("stage", nargs="?", default=STAGES[0], type=stage_or_program)
    test_parser = commands.add_parser("test", help="run the whole test suite, or the tests of one stage")
    test_parser.add_argument("stage", nargs="?", choices=STAGES)
    check_parser = commands.add_parser("check", help="check your solutions to a stage's exercises (all, or N...)")
    check_parser.add_argument("stage", type=stage_copy, metavar="STAGE",
                              help=f"one of {', '.join(STAGES)}, or a folder of that name: your copy of it")
    samples_parser = commands.add_parser("samples", help="write the files the lessons upload: photo.png, big.bin")
    samples_parser.add_argument("folder", nargs="?", default=ROOT / "samples",
                                help="where to write them (default: samples/, in the repository)")
    args, extra = parser.parse_known_args(argv[:cut])
    if args.command == "samples":
        return args.command, None, [args.folder, *extra]
    return args.command, getattr(args, "stage", None), extra + argv[cut:]


def is_stage_or_copy(name):
    """Whether `name` is a stage's, or a folder named after a stage: a copy of it, for check."""
    return name in STAGES or Path(name).name in STAGES and Path(name, "app.py").is_file()


def stage_copy(name):
    if is_stage_or_copy(name):
        return name
    raise argparse.ArgumentTypeError(f"{name!r} is no stage ({', '.join(STAGES)}), "
                                     "nor a copy of one (a folder of that name, holding app.py)")


def main(argv=None):
    command, stage, extra = parse(sys.argv[1:] if argv is None else argv)
    ensure_python()
    ensure_venv(REQUIREMENTS[command])
    if not in_venv():
        os.execv(VENV_PYTHON, [VENV_PYTHON, __file__, *sys.argv[1:]])
    # Ctrl+C raises KeyboardInterrupt even where SIGINT came in ignored (a background
    # job of a script), and SIGTERM (a process manager, CI) stops the children too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if command == "run":
            return serve(stage, extra)
        if command == "check":
            return check(stage, extra)
        if command == "samples":
            return samples(*extra)
        return test(stage, extra)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
