"""A MongoDB to work with: the one at MONGODB_URI, or the embedded one, SecantusDB."""

import contextlib
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from mirakuru.exceptions import ExecutorError

from .processes import NO_COVERAGE, Program, free_port, port_open


def redact(uri):
    """The URI without its user name and password, fit for a log line."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


def local_address(uri):
    """(host, port) when `uri` names one server on this machine, else None."""
    parts = urlsplit(uri)
    if parts.scheme != "mongodb" or "," in parts.netloc:
        return None
    host = parts.hostname or "localhost"
    if host not in ("localhost", "127.0.0.1"):
        return None
    return "127.0.0.1", parts.port or 27017


def mongodb_answers(uri, timeout_ms=2000):
    """Whether a MongoDB answers a ping at `uri` within `timeout_ms`."""
    address = local_address(uri)
    if address and not port_open(*address):
        return False  # nothing listens: no need to wait for the driver to give up
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def embedded_db(port, storage, host="127.0.0.1"):
    """Run SecantusDB on host:port with its files in `storage`, its log beside them;
    yield its URI once it answers, and stop it at the end."""
    storage = Path(storage)
    storage.mkdir(parents=True, exist_ok=True)
    log_path = storage.parent / f"{storage.name}.log"
    uri = f"mongodb://{host}:{port}"
    command = [Path(sys.executable).parent / "secantusd-py", "--host", host, "--port", port,
               "--storage-path", storage, "--log-level", "WARNING"]
    with open(log_path, "a") as log:
        server = Program(command, port, NO_COVERAGE, host=host, log=log,
                         ready=lambda: mongodb_answers(uri, timeout_ms=500))
        try:
            server.start()
        except ExecutorError:  # it exited, or something listened there already, or it took too long
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise SystemExit(
                f"error: the embedded database did not start on {host}:{port} "
                f"(is the port taken?). Its log, {log_path}, ends with:\n  " + "\n  ".join(tail)
            ) from None
        try:
            yield uri
        finally:
            server.stop()


@contextlib.contextmanager
def scratch_db():
    """The URI of a MongoDB for tests, benchmarks and notebooks: $MONGODB_URI when set,
    else the embedded database on a free port, its files in a temporary folder
    deleted after."""
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="course-db-") as storage, \
            embedded_db(free_port(), Path(storage) / "db") as uri:
        yield uri


@contextlib.contextmanager
def database_of_its_own(uri, prefix="test"):
    """A new database name (`prefix`_ and 12 hex digits) on the MongoDB at `uri`; the
    database is dropped at the end, whoever wrote there: a test or a benchmark, or a
    stage it ran."""
    from pymongo import MongoClient

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        with MongoClient(uri) as client:
            client.drop_database(name)
