"""C10K, Tornado's founding claim: ten thousand kept-alive connections on one process.

    python bench/c10k.py                 # 10,000 connections, a request on each every 10 s, for 60 s
    python bench/c10k.py --uploads=500   # the same on part 4, with 500 uploads trickling in beside
    python bench/c10k.py --quick         # 300 connections for 2 s (and 10 uploads): checks the script works

Part 3 and part 4 serve in turn, each a process started as a learner starts it
(`python <stage>/app.py`), with its limit of open files raised to the system's
hard limit and its access log off. This script is the load generator, in a process
of its own: it opens the connections, then on each asks for a small static file
(`GET /static/style.css`, which needs neither the database nor Pillow) every 10 s,
the first requests spread over those 10 s, and measures how long each answer takes.

Printed for each stage: the server's memory once every connection is open and has
been answered once (minus what it held before), and that per connection; the
latencies (p50, p99, max) and the errors; and the longest pause of Python's cycle
collector in the server while the requests ran (the server is started through this
script, which times its collections with gc.callbacks). With --uploads, part 4 also
receives that many uploads of a photo, each trickling in over half the run: the
server's peak memory is printed against what the connections, the uploads and the
thumbnails may take. Everything shares this machine's cores: the load average is
printed too.
"""

import argparse
import asyncio
import gc
import json
import os
import re
import resource
import signal
import sys
import tempfile
import time

from coursekit.clients import Client, RawConnection
from coursekit.images import photo_jpeg
from coursekit.processes import Program, free_port
from coursekit.stages import ROOT, StageCode, load_stage
from harness import MB, Measured, MiB, command_line, database, percentile, source_path

STAGES = {"part3": "part3_streaming", "part4": "part4_production"}
LIGHT_REQUEST = "/static/style.css"
TARGETS = {"bytes a connection": 6000, "p99 ms": 25, "errors": 0}  # for part 4 (issue 11)
OPENING_AT_ONCE = 100  # connections being opened at a time (the listen backlog is 128)


