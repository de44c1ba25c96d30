"""What a second process buys: part 4's requests per second with 1 and with 2 processes.

    python bench/processes.py            # 10 s of load a run, three runs of each
    python bench/processes.py --quick    # 2 s, one run of each: checks the script works

Part 4 runs as a learner runs it, `python part4_production/app.py --processes=N`,
on 127.0.0.1. A few photos are uploaded, then a load generator asks for their
thumbnails (`GET /uploads/<id>/thumb`, small PNGs) from 16 clients at once, each
asking again as soon as its answer is in, for a fixed time. The load generator is
a process of its own: wrk if it is installed (Debian: `apt install wrk`), else a
small asyncio client, this script run with `--load`.

Each request comes on a new connection, as from many visitors. The processes share
one listening socket, and the one that accepts a connection serves all its
requests: 16 kept-alive connections opened at once may all go to one process, and
the figures then vary from run to run with the split. `--keep-alive` shows that.

Everything shares this machine's cores: the app's processes, the database (the
embedded one, unless MONGODB_URI is set) and the load generator. The ratio shows
what a second process buys here; the load average is printed too.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from coursekit.clients import Client
from coursekit.database import database_of_its_own, scratch_db
from coursekit.images import photo_jpeg
from harness import Stage, command_line

PHOTOS = 4  # uploaded, and their thumbnails asked for in turn


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


# --- The load generators: each a process of its own ---


def run_wrk(port, paths, args, seconds):
    """(answers, seconds, errors) from wrk, asking for `paths` in turn."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("paths = {%s}\nn = 0\n" % ", ".join(f'"{path}"' for path in paths))
        script.write("request = function()\n  n = n %% #paths + 1\n  return wrk.format(\"GET\", paths[n])\nend\n")
        script.flush()
        command = ["wrk", "--threads", "1", "--connections", str(args.connections), "--duration", f"{seconds}s",
                   "--script", script.name, f"http://127.0.0.1:{port}"]
        if not args.keep_alive:
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


def run_python_client(port, paths, args, seconds):
    """(answers, seconds, errors) from this script run with --load."""
    command = [sys.executable, __file__, "--load", str(port), *paths, "--connections", str(args.connections),
               "--seconds", str(seconds)] + (["--keep-alive"] if args.keep_alive else [])
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


def requests_per_second(processes, photos, args, mongodb_uri, db_name, generate_load):
    """Serve part 4 with `processes` processes and measure it."""
    # --logging=warning: no log line for each request
    with Stage("part4_production", mongodb_uri, db_name, [f"--processes={processes}", "--logging=warning"]) as app:
        paths = asyncio.run(upload(app.url, photos))
        generate_load(app.port, paths, args, 1)  # warm up: the processes' connections to the database, caches
        answers, seconds, errors = generate_load(app.port, paths, args, args.seconds)
    if errors:
        raise SystemExit(f"error: {errors} of {answers} answers were not 200")
    return answers / seconds


def run(args, mongodb_uri):
    generate_load, generator = (run_wrk, "wrk") if shutil.which("wrk") else (run_python_client, "asyncio client")
    connections = "kept-alive connections" if args.keep_alive else "clients, a new connection per request"
    print(f"GET /uploads/<id>/thumb of {PHOTOS} photos for {args.seconds} s from {args.connections} {connections}, "
          f"{args.runs} run(s) each; load generator: {generator}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    photos = [photo_jpeg(1, quality=80 + n) for n in range(PHOTOS)]
    rates = {1: [], 2: []}
    for _ in range(args.runs):
        for processes in rates:  # in turn, so that a busy minute weighs on both
            with database_of_its_own(mongodb_uri, "bench") as db_name:
                rates[processes].append(requests_per_second(processes, photos, args, mongodb_uri, db_name,
                                                            generate_load))
    for processes, label in ((1, "1 process  "), (2, "2 processes")):
        runs = ", ".join(f"{rate:.0f}" for rate in rates[processes])
        print(f"{label}: {statistics.median(rates[processes]):.0f} requests/s (median of: {runs})")
    print(f"ratio, 2 / 1 processes: {statistics.median(rates[2]) / statistics.median(rates[1]):.2f}x "
          f"(load average now {os.getloadavg()[0]:.2f})")


def main():
    parser = command_line(__doc__, "2 s of load, one run each")
    parser.add_argument("--seconds", type=int, default=10, help="of load in a run (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="of each: the median is printed (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="clients at once (default 16)")
    parser.add_argument("--keep-alive", action="store_true", help="one kept-alive connection per client")
    # The asyncio load generator, run as a process of its own:
    parser.add_argument("--load", nargs="+", metavar=("PORT", "PATH"), help=argparse.SUPPRESS)
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
