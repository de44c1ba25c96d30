"""INTERIM: what the test modules imported from here now lives in coursekit; this
module only re-exports it until every module imports coursekit itself."""

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
import typing

from coursekit.browser import find_chromium
from coursekit.clients import Client, GalleryParser, RawConnection, answer, error_message, multipart  # noqa: F401
from coursekit.database import embedded_db, local_address, redact, scratch_db
from coursekit.images import (corrupt_png, image_bytes, photo_jpeg, png_chunk, png_chunks, png_file,  # noqa: F401
                              png_header, png_with_a_broken_chunk_list, png_with_a_text_bomb,
                              png_with_a_truncated_header, truncated_jpeg)
from coursekit.processes import free_port, port_open
from coursekit.serving import served  # noqa: F401
from coursekit.stages import ORIGINAL_PATHS, ROOT, STAGES, load_stage  # noqa: F401
from coursekit.waiting import eventually  # noqa: F401


def wait_for(process, ready, timeout=30, interval=0.05):
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def listening(process, port, timeout=30):
    return wait_for(process, lambda: port_open("127.0.0.1", port), timeout)


def stop(process, timeout=10, signum=signal.SIGINT):
    if process.poll() is None:
        process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


course = types.SimpleNamespace(
    embedded_db=embedded_db, scratch_db=scratch_db, redact=redact, local_address=local_address,
    find_chromium=find_chromium, free_port=free_port, port_open=port_open, load_stage=load_stage,
    wait_for=wait_for, listening=listening, stop=stop)


@dataclasses.dataclass
class Program:
    process: subprocess.Popen
    url: str
    log: typing.IO

    def output(self):
        self.log.seek(0)
        return self.log.read()


@contextlib.contextmanager
def stage_program(stage, mongodb_uri, db_name, port=None, args=(), preexec_fn=None):
    port = port or free_port()
    env = {**os.environ, "PORT": str(port), "MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name}
    if db_name is None:
        del env["MONGODB_DB"]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, ROOT / stage / "app.py", *args], env=env, stdout=log, stderr=log, text=True,
            preexec_fn=preexec_fn,
        )
        try:
            assert listening(process, port, timeout=20) or process.poll() is not None
            yield Program(process, f"http://127.0.0.1:{port}", log)
        finally:
            stop(process, timeout=20)