def raise_open_files_limit():
    """Up to the hard limit: 10,000 connections need 10,000 descriptors, and more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- The server: a stage run as a program, its collections timed ---


def serve(app, stats_path, breakdown=False, max_uploads=None):
    """Run `app` (a stage's app.py) as its __main__, timing the cycle collector's
    pauses; SIGUSR1 starts the count again. With `breakdown`, tracemalloc follows
    the allocations: a first SIGUSR2 notes them, a second one what has been added
    since, by line of code. At exit, the figures go to `stats_path`."""
    import atexit
    import logging
    import runpy
    import tracemalloc

    raise_open_files_limit()
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # no line for each request
    pauses, started, snapshots, added = [], [], [], []
    if breakdown:
        tracemalloc.start()

    def snapshot(*_):
        snapshots.append(tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]))
        if len(snapshots) == 2:
            added[:] = [(str(stat.traceback[0]), stat.size_diff, stat.count_diff)
                        for stat in snapshots[1].compare_to(snapshots[0], "lineno")]

    def timed(phase, info):
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append((info["generation"], (time.perf_counter() - started[0]) * 1000))

    def write_figures():
        with open(stats_path, "w") as file:
            json.dump({"pauses": pauses, "threshold": gc.get_threshold(), "added": added}, file)

    gc.callbacks.append(timed)
    signal.signal(signal.SIGUSR1, lambda *_: pauses.clear())
    if breakdown:
        signal.signal(signal.SIGUSR2, snapshot)
    atexit.register(write_figures)
    sys.argv = [app, *([f"--max_uploads={max_uploads}"] if max_uploads else [])]
    sys.path.insert(0, os.path.dirname(os.path.abspath(app)))  # as `python app.py` does, for its siblings
    runpy.run_path(app, run_name="__main__")


class Stage(Measured, Program):
    """A stage serving on a free port, through serve() above, until stop()."""

    def __init__(self, stage, db_uri, db_name, breakdown=False, max_uploads=None):
        port, self.breakdown = free_port(), breakdown
        self.stats = tempfile.NamedTemporaryFile(suffix=".json")
        command = [sys.executable, __file__, "--serve", ROOT / stage / "app.py", self.stats.name,
                   *(["--breakdown"] if breakdown else []), *([f"--max-uploads={max_uploads}"] if max_uploads else [])]
        super().__init__(command, port, {"PORT": str(port), "MONGODB_URI": db_uri, "MONGODB_DB": db_name})

    def figures(self):
        """Its figures (see serve()), once it has stopped."""
        with open(self.stats.name) as file:
            text = file.read()
        self.stats.close()
        if not text:
            raise SystemExit("error: the server did not write its collector's figures")
        return json.loads(text)

    def count_pauses_from_now(self):
        self.process.send_signal(signal.SIGUSR1)

    def snapshot(self):
        if self.breakdown:
            self.process.send_signal(signal.SIGUSR2)


# --- The load generator ---


async def request(reader, writer, request_bytes):
    """Send a request, read its answer: (status, latency in ms)."""
    start = time.perf_counter()
    writer.write(request_bytes)
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(int(re.search(rb"\r\nContent-Length: *(\d+)", head, re.I)[1]))
    return int(head.split(None, 2)[1]), (time.perf_counter() - start) * 1000


async def visitors(port, count, interval, seconds, server, on_connected, idle=0):
    """`count` kept-alive connections, each asking for LIGHT_REQUEST every `interval`
    seconds for `seconds`, and `idle` more that ask once, first, then wait: (latencies
    in ms, errors). on_connected() runs once every connection has had its first answer."""
    request_bytes = f"GET {LIGHT_REQUEST} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    opening = asyncio.Semaphore(OPENING_AT_ONCE)
    latencies, errors = [], 0

    async def connect():
        async with opening:
            return await asyncio.open_connection("127.0.0.1", port)

    idlers = [await connect() for _ in range(idle)]
    for reader, writer in idlers:
        await request(reader, writer, request_bytes)
    connections = await asyncio.gather(*(connect() for _ in range(count)))
    answered = asyncio.Event()
    first_answers = 0
    server.count_pauses_from_now()
    start = time.monotonic()

    async def visitor(n, reader, writer):
        nonlocal errors, first_answers
        due = start + interval * n / count  # the first requests, spread over the interval
        first = True
        while due < start + seconds:
            await asyncio.sleep(due - time.monotonic())
            try:
                code, latency = await request(reader, writer, request_bytes)
                latencies.append(latency)
                errors += code != 200
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                return
            if first:
                first, first_answers = False, first_answers + 1
                if first_answers == count:
                    answered.set()
            due += interval
        writer.close()

    async def when_all_answered():
        await answered.wait()
        on_connected()

    watcher = asyncio.ensure_future(when_all_answered())
    await asyncio.gather(*(visitor(n, *connection) for n, connection in enumerate(connections)))
    if not answered.is_set():
        watcher.cancel()
        on_connected()
    for _, writer in idlers:
        writer.close()
    return latencies, errors


async def trickled_uploads(port, photo, count, seconds):
    """`count` PUTs of `photo`, each sending its bytes a piece at a time over `seconds`
    / 2, the first ones starting first: how many were stored (201)."""
    client = Client(f"http://127.0.0.1:{port}")
    await client.visit()  # the XSRF cookie, that each upload sends back
    pieces = 64
    piece = -(-len(photo) // pieces)

    async def upload(n):
        await asyncio.sleep(seconds / 2 * n / count)
        async with RawConnection(client) as connection:
            await connection.send_headers("PUT", f"/upload/trickle{n}.jpg",
                                          ["Content-Type: image/jpeg", f"Content-Length: {len(photo)}"])
            for offset in range(0, len(photo), piece):
                await connection.send(photo[offset : offset + piece])
                await asyncio.sleep(seconds / 2 / pieces)
            status, _, _ = await connection.response(timeout=None)
        return status == 201

    return sum(await asyncio.gather(*(upload(n) for n in range(count))))


def measure(stage, connections, interval, seconds, uploads=0, idle=0, breakdown=False):
    """Serve `stage` on a fresh database and put it under load: its figures."""
    with database() as (db_uri, db_name):
        # Every upload held at once, not shed: the run measures what they cost.
        with Stage(stage, db_uri, db_name, breakdown, max_uploads=uploads or None) as server:
            figures = asyncio.run(load(server, connections, interval, seconds, uploads, idle))
        served = server.figures()
        figures.update(pauses=served["pauses"], added=served["added"])
        if "Traceback" in server.output():
            raise SystemExit(f"error: {stage} logged a traceback:\n{server.output()}")
        return figures


async def load(server, connections, interval, seconds, uploads, idle):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for _ in range(3):  # warm up: the first requests load templates, compile regexes
        await request(reader, writer, f"GET {LIGHT_REQUEST} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await request(reader, writer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.close()
    await asyncio.sleep(0.5)
    figures = {"before": server.rss()}
    server.reset_peak()
    server.snapshot()

    def connected():
        figures["connected"] = server.rss()
        server.snapshot()

    work = [visitors(server.port, connections, interval, seconds, server, connected, idle)]
    if uploads:
        work.append(trickled_uploads(server.port, photo_jpeg(1), uploads, seconds))
    results = await asyncio.gather(*work)
    figures["latencies"], figures["errors"] = results[0]
    figures["stored"] = results[1] if uploads else None
    figures["peak"] = server.peak()
    return figures


def report(name, figures, connections):
    latencies = sorted(figures["latencies"])
    growth = figures["connected"] - figures["before"]
    pauses = [ms for _, ms in figures["pauses"]]
    by_generation = "/".join(str(sum(1 for g, _ in figures["pauses"] if g == generation)) for generation in range(3))
    print(f"{name:8} {growth:+10.1f} MB {growth * MB / connections / 1000:10.1f} KB "
          f"{percentile(latencies, 50):7.1f} ms {percentile(latencies, 99):7.1f} ms {latencies[-1]:7.1f} ms "
          f"{figures['errors']:7d} {max(pauses, default=0):7.0f} ms {sum(pauses):7.0f} ms {by_generation:>9}")


def breakdown(quick):
    """Where the memory of part 4's kept-alive connections goes, by line of code."""
    raise_open_files_limit()
    connections = 100 if quick else 1000
    # Noted once each has been answered, 2 s in, while they keep asking for 8 s.
    figures = measure(STAGES["part4"], connections, interval=2, seconds=8, breakdown=True)
    total = sum(size for _, size, _ in figures["added"])
    print(f"What each of {connections} kept-alive connections holds in part 4, once answered: "
          f"{total / connections:.0f} bytes of Python's allocations (tracemalloc)")
    print(f"{'bytes':>7} {'blocks':>7}  allocated at")
    for where, size, count in figures["added"][:25]:
        where = source_path(where)
        print(f"{size / connections:7.0f} {count / connections:7.1f}  {where}")


def main():
    parser = command_line(__doc__, "300 connections for 2 s, 10 uploads")
    parser.add_argument("--connections", type=int, default=10_000, help="kept-alive connections (default 10,000)")
    parser.add_argument("--interval", type=float, default=10, help="seconds between two requests of a connection")
    parser.add_argument("--seconds", type=float, default=60, help="of requests (default 60)")
    parser.add_argument("--uploads", type=int, default=0, help="also a run of part 4 with this many uploads")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="part3, part4 or both")
    parser.add_argument("--idle", type=int, default=0, help="more connections, that ask once and then wait")
    parser.add_argument("--breakdown", action="store_true",
                        help="where a connection's memory goes in part 4, by line of code (1,000 connections)")
    parser.add_argument("--serve", nargs=2, metavar=("APP", "STATS"), help=argparse.SUPPRESS)  # the server
    parser.add_argument("--max-uploads", type=int, help=argparse.SUPPRESS)  # the server's --max_uploads
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve, args.breakdown, args.max_uploads)
        return
    if args.breakdown:
        breakdown(args.quick)
        return
    if args.quick:
        args.connections, args.interval, args.seconds, args.uploads = 300, 1, 2, 10
    raise_open_files_limit()
    # The load generator holds thousands of connections too: its own collector must
    # not pause it, or the pauses would be counted as the server's.
    gc.disable()
    idle = f" (and {args.idle} idle)" if args.idle else ""
    print(f"{args.connections} kept-alive connections{idle}, each asking for {LIGHT_REQUEST} every {args.interval:g} s, "
          f"for {args.seconds:g} s; one process; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"{'':8} {'once connected':>13} {'a connection':>13} {'p50':>10} {'p99':>10} {'max':>10} {'errors':>7} "
          f"{'the collector: longest':>22} {'in all':>8} {'gen 0/1/2':>9}")
    results = {}
    for name in args.stages:
        results[name] = measure(STAGES[name], args.connections, args.interval, args.seconds, idle=args.idle)
        report(name.replace("part", "part "), results[name], args.connections)
    print(f"{'target':8} {'':>13} {TARGETS['bytes a connection'] / 1000:10.1f} KB {'':>10} "
          f"{TARGETS['p99 ms']:7.1f} ms {'':>10} {TARGETS['errors']:7d}   (for part 4)")
    if args.uploads:
        figures = measure(STAGES["part4"], args.connections, args.interval, args.seconds, args.uploads)
        part4 = StageCode(load_stage("part4_production"))
        # What each may take: a connection its target; an upload a GridFS chunk waiting
        # to be whole, and the piece Tornado reads at a time; the thumbnails their budget.
        upload = part4.CHUNK_SIZE + 64 * 1024
        budget = part4.options.decode_budget
        bound = args.connections * TARGETS["bytes a connection"] + args.uploads * upload + budget
        print(f"\npart 4 with {args.uploads} uploads of a photo trickling in beside, each over {args.seconds / 2:g} s:")
        report("part 4", figures, args.connections)
        print(f"stored {figures['stored']} of {args.uploads} uploads; peak memory "
              f"{figures['peak'] - figures['before']:+.1f} MB, against {bound / MB:.0f} MB: "
              f"{args.connections} connections at {TARGETS['bytes a connection'] / 1000:.0f} KB, {args.uploads} uploads "
              f"at {upload / 1024:.0f} KiB and the decode budget, {budget / MiB:.0f} MiB")


if __name__ == "__main__":
    main()
