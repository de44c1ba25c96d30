"""What the benchmarks share: a database, servers run in child processes (so that
the memory measured is theirs alone), their memory, curl, and medians. What they
share with the tests and notebooks comes from coursekit: stages, programs, the
XSRF-aware client, photos.

The scripts start the servers they measure through this module:

    python bench/harness.py serve KIND --port P --db-uri URI --db-name NAME [--files-dir DIR]

KIND is one of SERVERS: part3 (the stage), gridfshandler (Motor's
motor.web.GridFSHandler, serving /fs/<file id>), static (Tornado's
StaticFileHandler, serving /static/<name>), static-1mib (the same, reading 1 MiB
at a time where Tornado's reads 64 KiB), part2 (the stage before, its body
limits raised to 2 GiB) or part4 (with `--threads N` thumbnail threads, as on a
machine of N + 1 cores, and `--decode-budget BYTES`; the process tuned as its
serve() tunes it, unless `--untuned`). Part 3 takes `--set MODULE.NAME=NUMBER`
(say `--set downloads.READS_AHEAD=1`), which changes one of its constants, and
`--disk-reads-on-a-thread`: the choices its lesson makes, measured against the
others. With `--profile FILE`, a server writes cProfile's figures of its event
loop's thread to FILE when it stops, timed by the wall clock or, with `--clock
cpu`, by that thread's CPU time. `python bench/harness.py read ...` is the driver
alone, reading a GridFS file with Motor's GridOut.readchunk(), for comparison;
`python bench/harness.py write WRITER ...` stores a file in GridFS in that
process, with no HTTP, one of WRITERS' ways.
"""

import argparse
import asyncio
import contextlib
import cProfile
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tornado.web
from mirakuru.exceptions import ExecutorError
from tornado.httpclient import AsyncHTTPClient

from coursekit.clients import Client
from coursekit.database import database_of_its_own, local_address, scratch_db
from coursekit.nginx import Nginx, nginx_executable
from coursekit.processes import Program, StageProgram, free_port
from coursekit.stages import StageCode, load_stage, stage_module

SERVERS = ("part3", "gridfshandler", "static", "static-1mib", "part2", "part4")
STAGES = {"part3": "part3_streaming", "part4": "part4_production"}  # the servers that are our stages
# How `write` stores a file: the driver's chunk inserts alone, one at a time (its
# own rate), or a whole GridFS file fed as Tornado feeds data_received.
WRITERS = {
    "driver": "the driver alone: insert_one() of each 255 KiB chunk, awaited one after another",
    "gridfsupload": "part 3's GridFSUpload (gridfs_chunks.py), fed 64 KiB at a time",
    "open_upload_stream": "Motor's MotorGridFSBucket.open_upload_stream(), fed 64 KiB at a time",
}
PIECE = 64 * 1024  # what Tornado hands data_received at most (its chunk_size)
# Stopped by SIGTERM (a timeout, kill): clean up as on Ctrl+C, the database included.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
MB = 1e6
MiB = 1024 * 1024


@contextlib.contextmanager
def database():
    """(uri, name) of a fresh database: at $MONGODB_URI if set, else in the embedded
    database started for the benchmark. The database is dropped at the end."""
    with scratch_db() as uri, database_of_its_own(uri, "bench") as name:
        yield uri, name


# --- Memory of a process, from /proc (Linux) ---


def status(pid, field):
    """A field of /proc/<pid>/status in MB (VmRSS: resident now, VmHWM: the peak)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024 / MB


def reset_peak(pid):
    """Start VmHWM again from the current resident size (Linux 4.0 and later)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid):
    """CPU seconds (user and system) that process `pid` has used so far: (its main
    thread's, which runs the event loop; its other threads', ended ones included)."""
    def used(stat):
        fields = Path(stat).read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    main = used(f"/proc/{pid}/task/{pid}/stat")
    return main, used(f"/proc/{pid}/stat") - main


