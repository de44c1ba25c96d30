"""How long a visitor waits when the database hangs: part 3, then part 4 and its --db_timeout.

    python bench/hung_database.py            # both stages as they start by default (about 2 minutes)
    python bench/hung_database.py --quick    # part 4 with --db_timeout=1; part 3 given up on after 5 s

Each stage runs as a program on an embedded database of its own, and a photo is
uploaded. Then the database hangs: it is stopped with SIGSTOP, so its port still
takes connections and nothing answers, as when a server freezes or a network
drops packets. Pages are asked for in turn, each on a new connection and timed:
the home page, the photo, the home page again. Then the database goes on
(SIGCONT), and the time until the home page answers 200 again is timed too.
"""

import argparse
import http.client
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

from common import photo_jpeg
from harness import Program, course, process_on_port, put_file

PAGES = ["/", "{photo}", "/"]


def ask(url, path, timeout):
    """(status, seconds) of GET `path`; status None if no answer came within `timeout`."""
    port = int(url.rsplit(":", 1)[1])
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - start
    except TimeoutError:
        return None, time.perf_counter() - start
    finally:
        connection.close()


def measure(stage, args, patience, storage):
    port = course.free_port()
    with course.embedded_db(port, storage / stage) as uri, \
            Program(stage, uri, f"bench_{uuid.uuid4().hex[:8]}", args) as program:
        photo = storage / "photo.jpg"
        photo.write_bytes(photo_jpeg(0.1))
        _, upload_id = put_file(program.url, photo)
        database = process_on_port(port)
        answers = []
        os.kill(database, signal.SIGSTOP)
        try:
            for path in PAGES:
                answers.append(ask(program.url, path.format(photo=f"/uploads/{upload_id}/orig"), patience))
        finally:
            os.kill(database, signal.SIGCONT)
        start = time.perf_counter()
        while ask(program.url, "/", patience)[0] != 200:
            time.sleep(0.05)
        return answers, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="part 4 with --db_timeout=1, part 3 cut at 5 s")
    args = parser.parse_args()
    patience = 5 if args.quick else 60  # how long the client waits for an answer
    runs = [("part3_streaming", "part 3", []),
            ("part4_production", "part 4", ["--db_timeout=1"] if args.quick else [])]
    print(f"GET of {', '.join(PAGES)} while the database hangs (the client waits {patience} s at most)")
    with tempfile.TemporaryDirectory(prefix="bench-hung-") as storage:
        for stage, label, stage_args in runs:
            answers, recovery = measure(stage, stage_args, patience, Path(storage))
            waits = ", ".join(f"{seconds:.1f} s ({status or 'no answer'})" for status, seconds in answers)
            options = " ".join(stage_args) or "defaults"
            print(f"{label} ({options}): {waits}; 200 again {recovery:.2f} s after the database went on")


if __name__ == "__main__":
    main()
