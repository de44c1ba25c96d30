"""A slow client (20 MB/s) downloads a big file (200 MB) from GridFS.

    python bench/slow_client.py            # 200 MB at 20 MB/s: 10 s a server
    python bench/slow_client.py --quick    # 20 MB: checks the script works

A server that waits for the client (part 3 awaits flush()) holds a few chunks at a
time; one that does not (Motor's GridFSHandler, whose stream_to_handler() calls
flush() without awaiting it) reads the file as fast as the database gives it, and
keeps what the client has not taken yet in memory.
"""

from harness import MB, big_file, command_line, download, gridfs_servers, memory

RATE = "20M"  # curl's --limit-rate: 20 MiB/s


def main():
    parser = command_line(__doc__, "a small file")
    args = parser.parse_args()
    size = 20 * 10**6 if args.quick else 200 * 10**6

    with big_file(size) as (path, db_uri, db_name), gridfs_servers(path, db_uri, db_name) as servers:
        print(f"A client reading a {size / MB:.0f} MB file from GridFS at {RATE}B/s (curl --limit-rate):")
        results = {}
        for name, (server, url) in servers.items():
            download(url, size)  # warm-up, at full speed
            with memory(server) as figures:
                speed = download(url, size, "--limit-rate", RATE)
            results[name] = figures["growth"]
            # Not padded to a width: part 3's lesson shows these lines, and a learner's
            # figures may have more digits or fewer.
            print(f"{name}: {speed:.1f} MB/s, memory grew by {max(figures['growth'], 0):.1f} MB")
        growth, other = results["part 3"], results["Motor's GridFSHandler"]
        print(f"(part 3 grows {other / max(growth, 0.1):.0f} times less; target: +16 MB at most)")


if __name__ == "__main__":
    main()
