"""What a second process buys, and how to run it: part 4's requests per second with one
process, with two forked by part 4 on one listening socket, and with two independent copies
on one port through SO_REUSEPORT; and how each way spreads the connections.

    python bench/processes.py            # 10 s of load a measure, three runs of each way
    python bench/processes.py --quick    # 2 s, one run of each: checks the script works

Part 4 runs as a learner runs it, `python part4_production/app.py --processes=N`,
on 127.0.0.1. The copies are Tornado's guide's other way ("add reuse_port=True to
your listen() calls and then simply run multiple copies"): each is part 4's app.py
with --processes=1, run by this script (`--copy`) with its socket bound with
SO_REUSEPORT, as part 4 has no option for it. A few photos are uploaded, then a load
generator asks for their thumbnails (`GET /uploads/<id>/thumb`, small PNGs) from 16
clients at once, each asking again as soon as its answer is in, for a fixed time:
first each request on a new connection, as from many visitors; then on 16 kept-alive
connections, opened at once, as from a proxy that keeps its connections to the app.
The load generator is a process of its own: wrk if it is installed (Debian: `apt
install wrk`), else a small asyncio client, this script run with `--load`.

How the connections are spread: forked processes share one listening socket, and
whichever wakes first accepts; 16 connections opened at once may all go to one. With
SO_REUSEPORT, each copy has its own socket, and Linux hashes each new connection to
one of them, whether that copy is busy or not. Printed for each run: the connections
each process holds (kept-alive), and each process's share of the CPU time the
processes used (both phases).

Everything shares this machine's cores: the app's processes, the database (the
embedded one, unless MONGODB_URI is set) and the load generator. The ratios show
what a second process buys here; the load average is printed too.
"""

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from coursekit.clients import Client
from coursekit.database import database_of_its_own, scratch_db
from coursekit.images import photo_jpeg
from coursekit.processes import Program, free_port
from coursekit.stages import ROOT
from harness import Measured, Stage, command_line

PHOTOS = 4  # uploaded, and their thumbnails asked for in turn
# The ways to serve, measured in turn: part 4 alone, part 4 forking, two copies of it.
WAYS = ("1 process", "2 processes", "2 copies")
PHASES = {False: "a new connection for each request", True: "kept-alive connections, opened at once"}


async def upload(base_url, photos):
    """PUT the `photos` (JPEG bytes), as a script would (the XSRF cookie, then the
    token as a header); return their thumbnails' paths."""
    client = Client(base_url)
    await client.visit()
    paths = []
    for n, photo in enumerate(photos):
        response = await client.fetch(f"/upload/photo{n}.jpg", "PUT", photo, {"Content-Type": "image/jpeg"},
                                      request_timeout=60)
        if response.code != 201:
            raise SystemExit(f"error: an upload got {response.code}: {response.body[:300]!r}")
        original = response.headers["Location"]  # where the photo is served; its thumbnail beside it
        paths.append(original.removesuffix("/orig") + "/thumb")
    return paths


# --- The two copies: part 4's app.py, its port bound with SO_REUSEPORT ---


def run_a_copy(args):
    """Part 4's app.py run as its __main__ with `args`, as `python app.py` runs it, but
    its listening sockets bound with SO_REUSEPORT: another copy may then bind the same
    port, each with its own socket."""
    import tornado.netutil

    tornado.netutil.bind_sockets = functools.partial(tornado.netutil.bind_sockets, reuse_port=True)
    app = ROOT / "part4_production" / "app.py"
    sys.argv = [str(app), *args]
    sys.path.insert(0, str(app.parent))  # as `python app.py` does, for its siblings
    runpy.run_path(str(app), run_name="__main__")


class Copy(Measured, Program):
    """A copy of part 4 (see run_a_copy()) on `port`, which another copy may hold too."""

    def __init__(self, port, db_uri, db_name, args):
        super().__init__([sys.executable, __file__, "--copy", *args], port,
                         {"PORT": str(port), "MONGODB_URI": db_uri, "MONGODB_DB": db_name}, timeout=60)

    def pre_start_check(self):
        return False  # the port may be open already: the other copy's

    def after_start_check(self):  # this copy listens, not just the other one
        return self.port in listening_ports(self.process.pid)


