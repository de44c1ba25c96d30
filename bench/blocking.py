"""What blocking the event loop costs: part 2's latency while big photos are uploaded.

    python bench/blocking.py            # eight 24-megapixel JPEGs at once, five times over
    python bench/blocking.py --quick    # two 2-megapixel JPEGs, once: checks the script works

Part 2 is served twice, by a child process each time: once making thumbnails on
the event loop itself (`make_app(db, thumbnail_executor=InlineExecutor())`), once on its
thread pool (the default). While the uploads are in flight, a light request (a
small static file, which needs neither the database nor Pillow) is sent every 5 ms,
and its latency measured: that is how long the server keeps a visitor waiting.
The database is MONGODB_URI's if set, else the embedded one. Timings depend on
what else the machine is doing: the load average is printed too.
"""

import argparse
import asyncio
import http.client
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from coursekit.clients import Client
from coursekit.database import database_of_its_own, scratch_db
from coursekit.executors import InlineExecutor
from coursekit.images import photo_jpeg
from coursekit.processes import Program, free_port
from coursekit.stages import StageCode, load_stage, stage_module
from harness import Measured, allow_requests, command_line, percentile

MODES = {"inline": "on the event loop", "executor": "on the thread pool"}
LIGHT_REQUEST = "/static/style.css"
PING_INTERVAL = 0.005  # seconds between two light requests


async def serve(mode, port, mongodb_uri, db_name, workers):
    """Serve part 2 on 127.0.0.1:port, with thumbnails made in `mode`: the child process."""
    from motor.motor_tornado import MotorClient

    part2 = StageCode(load_stage("part2_thumbnails"))
    if mode == "inline":
        executor = InlineExecutor()
    else:
        executor = ThreadPoolExecutor(workers) if workers else None  # None: the stage's own pool
    app = part2.make_app(MotorClient(mongodb_uri)[db_name], thumbnail_executor=executor)
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


async def upload(client, jpeg, name):
    """Upload `jpeg` through the home page's form, as a browser does."""
    response = await client.upload(jpeg, name, "image/jpeg")
    if response.code != 302:
        raise SystemExit(f"error: an upload got {response.code}: {response.body[:300]!r}")


def ping_until(done, port):
    """Latencies (ms) of the light request, sent PING_INTERVAL apart until `done` is set.

    A request that waited 100 ms stands for the 20 visitors who would have arrived,
    5 ms apart, while it waited, and waited a little less each: they are counted
    too (no "coordinated omission"). A thread of its own and a kept-alive connection
    keep the uploads running on this process's event loop out of the measure."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    latencies = []
    while True:
        start = time.perf_counter()
        connection.request("GET", LIGHT_REQUEST)
        connection.getresponse().read()
        waited = (time.perf_counter() - start) * 1000
        latencies += [waited - n * PING_INTERVAL * 1000 for n in range(int(waited / (PING_INTERVAL * 1000)) + 1)]
        if done.wait(PING_INTERVAL):
            break
    connection.close()
    return latencies


async def latencies_during_uploads(server, jpeg, uploads, rounds):
    """Light-request latencies (ms) while `uploads` uploads are in flight, `rounds`
    times; and how long each round of uploads took (s)."""
    allow_requests(uploads)
    client = Client(server.url)
    await upload(client, jpeg, "warm-up.jpg")  # threads, connections and decoders ready
    latencies, durations = [], []
    for round_ in range(rounds):
        start = time.perf_counter()
        in_flight = asyncio.gather(*(upload(client, jpeg, f"r{round_}-{n}.jpg") for n in range(uploads)))
        done = threading.Event()
        in_flight.add_done_callback(lambda _: done.set())
        latencies += await asyncio.to_thread(ping_until, done, server.port)
        await in_flight
        durations.append(time.perf_counter() - start)
    return latencies, durations


class Server(Measured, Program):
    """This script run with --serve: part 2 with thumbnails made in `mode`, on a free port."""

    def __init__(self, mode, db_uri, db_name, workers):
        port = free_port()
        super().__init__([sys.executable, __file__, "--serve", mode, "--port", port, "--db-uri", db_uri,
                          "--db-name", db_name, "--workers", workers], port)


def measure(mode, jpeg, args, db_uri):
    """Serve part 2 in `mode` in a child process, on a fresh database, and measure it."""
    with database_of_its_own(db_uri, "bench") as db_name, Server(mode, db_uri, db_name, args.workers) as server:
        return asyncio.run(latencies_during_uploads(server, jpeg, args.uploads, args.rounds))


def run(args, db_uri):
    jpeg = photo_jpeg(args.megapixels)
    workers = args.workers or stage_module("part2_thumbnails", "thumbnails").THUMBNAIL_THREADS
    print(f"GET {LIGHT_REQUEST} while {args.uploads} uploads of a {args.megapixels}-megapixel JPEG "
          f"({len(jpeg) / 1e6:.1f} MB) are in flight, {args.rounds} time(s); {os.cpu_count()} cores, "
          f"{workers} thumbnail thread(s); load average {os.getloadavg()[0]:.2f}")
    p99 = {}
    for mode, where in MODES.items():
        latencies, durations = measure(mode, jpeg, args, db_uri)
        p50, p99[mode] = percentile(latencies, 50), percentile(latencies, 99)
        # No padding to a width: the lesson shows this output, compared with yours digit run by digit run.
        print(f"thumbnails {where:18}: p50 {p50:.1f} ms   p99 {p99[mode]:.1f} ms   "
              f"max {max(latencies):.1f} ms   ({len(latencies)} requests; "
              f"the uploads took {statistics.median(durations):.2f} s a round)")
    print(f"p99 ratio, loop / pool: {p99['inline'] / p99['executor']:.1f}x")


def main():
    parser = command_line(__doc__, "small images, two uploads, one round")
    parser.add_argument("--uploads", type=int, default=8, help="uploads in flight at once (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="how many times (default 5)")
    parser.add_argument("--megapixels", type=int, default=24, help="of the JPEG uploaded (default 24)")
    parser.add_argument("--workers", type=int, default=0,
                        help="thumbnail threads (default: part 2's own pool, one per core less one)")
    # The child process that serves part 2:
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db-uri", help=argparse.SUPPRESS)
    parser.add_argument("--db-name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.uploads, args.rounds, args.megapixels = 2, 1, 2
    if args.serve:
        try:
            asyncio.run(serve(args.serve, args.port, args.db_uri, args.db_name, args.workers))
        except KeyboardInterrupt:
            pass
        return
    with scratch_db() as uri:
        run(args, uri)


if __name__ == "__main__":
    main()