def database_process(db_uri):
    """The id of the process of the database server at `db_uri`, if it runs on this
    machine (the embedded one does): its CPU can then be counted; else None."""
    address = local_address(db_uri)
    with contextlib.suppress(SystemExit):
        return process_on_port(address[1]) if address else None


@contextlib.contextmanager
def memory(server):
    """Measures how much `server`'s resident memory grows during the block: yields
    a dict that gets `growth` (peak minus the size before, MB) and `after`."""
    figures = {"before": server.rss()}
    server.reset_peak()
    yield figures
    figures["after"] = server.rss()
    figures["growth"] = server.peak() - figures["before"]


# --- The programs measured: coursekit's Programs, watched ---


class Measured:
    """What a benchmark adds to a coursekit Program: its memory, from /proc; and a
    start that, if the program does not listen, ends the benchmark with what the
    program printed."""

    def start(self):
        try:
            return super().start()
        except ExecutorError as error:
            raise SystemExit(f"error: it did not start. {error} It printed:\n{self.output()}") from None

    def rss(self):
        return status(self.process.pid, "VmRSS")

    def peak(self):
        return status(self.process.pid, "VmHWM")

    def reset_peak(self):
        reset_peak(self.process.pid)

    def cpu_seconds(self):
        """The CPU time the process has used so far, user and system, all its threads
        counted: unlike a speed, hardly changed by other work on the machine."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Server(Measured, Program):
    """`python bench/harness.py serve KIND ...` (see above), on a free port."""

    def __init__(self, kind, db_uri, db_name, files_dir=None, args=(), profile=None, clock="wall"):
        port = free_port()
        profiling = ["--profile", profile, "--clock", clock] if profile else []
        command = [sys.executable, __file__, "serve", kind, "--port", port, "--db-uri", db_uri, "--db-name", db_name,
                   *args, *(["--files-dir", files_dir] if files_dir else []), *profiling]
        super().__init__(command, port)


class Stage(Measured, StageProgram):
    """A stage run as a program, `python <stage>/app.py ARGS`, as an operator runs it
    (part 4's benchmarks); options as coursekit's StageProgram (`preexec` lowers its
    limits, say)."""

    def __init__(self, stage, db_uri, db_name, args=(), **options):
        super().__init__(stage, db_uri, db_name, args, timeout=60, **options)


@contextlib.contextmanager
def nginx(files_dir):
    """nginx serving `files_dir` at /static/, yielding its URL, or None (with a
    message) if nginx is not installed or does not start."""
    if nginx_executable() is None:
        print("nginx is not installed: its figures are skipped (apt-get install nginx, brew install nginx).")
        yield None
        return
    port = free_port()
    site = f"""
        server {{
            listen 127.0.0.1:{port};
            access_log off;
            sendfile on;
            tcp_nopush on;
            location /static/ {{ alias {files_dir}/; }}
        }}
    """
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as prefix:
        server = Nginx(site, port, prefix)
        try:
            server.start()
        except ExecutorError:
            print(f"nginx did not start ({server.output().strip()}): its figures are skipped.")
            yield None
            return
        try:
            yield server.url
        finally:
            server.stop()


def process_on_port(port):
    """The id of the process started with `port` in its command line (the embedded
    database, say), read from /proc."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(port).encode() in cmdline.read_bytes().split(b"\0"):
                return int(cmdline.parent.name)
    raise SystemExit(f"error: no process was started for port {port}")


# --- Clients ---


def visitor(base_url):
    """A coursekit Client that has opened the home page at `base_url`, as a visitor
    does: it holds the XSRF cookie (xsrf_headers()) and knows where the upload form
    posts (form_action)."""
    client = Client(base_url)
    asyncio.run(client.visit())
    return client


def allow_requests(at_once, timeout=3600):
    """Let Tornado's AsyncHTTPClient, which coursekit's Client uses, have `at_once`
    requests in flight, each given `timeout` seconds (its defaults: 10, and 20 s).
    For the clients made after this, in an event loop that has none yet."""
    AsyncHTTPClient.configure(None, max_clients=at_once, defaults={"request_timeout": timeout})


def curl(url, *args, timeout=600):
    """curl `url` with `args`, the body to /dev/null: (status, bytes received, bytes/s,
    seconds from the start to the first byte of the answer)."""
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download} %{time_starttransfer}",
         "--max-time", str(timeout), *args, url],
        capture_output=True, text=True, check=False,
    )
    code, size, speed, first_byte = result.stdout.split()
    return int(code), int(size), float(speed), float(first_byte)


