"""Part 1: an image served from GridFS, streamed or read whole, fetched with curl.

    python bench/image_download.py            # 200 MB, 5 runs of each
    python bench/image_download.py --quick    # 50 MB, 2 runs: what part 1's lesson runs
    python bench/image_download.py --size 200 # a 200 MB file

Streamed is part 1 as it is: ShowImageHandler hands the file to Motor's
stream_to_handler(), which reads a chunk (255 KiB), writes it, and goes on to the
next. Read whole is part 1's smallest version of that chapter,
part1_basic/small/whole_image.py: `await grid_out.read()`, every chunk joined in
memory, then written. Both serve the same file, stored once in GridFS by the driver,
each as a program of its own. For each: the time to the answer's first byte and to
its last (medians), and how much the server's resident memory grew during a
download (the largest over the runs).
"""

import os
import sys

from harness import MB, Measured, Stage, command_line, curl, database, median, memory
from pymongo import MongoClient
from gridfs import GridFSBucket

from coursekit.processes import Program, free_port
from coursekit.stages import ROOT


class Small(Measured, Program):
    """A small version of part 1, `python part1_basic/small/NAME.py`, on a free port."""

    def __init__(self, name, db_uri, db_name):
        port = free_port()
        env = {"PORT": str(port), "MONGODB_URI": db_uri, "MONGODB_DB": db_name}
        super().__init__([sys.executable, ROOT / "part1_basic" / "small" / name], port, env)


def store(db_uri, db_name, size):
    """A file of `size` random bytes in GridFS, said to be a PNG: its id."""
    with MongoClient(db_uri) as client:
        return GridFSBucket(client[db_name]).upload_from_stream(
            "big.png", os.urandom(size), metadata={"contentType": "image/png"})


def fetch(server, file_id, size):
    """One download with curl: (seconds to the first byte, to the last, MB the server grew)."""
    with memory(server) as grown:
        code, received, speed, first_byte = curl(f"{server.url}/imgs/{file_id}")
    if code != 200 or received != size:
        raise SystemExit(f"error: {server.url}/imgs/{file_id} gave {code} and {received} bytes, not {size}")
    return first_byte, received / speed, grown["growth"]


def main():
    parser = command_line(__doc__, "a 50 MB file, 2 runs of each")
    parser.add_argument("--size", type=int, help="the file's size in MB (default: 200, or 50 with --quick)")
    args = parser.parse_args()
    size, runs = (50_000_000, 2) if args.quick else (200_000_000, 5)
    size = args.size * 1_000_000 if args.size else size
    with database() as (db_uri, db_name):
        file_id = store(db_uri, db_name, size)
        with Stage("part1_basic", db_uri, db_name) as streamed, Small("whole_image.py", db_uri, db_name) as whole:
            servers = {"streamed (part 1)": streamed, "read whole (small/whole_image.py)": whole}
            figures = {name: [] for name in servers}
            for name, server in servers.items():
                fetch(server, file_id, size)  # a warm-up: the first request of a process
            for _ in range(runs):
                for name, server in servers.items():  # in turns: other work weighs on both alike
                    figures[name].append(fetch(server, file_id, size))
    print(f"a {size / MB:.0f} MB image from GridFS, {runs} runs of each; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, runs_of in figures.items():
        first, last, grown = zip(*runs_of)
        print(f"{name:34}: first byte after {median(first) * 1000:.0f} ms, last after {median(last) * 1000:.0f} ms, "
              f"memory grew by {max(grown):.0f} MB")


if __name__ == "__main__":
    main()
