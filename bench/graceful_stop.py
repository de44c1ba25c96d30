"""What a SIGTERM does to the uploads under way: part 3, which dies at once, then part 4 and its graceful stop.

    python bench/graceful_stop.py            # part 4 with its default --shutdown_timeout (25 s): about 40 s
    python bench/graceful_stop.py --quick    # part 4 with --shutdown_timeout=3: about 10 s

Each stage runs as a program, as an operator runs it, on a database of its own.
Two uploads start, each a PUT on a connection of its own, as `curl -T` sends a
file: A sends its file steadily, a piece every 0.1 s, and would end about 1.5 s
after the SIGTERM; B sends 320 KiB at once (more than a GridFS chunk, so one is
stored) and then nothing, like a client gone quiet. The
SIGTERM comes 0.5 s in, as `docker stop` or `systemctl stop` sends it. The script
prints what each client saw and when, counted from the start of the uploads: the
answers, a new connection tried after the SIGTERM, the process's exit, then what
is left in the database, and the lines part 4 logged about its stop.
"""

import asyncio
import os
import signal
import time

from pymongo import MongoClient

from coursekit.clients import Client, RawConnection
from harness import Stage, command_line, database

SIGTERM_AT = 0.5  # seconds after the uploads start
PIECE = 64 * 1024  # what upload A sends every PACE seconds
PACE = 0.1
PIECES = 20  # upload A: 1.25 MiB in 2 s, so it ends 1.5 s after the SIGTERM
QUIET_AFTER = 5  # pieces upload B sends at once before it goes quiet: 320 KiB, a chunk stored


def status_line(head):
    """"201 Created" from an answer's first bytes; the Retry-After too, if any."""
    lines = head.decode("latin-1").split("\r\n")
    text = lines[0].split(" ", 1)[1]
    retry = [line for line in lines if line.lower().startswith("retry-after:")]
    return text + (f", {retry[0]}" if retry else "")


async def upload(client, name, pieces, pace, seen, clock):
    """A PUT of `pieces` pieces of PIECE bytes, one every `pace` seconds (None: all at
    once, then silence); record when its answer came, and what it was, in `seen`."""
    size = PIECE * (pieces if pace else 16)
    try:
        async with RawConnection(client) as connection:
            await connection.send_headers("PUT", f"/upload/{name}.bin", [f"Content-Length: {size}"])
            for _ in range(pieces):
                await connection.send(os.urandom(PIECE))
                if pace:
                    await asyncio.sleep(pace)
            head = await asyncio.wait_for(connection.reader.readuntil(b"\r\n\r\n"), 60)
            seen.append((clock(), f"upload {name}: {status_line(head)}"))
    except (ConnectionError, asyncio.IncompleteReadError):
        seen.append((clock(), f"upload {name}: no answer, the connection was closed"))


async def new_connection(url, seen, clock):
    host, port = url.removeprefix("http://").split(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
        writer.close()
        seen.append((clock(), "a new connection: accepted"))
    except ConnectionRefusedError:
        seen.append((clock(), "a new connection: refused"))


async def stop_during_uploads(program):
    """Start the two uploads, send SIGTERM, wait for the process to end: the events seen."""
    client = Client(program.url)
    await client.visit()  # the XSRF cookie, as a visitor has it
    start = time.perf_counter()
    seen = []

    def clock():
        return time.perf_counter() - start

    uploads = [asyncio.create_task(upload(client, "A", PIECES, PACE, seen, clock)),
               asyncio.create_task(upload(client, "B", QUIET_AFTER, None, seen, clock))]
    await asyncio.sleep(SIGTERM_AT)
    program.process.send_signal(signal.SIGTERM)
    seen.append((clock(), "SIGTERM"))
    await asyncio.sleep(0.1)  # for the process to take the signal
    await new_connection(program.url, seen, clock)
    status = await asyncio.to_thread(program.process.wait)
    seen.append((clock(), f"the process exits, status {status}"))
    await asyncio.gather(*uploads)
    # In this order, whatever the order they came in: the same lines at each run.
    order = ["SIGTERM", "a new", "upload A", "upload B", "the process"]
    return sorted(seen, key=lambda event: [event[1].startswith(start) for start in order].index(True))


def measure(stage, args):
    with database() as (db_uri, db_name), Stage(stage, db_uri, db_name, args) as program:
        seen = asyncio.run(stop_during_uploads(program))
        log = program.output()
        with MongoClient(db_uri) as mongo:
            files = sorted(file["filename"] for file in mongo[db_name]["fs.files"].find())
            chunks = mongo[db_name]["fs.chunks"].count_documents({})
    print(f"{stage} {' '.join(args)}".rstrip())
    for when, what in seen:
        print(f"  {when:5.2f} s  {what}")
    print(f"  left in the database: {len(files)} files {files}, {chunks} chunks")
    for line in log.splitlines():
        if "stopping" in line:
            print("  its log:", line.split("] ", 1)[-1])


def main():
    parser = command_line(__doc__, "part 4 with --shutdown_timeout=3")
    quick = parser.parse_args().quick
    print(f"Two uploads: A ends {PIECES * PACE - SIGTERM_AT:.1f} s after the SIGTERM, B has sent "
          f"{QUIET_AFTER * PIECE // 1024} KiB and gone quiet. SIGTERM at {SIGTERM_AT} s.")
    measure("part3_streaming", [])
    measure("part4_production", ["--shutdown_timeout=3"] if quick else [])
    print("load average:", " ".join(f"{load:.2f}" for load in os.getloadavg()))


if __name__ == "__main__":
    main()