def download(url, size, *args):
    """Download `url` with curl, check it is all there; its speed in MB/s."""
    return timed_download(url, size, *args)[0]


def timed_download(url, size, *args):
    """Download `url` with curl, check it is all there: (MB/s, seconds to the first byte)."""
    code, received, speed, first_byte = curl(url, *args)
    if code not in (200, 206) or received != size:
        raise SystemExit(f"error: {url} gave {code} and {received} bytes, not {size}")
    return speed / MB, first_byte


def curl_upload(base_url, path, form=False, expected=(201,), timeout=600):
    """Upload the file at `path` with curl, as a visitor who has opened the home page:
    the XSRF cookie, and its token in X-XSRFToken (as part 3's lesson does). By PUT to
    /upload/<name> (`curl -T`, part 3's way), or with `form` in the home page's upload
    form (`curl -F`, part 2's). (seconds the upload took, the Location answered)."""
    client = visitor(base_url)
    headers = [option for name, value in client.xsrf_headers().items() for option in ("-H", f"{name}: {value}")]
    if form:
        url, sending = base_url + client.form_action, ["-F", f"file=@{path}"]
    else:
        url, sending = f"{base_url}/upload/{Path(path).name}", ["-T", path]
    start = time.perf_counter()
    result = subprocess.run(["curl", "-s", *headers, *sending, "--max-time", str(timeout),
                             "-w", "\n%{http_code} %header{location}", url],
                            capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    body, _, answer = result.stdout.rpartition("\n")
    code, _, location = answer.partition(" ")
    if int(code or 0) not in expected:
        raise SystemExit(f"error: the upload of {path} to {url} gave {code or 'no answer'}: {body[:300]}")
    return seconds, location


def put_file(base_url, path, timeout=600):
    """PUT a file to part 3 or 4 with curl, as the lesson does: (seconds taken, the
    path of the stored file, the answer's Location)."""
    return curl_upload(base_url, path, timeout=timeout)


def gridfs_file_id(db_uri, db_name, filename):
    """The GridFS id of the file stored under `filename` (the one upload of that name)."""
    from pymongo import MongoClient

    with MongoClient(db_uri) as client:
        return client[db_name]["fs.files"].find_one({"filename": filename})["_id"]


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
        _, location = put_file(part3.url, path)
        file_id = gridfs_file_id(db_uri, db_name, path.name)
        yield {"part 3": (part3, part3.url + location),
               "Motor's GridFSHandler": (handler, f"{handler.url}/fs/{file_id}")}


def random_file(path, size):
    """A file of `size` random bytes (16 MiB of randomness, repeated: as incompressible)."""
    block = os.urandom(16 * MiB)
    with open(path, "wb") as file:
        for offset in range(0, size, len(block)):
            file.write(block[: size - offset])
    return path


# --- The command line, and figures ---


def source_path(path):
    """A source file's path from its package on, as a profile or a trace names it:
    tornado/iostream.py, not .../site-packages/tornado/iostream.py."""
    return re.sub(r"^.*/(site-packages|python3\.\d+)/", "", path)


def command_line(doc, quick):
    """The parser of a benchmark's options: the first paragraph of its docstring `doc`
    as its description, and --quick, a small run that checks the script works
    (`quick` says what it runs)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def median(values):
    return statistics.median(values)


def percentile(samples, p):
    """The p-th percentile of `samples` (p in 0..100), interpolated."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def ratio(a, b):
    return f"{a / b:5.2f}x" if b else "    -"


# --- The child processes ---


class StaticFileHandlerReading1MiB(tornado.web.StaticFileHandler):
    """Tornado's StaticFileHandler, reading 1 MiB at a time where it reads 64 KiB: the
    read size alone changed, to compare it with part 3's /files/ (which reads 1 MiB)."""

    @classmethod
    def get_content(cls, abspath, start=None, end=None):  # Tornado 6.6's, but for the size of a read
        cls._stat_regular_file(abspath, abspath)
        with open(abspath, "rb") as file:
            if start is not None:
                file.seek(start)
            remaining = end - (start or 0) if end is not None else None
            while chunk := file.read(MiB if remaining is None else min(MiB, remaining)):
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk


def vary_part3(settings, disk_reads_on_a_thread):
    """Part 3 with some of its constants changed, `settings` as ["MODULE.NAME=NUMBER"],
    and if `disk_reads_on_a_thread`, its FileRange reading on asyncio's default thread
    pool rather than on the event loop."""
    for setting in settings:
        name, _, value = setting.partition("=")
        module_name, _, constant = name.partition(".")
        module = stage_module("part3_streaming", module_name)
        if not hasattr(module, constant):
            raise SystemExit(f"error: part 3's {module_name}.py has no {constant}")
        setattr(module, constant, int(value))  # read when used: the change applies
    if disk_reads_on_a_thread:
        disk_files = stage_module("part3_streaming", "disk_files")

        class FileRangeOnAThread(disk_files.FileRange):
            """Each read on a thread, at an offset of its own (os.pread): reads that run
            ahead may then run side by side, and must not share the file's position."""

            def __init__(self, file, start, end):
                super().__init__(file, start, end)
                self.offset = start

            async def read(self):
                size = min(self.left, disk_files.DISK_READ_SIZE)
                offset, self.offset, self.left = self.offset, self.offset + size, self.left - size
                piece = await asyncio.to_thread(os.pread, self.file.fileno(), size, offset) if size else b""
                if len(piece) < size:
                    raise OSError(f"{self.file.name} shrank during the download")
                return [piece] if piece else []

        disk_files.FileRange = FileRangeOnAThread  # FileHandler looks it up when it reads


def serve(kind, port, db_uri, db_name, files_dir, threads=None, decode_budget=None, untuned=False, settings=(),
          disk_reads_on_a_thread=False, profile=None, clock="wall"):
    from motor.motor_tornado import MotorClient
    from tornado.httpserver import HTTPServer

    def make_app(db):
        if kind == "part3":
            part3 = load_stage("part3_streaming")
            vary_part3(settings, disk_reads_on_a_thread)
            return part3.make_app(db, files_dir=files_dir)
        if kind == "part2":
            return load_stage("part2_thumbnails").make_app(db)
        if kind == "part4":
            from concurrent.futures import ThreadPoolExecutor

            part4 = StageCode(load_stage("part4_production"))
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
        handler = StaticFileHandlerReading1MiB if kind == "static-1mib" else tornado.web.StaticFileHandler
        return tornado.web.Application([(r"/static/(.*)", handler, {"path": files_dir})])

    async def main():
        db = MotorClient(db_uri)[db_name]  # in the running loop: Motor binds to it
        if kind in STAGES:  # its indexes, as its own start-up makes them
            await StageCode(load_stage(STAGES[kind])).create_indexes(db)
        # Part 2 buffers whole bodies: its limits are raised for the 1 GiB comparison.
        limits = {"max_body_size": 2 * 1024**3, "max_buffer_size": 2 * 1024**3} if kind == "part2" else {}
        HTTPServer(make_app(db), **limits).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    # With `profile`: cProfile's figures of this thread, the event loop's, written to
    # that file at the stop; by the wall clock (its waits included) or its CPU time.
    profiler = cProfile.Profile(time.thread_time if clock == "cpu" else time.perf_counter) if profile else None
    if profiler:
        profiler.enable()
    try:
        asyncio.run(main())
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)


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


