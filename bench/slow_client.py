"""A slow client (20 MB/s) downloads a big file (200 MB) from GridFS.

    python bench/slow_client.py            # 200 MB at 20 MB/s: 10 s a server
    python bench/slow_client.py --quick    # 20 MB: checks the script works

A server that waits for the client (part 3 awaits flush()) holds a few chunks at a
time; one that does not (Motor's GridFSHandler, whose stream_to_handler() calls
flush() without awaiting it) reads the file as fast as the database gives it, and
keeps what the client has not taken yet in memory.
"""

import argparse
import tempfile
from pathlib import Path

from harness import MB, Server, database, download, gridfs_file_id, memory, put_file, random_file

RATE = "20M"  # curl's --limit-rate: 20 MiB/s


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small file")
    args = parser.parse_args()
    size = 20 * 10**6 if args.quick else 200 * 10**6

    with tempfile.TemporaryDirectory(prefix="bench-files-") as files_dir, database() as (db_uri, db_name):
        path = random_file(Path(files_dir) / "big.bin", size)
        with Server("part3", db_uri, db_name) as part3, Server("gridfshandler", db_uri, db_name) as handler:
            _, upload_id = put_file(part3.url, path)
            file_id = gridfs_file_id(db_uri, db_name, upload_id)
            print(f"A client reading a {size / MB:.0f} MB file from GridFS at {RATE}B/s (curl --limit-rate)")
            print(f"{'':24} {'MB/s':>6} {'memory peak':>12}")
            results = {}
            for name, server, url in [("part 3", part3, f"{part3.url}/imgs/{upload_id}/orig"),
                                      ("Motor's GridFSHandler", handler, f"{handler.url}/fs/{file_id}")]:
                download(url, size)  # warm-up, at full speed
                with memory(server) as figures:
                    speed = download(url, size, "--limit-rate", RATE)
                results[name] = figures["growth"]
                print(f"{name:24} {speed:6.1f} {figures['growth']:+9.1f} MB")
        growth, other = results["part 3"], results["Motor's GridFSHandler"]
        print(f"(part 3 grows {other / max(growth, 0.1):.0f} times less; target: +16 MB at most)")


if __name__ == "__main__":
    main()
