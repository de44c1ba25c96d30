"""What the streaming benchmarks of part 3 share: a database, servers run in child
processes (so that the memory measured is theirs alone), curl, and medians.

The scripts start the servers they measure through this module:

    python bench/harness.py serve KIND --port P --db-uri URI --db-name NAME [--files-dir DIR]

KIND is one of SERVERS: part3 (the stage), gridfshandler (Motor's
motor.web.GridFSHandler, serving /fs/<file id>), static (Tornado's
StaticFileHandler, serving /static/<name>), part2 (the stage before, its body
limits raised to 2 GiB) or part4 (with `--threads N` thumbnail threads, as on a
machine of N + 1 cores, and `--decode-budget BYTES`; the process tuned as its
serve() tunes it, unless `--untuned`). `python bench/harness.py
read ...` is the driver alone, reading a GridFS file with Motor's
GridOut.readchunk(), for comparison.
"""

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import course  # noqa: E402  (the embedded database)

SERVERS = ("part3", "gridfshandler", "static", "part2", "part4")
# Stopped by SIGTERM (a timeout, kill): clean up as on Ctrl+C, the database included.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
MB = 1e6
MiB = 1024 * 1024


@contextlib.contextmanager
def database():
    """(uri, name) of a fresh database: at $MONGODB_URI if set, else in the embedded
    database started for the benchmark. The database is dropped at the end."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with course.scratch_db() as uri:
        from pymongo import MongoClient

        try:
            yield uri, name
        finally:
            with MongoClient(uri) as client:
                client.drop_database(name)


# --- Memory of a process, from /proc (Linux) ---


def status(pid, field):
    """A field of /proc/<pid>/status in MB (VmRSS: resident now, VmHWM: the peak)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024 / MB