def write(writer, db_uri, db_name, path, limit=None):
    """In this process, with no HTTP: store the file at `path` (its first `limit`
    bytes, if given) in GridFS as `writer` (one of WRITERS) does, reading it from disk
    as it goes. Prints MB/s, this process's memory growth (peak minus what it held
    before, MB), the seconds taken, and the CPU seconds of its main thread (the event
    loop) and of its other threads (Motor's)."""
    from bson import ObjectId
    from motor.motor_tornado import MotorClient, MotorGridFSBucket

    part3 = StageCode(load_stage("part3_streaming"))

    class OneAtATime:
        """The driver's own rate: each chunk's insert awaited before the next."""

        def __init__(self, db):
            self.chunks, self.file_id, self.n = db.fs.chunks, ObjectId(), 0

        async def write(self, data):
            await self.chunks.insert_one({"files_id": self.file_id, "n": self.n, "data": data})
            self.n += 1

        async def close(self):
            pass

    async def main():
        db = MotorClient(db_uri)[db_name]
        await part3.create_indexes(db)  # as the stage's start-up makes them: inserts update them
        size = min(Path(path).stat().st_size, limit or math.inf)
        piece = part3.CHUNK_SIZE if writer == "driver" else PIECE
        before, cpu_before = status(os.getpid(), "VmRSS"), cpu_seconds(os.getpid())
        reset_peak(os.getpid())
        start = time.perf_counter()
        if writer == "driver":
            upload = OneAtATime(db)
        elif writer == "gridfsupload":
            upload = part3.GridFSUpload(db, Path(path).name, "application/octet-stream")
        else:
            upload = MotorGridFSBucket(db).open_upload_stream(Path(path).name)
        with open(path, "rb", buffering=0) as file:
            for _ in range(0, size, piece):
                await upload.write(file.read(min(piece, size - file.tell())))
        await upload.close()
        seconds = time.perf_counter() - start
        cpu_after = cpu_seconds(os.getpid())
        print(size / MB / seconds, status(os.getpid(), "VmHWM") - before, seconds,
              *(after - before for after, before in zip(cpu_after, cpu_before)))

    asyncio.run(main())


