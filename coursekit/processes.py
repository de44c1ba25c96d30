"""Programs run as child processes: a stage as a learner runs it, a benchmark's
server, the embedded database, nginx.

Starting one and waiting until it listens, then stopping it (and whatever it
started) is mirakuru's TCPExecutor: a kept library, used by pytest-postgresql and
others. Program adds what the course needs on top: the output kept in a log, an
environment where a variable can be unset, a function run in the child before the
program (to lower its limits), and a stop that reports the exit status instead of
raising on it (tests look at the status themselves)."""

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import mirakuru.base
import psutil
from mirakuru import TCPExecutor
from mirakuru.base import ENV_UUID
from mirakuru.exceptions import ExecutorError, ProcessFinishedWithError

from .stages import ROOT


# mirakuru 3.1.0 kills, as a process exits, every process whose mirakuru_uuid (the
# starter's id, a colon, a uuid4) *contains* the exiting one's id anywhere: a short-lived
# process whose id appears inside another's uuid SIGKILLs what that other started (seen:
# a test worker's database, mid-suite, when a `course.py run` ended). This clean-up
# stops only what this process started, as mirakuru means to.
atexit.unregister(mirakuru.base.cleanup_subprocesses)


@atexit.register
def stop_what_this_process_started():
    mine = f"{os.getpid()}:"
    for process in psutil.process_iter(["environ"]):
        if (process.info["environ"] or {}).get(ENV_UUID, "").startswith(mine):
            with contextlib.suppress(psutil.Error):
                process.kill()


# The variables by which coverage measures a child process too (pyproject.toml's
# `patch = ["subprocess"]`). The measure is of the stages' code as the tests drive
# it; a child that is no such test (the database, a notebook's kernel, a benchmark)
# would only run about two times slower for it, so it is started without them.
COVERAGE_VARIABLES = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
NO_COVERAGE = dict.fromkeys(COVERAGE_VARIABLES)  # for Program's env: None unsets


def unmeasured(env):
    """`env` (an environment, such as os.environ) without coverage's variables."""
    return {name: value for name, value in env.items() if name not in COVERAGE_VARIABLES}


GIVEN_PORTS = set()  # the ports free_port() gave out in this process


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now, and that this process
    has not given out before. The system may offer one port twice in a row: two servers
    started side by side then got the same, the second found the first listening there,
    and a bench's requests for Motor's GridFSHandler went to part 3 (a 404)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in GIVEN_PORTS:
            GIVEN_PORTS.add(port)
            return port


def port_open(host, port):
    """Whether something accepts connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class Program(TCPExecutor):
    """`command` as a child process in a session of its own. start() returns once it
    listens on host:`port` (or once `ready()` is true, if given), and raises if it exits
    or `timeout` seconds go by first; stop() sends `stop_signal` to its process group
    (as Ctrl+C reaches every process of a terminal's group), gives it `timeout` seconds,
    then kills what is left. Used as a context manager, it is started and stopped.

    `env` is added to this process's environment; a value of None unsets a variable.
    What the program prints goes to `log` (a temporary file unless given): output()."""

    def __init__(self, command, port, env=None, timeout=30, stop_signal=signal.SIGINT, preexec=None, ready=None,
                 log=None, host="127.0.0.1"):
        self.log, self.own_log, self.last_output = log or tempfile.TemporaryFile("w+"), log is None, None
        super().__init__([str(part) for part in command], host=host, port=port, envvars=env or {},
                         timeout=timeout, stop_signal=stop_signal,
                         stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://{host}:{port}"
        self.preexec, self.ready, self.returncode = preexec, ready, None

    @property
    def envvars(self):
        return {name: value for name, value in super().envvars.items() if value is not None}

    @property
    def _popen_kwargs(self):
        # mirakuru calls os.setsid in a preexec_fn: start_new_session does the same, and
        # leaves preexec_fn to ours.
        kwargs = super()._popen_kwargs
        del kwargs["preexec_fn"]
        return {**kwargs, "start_new_session": True, "preexec_fn": self.preexec}

    def start(self):
        try:
            return super().start()
        except ExecutorError as error:  # it exited, took too long, or found its port taken
            self.close_log()
            with contextlib.suppress(OSError):  # a log opened for writing only cannot say
                error.add_note(f"What it printed:\n{self.output()}")
            raise

    def after_start_check(self):
        return self.ready() if self.ready else super().after_start_check()

    def stop(self, stop_signal=None, expected_returncode=None):
        process = self.process
        with contextlib.suppress(ProcessFinishedWithError):  # an exit status of its own: kept, not raised
            super().stop(stop_signal, expected_returncode)
        if process is not None:
            self.returncode = process.returncode
        self.close_log()
        return self

    def close_log(self):
        """Close the log this program made itself, keeping what it holds for output()."""
        if self.own_log and not self.log.closed:
            self.last_output = self.output()
            self.log.close()

    def output(self):
        """What the program has printed so far."""
        if self.log.closed:
            return self.last_output
        self.log.flush()
        self.log.seek(0)
        text = self.log.read()
        return text.decode(errors="replace") if isinstance(text, bytes) else text

    def run_to_end(self, timeout=60):
        """Run the command to its end instead (--help, or a run that must fail): its
        (exit status, output)."""
        self.close_log()  # not used: the output is returned
        result = subprocess.run(self.command_parts, env=self.envvars, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout, preexec_fn=self.preexec)
        return result.returncode, result.stdout + result.stderr


class StageProgram(Program):
    """`python <stage>/app.py ARGS`, as a learner runs it: on `port` (a free one unless
    given), its database at `mongodb_uri` named `db_name` (None: the stage's own
    default). `stage` is a stage's name, or the folder of a copy of one."""

    def __init__(self, stage, mongodb_uri, db_name, args=(), port=None, env=None, **options):
        folder = ROOT / stage if isinstance(stage, str) else Path(stage)
        port = port or free_port()
        env = {"PORT": str(port), "MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name, **(env or {})}
        super().__init__([sys.executable, folder / "app.py", *args], port, env, **options)


class StageLauncher(contextlib.ExitStack):
    """Runs one stage as a program, on one database, as often as a test needs:
    `launcher(*args)` starts one and returns its StageProgram, listening (all are
    stopped at the end of the `with` block); `launcher.run(*args)` runs one to its end
    and returns its (exit status, output). Options go to StageProgram (`mongodb_uri=`
    another database server, `db_name=` another database, `preexec=`, `ready=`...)."""

    def __init__(self, stage, mongodb_uri, db_name):
        super().__init__()
        self.stage, self.mongodb_uri, self.db_name = stage, mongodb_uri, db_name

    def program(self, args, options):
        options.setdefault("db_name", self.db_name)
        options.setdefault("mongodb_uri", self.mongodb_uri)
        return StageProgram(self.stage, args=args, **options)

    def __call__(self, *args, **options):
        return self.enter_context(self.program(args, options))

    def run(self, *args, timeout=60, **options):
        return self.program(args, options).run_to_end(timeout)