def reset_peak(pid):
    """Start VmHWM again from the current resident size (Linux 4.0 and later)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Server:
    """`python bench/harness.py serve KIND ...` as a child process, until stop()."""

    def __init__(self, kind, db_uri, db_name, files_dir=None, args=()):
        self.kind, self.port = kind, course.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, __file__, "serve", kind, "--port", str(self.port),
                   "--db-uri", db_uri, "--db-name", db_name, *args]
        if files_dir:
            command += ["--files-dir", str(files_dir)]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        if not course.listening(self.process, self.port):
            self.log.seek(0)
            raise SystemExit(f"error: the {kind} server did not start:\n{self.log.read().decode()}")

    def rss(self):
        return status(self.process.pid, "VmRSS")

    def peak(self):
        return status(self.process.pid, "VmHWM")

    def reset_peak(self):
        reset_peak(self.process.pid)

    def stop(self):
        course.stop(self.process)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def memory(server):
    """Measures how much `server`'s resident memory grows during the block: yields
    a dict that gets `growth` (peak minus the size before, MB) and `after`."""
    figures = {"before": server.rss()}
    server.reset_peak()
    yield figures
    figures["after"] = server.rss()
    figures["growth"] = server.peak() - figures["before"]


@contextlib.contextmanager
def nginx(files_dir):
    """nginx serving `files_dir` at /static/, yielding its URL, or None (with a
    message) if nginx is not installed."""
    executable = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None)
    if executable is None:
        print("nginx is not installed: its figures are skipped (apt-get install nginx, brew install nginx).")
        yield None
        return
    port = course.free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as prefix:
        # A worker may run as `nobody`: it must be able to read the files.
        os.chmod(files_dir, 0o755)
        for path in Path(files_dir).iterdir():
            os.chmod(path, 0o644)
        (Path(prefix) / "nginx.conf").write_text(f"""
            worker_processes 1;
            daemon off;
            master_process off;
            pid {prefix}/nginx.pid;
            error_log {prefix}/error.log;
            events {{ worker_connections 1024; }}
            http {{
                access_log off;
                sendfile on;
                tcp_nopush on;
                client_body_temp_path {prefix}; proxy_temp_path {prefix}; fastcgi_temp_path {prefix};
                uwsgi_temp_path {prefix}; scgi_temp_path {prefix};
                server {{ listen 127.0.0.1:{port}; location /static/ {{ alias {files_dir}/; }} }}
            }}
        """)
        process = subprocess.Popen([executable, "-p", prefix, "-c", f"{prefix}/nginx.conf"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if course.listening(process, port, timeout=10):
                yield f"http://127.0.0.1:{port}"
            else:
                print(f"nginx did not start (see {prefix}/error.log): its figures are skipped.")
                yield None
        finally:
            course.stop(process, signum=signal.SIGQUIT)  # nginx's graceful stop


# --- Clients ---


def curl(url, *args, timeout=600):
    """curl `url` with `args`, the body to /dev/null: (status, bytes received, bytes/s)."""
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}",
         "--max-time", str(timeout), *args, url],
        capture_output=True, text=True, check=False,
    )
    code, size, speed = result.stdout.split()
    return int(code), int(size), float(speed)


def download(url, size, *args):
    """Download `url` with curl, check it is all there; its speed in MB/s."""
    code, received, speed = curl(url, *args)
    if code not in (200, 206) or received != size:
        raise SystemExit(f"error: {url} gave {code} and {received} bytes, not {size}")
    return speed / MB


def put_file(base_url, path, timeout=600):
    """PUT a file to part 3 with curl, as the lesson does (XSRF cookie, then token):
    (seconds taken, the upload's id)."""
    with tempfile.TemporaryDirectory() as tmp:
        jar = Path(tmp) / "cookies"
        subprocess.run(["curl", "-s", "-c", jar, "-o", "/dev/null", base_url + "/"], check=True)
        token = re.search(r"_xsrf\t(\S+)", jar.read_text()).group(1)
        start = time.perf_counter()
        result = subprocess.run(
            ["curl", "-s", "-b", jar, "-H", f"X-XSRFToken: {token}", "-T", path, "--max-time", str(timeout),
             "-w", "\n%{http_code}", base_url + "/upload/" + Path(path).name],
            capture_output=True, text=True, check=False,
        )
        seconds = time.perf_counter() - start
    body, _, code = result.stdout.rpartition("\n")
    if code != "201":
        raise SystemExit(f"error: the upload of {path} gave {code}: {body[:300]}")
    return seconds, re.search(r'"id": "(\w+)"', body).group(1)


def gridfs_file_id(db_uri, db_name, upload_id):
    """The GridFS id of the original file that part 3 stored for `upload_id`."""
    from bson import ObjectId
    from pymongo import MongoClient

    with MongoClient(db_uri) as client:
        return client[db_name].uploads.find_one({"_id": ObjectId(upload_id)})["original"]


@contextlib.contextmanager
def big_file(size):
    """A file of `size` random bytes in a temporary folder, and a fresh database:
    yields (the file's path, database URI, database name)."""
    with tempfile.TemporaryDirectory(prefix="bench-files-") as files_dir, database() as (db_uri, db_name):
        yield random_file(Path(files_dir) / "big.bin", size), db_uri, db_name


@contextlib.contextmanager
def gridfs_servers(path, db_uri, db_name):
    """Part 3 and Motor's GridFSHandler, each serving the file at `path` from GridFS
    (uploaded through part 3): yields {name: (server, the file's URL)}."""
    with Server("part3", db_uri, db_name) as part3, Server("gridfshandler", db_uri, db_name) as handler:
        _, upload_id = put_file(part3.url, path)
        file_id = gridfs_file_id(db_uri, db_name, upload_id)
        yield {"part 3": (part3, f"{part3.url}/uploads/{upload_id}/orig"),
               "Motor's GridFSHandler": (handler, f"{handler.url}/fs/{file_id}")}


def random_file(path, size):
    """A file of `size` random bytes (16 MiB of randomness, repeated: as incompressible)."""
    block = os.urandom(16 * MiB)
    with open(path, "wb") as file:
        for offset in range(0, size, len(block)):
            file.write(block[: size - offset])
    return path


def median(values):
    return statistics.median(values)


def ratio(a, b):
    return f"{a / b:5.2f}x" if b else "    -"


# --- A stage run as a program, as an operator runs it (part 4's benchmarks) ---


class Program:
    """`python <stage>/app.py ARGS` as a child process, its log kept, until stop().
    `preexec_fn` runs in the child before the stage does (to lower its limits, say)."""

    def __init__(self, stage, db_uri, db_name, args=(), preexec_fn=None):
        self.port = course.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PORT": str(self.port), "MONGODB_URI": db_uri, "MONGODB_DB": db_name}
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen([sys.executable, ROOT / stage / "app.py", *args], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        if not course.listening(self.process, self.port):
            raise SystemExit(f"error: {stage} did not start:\n{self.output()}")

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        course.stop(self.process, timeout=60)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def process_on_port(port):
    """The id of the process started with `port` in its command line (the embedded
    database, say), read from /proc."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(port).encode() in cmdline.read_bytes().split(b"\0"):
                return int(cmdline.parent.name)
    raise SystemExit(f"error: no process was started for port {port}")


# --- The child processes ---


def serve(kind, port, db_uri, db_name, files_dir, threads=None, decode_budget=None, untuned=False):
    import tornado.web
    from motor.motor_tornado import MotorClient
    from tornado.httpserver import HTTPServer

    def make_app(db):
        if kind == "part3":
            return course.load_stage("part3_streaming").make_app(db, files_dir=files_dir)
        if kind == "part2":
            return course.load_stage("part2_thumbnails").make_app(db)
        if kind == "part4":
            from concurrent.futures import ThreadPoolExecutor

            part4 = course.load_stage("part4_production")
            if not untuned:
                part4.tune_the_process()  # as its serve() does
            budget = {"decode_budget": decode_budget} if decode_budget else {}  # else the stage's default
            return part4.make_app(db, thumbnail_executor=ThreadPoolExecutor(threads or part4.THUMBNAIL_THREADS),
                                  **budget)
        if kind == "gridfshandler":
            import motor.web
            from bson import ObjectId

            class ById(motor.web.GridFSHandler):
                def get_gridfs_file(self, bucket, filename, request):
                    return bucket.open_download_stream(ObjectId(filename))

            return tornado.web.Application([(r"/fs/(\w+)", ById, {"database": db})])
        return tornado.web.Application([(r"/static/(.*)", tornado.web.StaticFileHandler, {"path": files_dir})])

    async def main():
        db = MotorClient(db_uri)[db_name]  # in the running loop: Motor binds to it
        # Part 2 buffers whole bodies: its limits are raised for the 1 GiB comparison.
        limits = {"max_body_size": 2 * 1024**3, "max_buffer_size": 2 * 1024**3} if kind == "part2" else {}
        HTTPServer(make_app(db), **limits).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    asyncio.run(main())


def read(db_uri, db_name, file_id):
    """The driver alone: read a GridFS file with Motor's readchunk(); print MB/s."""
    from bson import ObjectId
    from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorGridFSBucket

    async def main():
        bucket = AsyncIOMotorGridFSBucket(AsyncIOMotorClient(db_uri)[db_name])
        grid_out = await bucket.open_download_stream(ObjectId(file_id))
        start, size = time.perf_counter(), 0
        while chunk := await grid_out.readchunk():
            size += len(chunk)
        print(size / MB / (time.perf_counter() - start))

    asyncio.run(main())


def read_with_driver(db_uri, db_name, file_id):
    """Run read() in a child process; its MB/s."""
    output = subprocess.run([sys.executable, __file__, "read", "--db-uri", db_uri, "--db-name", db_name,
                             "--file-id", str(file_id)], capture_output=True, text=True, check=True, timeout=600)
    return float(output.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve", "read"])
    parser.add_argument("kind", nargs="?", choices=SERVERS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--db-uri")
    parser.add_argument("--db-name")
    parser.add_argument("--files-dir")
    parser.add_argument("--file-id")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--decode-budget", type=int)
    parser.add_argument("--untuned", action="store_true")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.kind, args.port, args.db_uri, args.db_name, args.files_dir, args.threads, args.decode_budget,
              args.untuned)
    else:
        read(args.db_uri, args.db_name, args.file_id)