def write_in_child(writer, db_uri, db_name, path, limit=None):
    """Run write() in a child process: a dict of its figures (speed: MB/s, growth: MB,
    seconds; loop and threads: CPU seconds)."""
    output = subprocess.run([sys.executable, __file__, "write", writer, "--db-uri", db_uri, "--db-name", db_name,
                             "--path", str(path), *(["--limit", str(limit)] if limit else [])],
                            capture_output=True, text=True, check=True, timeout=1800)
    return dict(zip(["speed", "growth", "seconds", "loop", "threads"], map(float, output.stdout.split())))


def read_with_driver(db_uri, db_name, file_id):
    """Run read() in a child process; its MB/s."""
    output = subprocess.run([sys.executable, __file__, "read", "--db-uri", db_uri, "--db-name", db_name,
                             "--file-id", str(file_id)], capture_output=True, text=True, check=True, timeout=600)
    return float(output.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve", "read", "write"])
    parser.add_argument("kind", nargs="?", choices=[*SERVERS, *WRITERS])
    parser.add_argument("--port", type=int)
    parser.add_argument("--db-uri")
    parser.add_argument("--db-name")
    parser.add_argument("--files-dir")
    parser.add_argument("--file-id")
    parser.add_argument("--path")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--profile")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--decode-budget", type=int)
    parser.add_argument("--untuned", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="MODULE.NAME=NUMBER")
    parser.add_argument("--disk-reads-on-a-thread", action="store_true")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.kind, args.port, args.db_uri, args.db_name, args.files_dir, args.threads, args.decode_budget,
              args.untuned, args.set, args.disk_reads_on_a_thread, args.profile, args.clock)
    elif args.command == "write":
        write(args.kind, args.db_uri, args.db_name, args.path, args.limit)
    else:
        read(args.db_uri, args.db_name, args.file_id)