def listening_ports(pid):
    with contextlib.suppress(psutil.Error):
        return {c.laddr.port for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return set()


@contextlib.contextmanager
def serving(way, mongodb_uri, db_name):
    """Part 4 served on a free port, one of WAYS: yields (port, a function that returns
    the ids of the processes that serve)."""
    args = ["--logging=warning"]  # no log line for each request
    if way == "2 copies":
        port = free_port()
        with Copy(port, mongodb_uri, db_name, args) as first, Copy(port, mongodb_uri, db_name, args) as second:
            yield port, lambda: [first.process.pid, second.process.pid]
        return
    processes = int(way[0])
    with Stage("part4_production", mongodb_uri, db_name, [f"--processes={processes}", *args]) as app:
        if processes == 1:
            yield app.port, lambda: [app.process.pid]
        else:  # the parent forks and waits; its children serve
            yield app.port, lambda: [child.pid for child in psutil.Process(app.process.pid).children()]


# --- The load generators: each a process of its own ---


def run_wrk(port, paths, connections, seconds, keep_alive):
    """(answers, seconds, errors) from wrk, asking for `paths` in turn."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("paths = {%s}\nn = 0\n" % ", ".join(f'"{path}"' for path in paths))
        script.write("request = function()\n  n = n %% #paths + 1\n  return wrk.format(\"GET\", paths[n])\nend\n")
        script.flush()
        command = ["wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{seconds}s",
                   "--script", script.name, f"http://127.0.0.1:{port}"]
        if not keep_alive:
            command[1:1] = ["--header", "Connection: close"]  # wrk then connects again for each request
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if result.returncode != 0:
        raise SystemExit(f"error: wrk failed: {result.stderr}")
    answers, took, unit = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", result.stdout).groups()
    # wrk mentions these only when there were some
    errors = re.findall(r"Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), "
                        r"write (\d+), timeout (\d+)", result.stdout)
    return int(answers), float(took) * {"ms": 0.001, "s": 1, "m": 60}[unit], sum(
        int(n) for match in errors for n in match if n)


def run_python_client(port, paths, connections, seconds, keep_alive):
    """(answers, seconds, errors) from this script run with --load."""
    command = [sys.executable, __file__, "--load", str(port), *paths, "--connections", str(connections),
               "--seconds", str(seconds)] + (["--keep-alive"] if keep_alive else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if result.returncode != 0:
        raise SystemExit(f"error: the load generator failed: {result.stderr}")
    figures = json.loads(result.stdout)
    return figures["answers"], figures["seconds"], figures["errors"]


async def load(port, paths, clients, seconds, keep_alive):
    """The asyncio load generator: `clients` clients, each asking for `paths` in turn,
    and again as soon as an answer is in, for `seconds`; on a new connection each
    time, or on one kept-alive connection each."""
    deadline = time.monotonic() + seconds
    answers, errors = 0, 0

    async def client(first):
        nonlocal answers, errors
        connection = None
        n = first
        while time.monotonic() < deadline:
            reader, writer = connection or await asyncio.open_connection("127.0.0.1", port)
            close = "" if keep_alive else "Connection: close\r\n"
            writer.write(f"GET {paths[n % len(paths)]} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{close}\r\n".encode())
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(re.search(rb"\r\nContent-Length: *(\d+)", head, re.I)[1]))
            answers += 1
            errors += not head.startswith(b"HTTP/1.1 200 ")
            if keep_alive:
                connection = reader, writer
            else:
                writer.close()
                await writer.wait_closed()
        if connection:
            connection[1].close()

    start = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    print(json.dumps({"answers": answers, "seconds": time.monotonic() - start, "errors": errors}))


# --- The measure ---


def cpu_seconds(pids):
    """The CPU time each process has used so far (user and system), in seconds."""
    return [sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids]


def connections_held(pids, port):
    """How many connections to `port` each process holds (established ones)."""
    return [sum(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                for c in psutil.Process(pid).net_connections("tcp")) for pid in pids]


def measure(port, pids, paths, args, generate_load, keep_alive):
    """Load the processes `pids` serving on `port`: (requests/s, each process's share
    of their CPU time, the connections each held when most were open). A count made at
    one moment (it was halfway) could fall before the load generator had opened them
    all on a busy machine: 4 of 16 once, at a load average of 6."""
    held, done = [], threading.Event()

    def count_connections():
        while not done.wait(0.1):
            now = connections_held(pids, port)
            if sum(now) > sum(held):
                held[:] = now

    counting = threading.Thread(target=count_connections)
    before = cpu_seconds(pids)
    counting.start()
    try:
        answers, seconds, errors = generate_load(port, paths, args.connections, args.seconds, keep_alive)
    finally:
        done.set()
        counting.join()
    used = [after - then for after, then in zip(cpu_seconds(pids), before)]
    if errors:
        raise SystemExit(f"error: {errors} of {answers} answers were not 200")
    return answers / seconds, [part / (sum(used) or 1) for part in used], held


def serve_and_measure(way, photos, args, mongodb_uri, db_name, generate_load):
    """Serve part 4 one of WAYS and measure it, in each phase: {keep_alive: measure()}."""
    with serving(way, mongodb_uri, db_name) as (port, pids):
        paths = asyncio.run(upload(f"http://127.0.0.1:{port}", photos))
        # Warm up: the processes' connections to the database, caches.
        generate_load(port, paths, args.connections, 1, False)
        return {keep_alive: measure(port, pids(), paths, args, generate_load, keep_alive) for keep_alive in PHASES}


def per_process(figures):
    return "+".join(f"{figure:.0f}" for figure in figures)


def run(args, mongodb_uri):
    generate_load, generator = (run_wrk, "wrk") if shutil.which("wrk") else (run_python_client, "asyncio client")
    print(f"GET /uploads/<id>/thumb of {PHOTOS} photos for {args.seconds} s from {args.connections} clients, "
          f"{args.runs} run(s) of each way; load generator: {generator}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("2 processes: part 4's --processes=2, forked, sharing one listening socket; 2 copies: two part 4's, "
          "--processes=1, on one port with SO_REUSEPORT, a socket each")
    photos = [photo_jpeg(1, quality=80 + n) for n in range(PHOTOS)]
    results = {way: [] for way in WAYS}
    for _ in range(args.runs):
        for way in WAYS:  # in turn, so that a busy minute weighs on each
            with database_of_its_own(mongodb_uri, "bench") as db_name:
                results[way].append(serve_and_measure(way, photos, args, mongodb_uri, db_name, generate_load))
    for keep_alive, phase in PHASES.items():
        print(f"\n{args.connections} clients, {phase}:")
        rate = {way: [run[keep_alive][0] for run in results[way]] for way in WAYS}
        for way in WAYS:
            runs = ", ".join(f"{figure:.0f}" for figure in rate[way])
            print(f"{way:<11}: {statistics.median(rate[way]):.0f} requests/s (median of: {runs})")
        one, forked, copies = (statistics.median(rate[way]) for way in WAYS)
        print(f"ratio, 2 / 1 processes: {forked / one:.2f}x (load average now {os.getloadavg()[0]:.2f})")
        print(f"ratio, 2 copies / 2 processes: {copies / forked:.2f}x")
        for way in WAYS[1:]:
            shares = ", ".join(per_process(100 * share for share in run[keep_alive][1]) for run in results[way])
            held = ", ".join(per_process(run[keep_alive][2]) for run in results[way])
            print(f"{way:<11}: share of the CPU time, % each: {shares}"
                  + (f"; connections each held: {held}" if keep_alive else ""))


def main():
    if sys.argv[1:2] == ["--copy"]:  # a copy of part 4, with part 4's options after
        run_a_copy(sys.argv[2:])
        return
    parser = command_line(__doc__, "2 s of load, one run each")
    parser.add_argument("--seconds", type=int, default=10, help="of load in a measure (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="of each way: the median is printed (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="clients at once (default 16)")
    # The asyncio load generator, run as a process of its own:
    parser.add_argument("--load", nargs="+", metavar=("PORT", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--keep-alive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        asyncio.run(load(int(args.load[0]), args.load[1:], args.connections, args.seconds, args.keep_alive))
        return
    if args.quick:
        args.seconds, args.runs = 2, 1
    with scratch_db() as uri:
        run(args, uri)


if __name__ == "__main__":
    main()
