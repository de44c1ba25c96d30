"""Full downloads of a big file (1 GiB), from GridFS and from disk, with curl.

    python bench/big_downloads.py            # 1 GiB, 5 runs of each
    python bench/big_downloads.py --quick    # 32 MiB, 2 runs: checks the script works
    python bench/big_downloads.py --runs 9   # more runs: steadier medians on a busy machine

From GridFS: part 3 (/uploads/<id>/orig) beside Motor's GridFSHandler, and beside
the driver alone reading the same file with readchunk(), no HTTP at all. From
disk: part 3 (/files/<name>) beside Tornado's StaticFileHandler, a subclass of it
that reads 1 MiB at a time where it reads 64 KiB (the read size alone changed),
and nginx when it is installed.

Part 3 also runs with one of its choices changed (harness.py's --set and
--disk-reads-on-a-thread), each against the choice its code makes: how many reads
run ahead of what is sent (READS_AHEAD: 2, against 1), how many chunks a GridFS
read asks for at most (CHUNKS_PER_READ: 8, against 4 and 16), how much a disk read
takes (DISK_READ_SIZE: 1 MiB, against 64 KiB), and disk reads on the event loop
against reads on a thread.

The servers of a table are started together; after a warm-up of each, they take
turns, a run each, so that whatever else the machine does weighs on all alike. The
medians are printed, with the growth of each server's resident memory (the largest
over its runs), the CPU time it used per GiB sent (which other work on the machine
hardly changes, unlike the speed), and the time to the first byte of the answer: of
the warm-up, the server's first request for the file, and the median of the runs.
StaticFileHandler makes its ETag at a path's first request by hashing the file,
before it sends anything: all of it, or 64 MiB of a bigger file (which then gets
no ETag); it keeps the result while it runs.
"""

import contextlib
import os

from harness import MiB, Server, big_file, command_line, gridfs_file_id, median, memory, nginx, put_file, ratio, \
    read_with_driver, timed_download

GiB = 1024 * MiB
GRIDFS_VARIANTS = [  # part 3 with one choice changed: (the row's name, harness.py's options)
    ("part 3, READS_AHEAD = 1", ["--set", "downloads.READS_AHEAD=1"]),
    ("part 3, CHUNKS_PER_READ = 4", ["--set", "gridfs_chunks.CHUNKS_PER_READ=4"]),
    ("part 3, CHUNKS_PER_READ = 16", ["--set", "gridfs_chunks.CHUNKS_PER_READ=16"]),
]
DISK_VARIANTS = [
    ("part 3, READS_AHEAD = 1", ["--set", "downloads.READS_AHEAD=1"]),
    ("part 3, DISK_READ_SIZE = 64 KiB", ["--set", f"disk_files.DISK_READ_SIZE={64 * 1024}"]),
    ("part 3, reads on a thread", ["--disk-reads-on-a-thread"]),
]


def measure_in_turns(rows, runs):
    """Each row's get() once, as a warm-up (a server's first request for the file), then
    `runs` rounds in which each row's get() runs once in turn, so that whatever else the
    machine does weighs on all rows alike. rows: (name, get, server or None); get()
    returns (MB/s, seconds to the first byte, or None). For each row: the median MB/s,
    the memory growth (the largest), and the seconds to the first byte of the warm-up
    and the runs' median."""
    first_requests = [get()[1] for _, get, _ in rows]
    runs_of = [{"speeds": [], "first bytes": [], "growths": [], "cpu": []} for _ in rows]
    for _ in range(runs):
        for (_, get, server), figures in zip(rows, runs_of):
            with memory(server) if server else contextlib.nullcontext({}) as used:
                cpu = server.cpu_seconds() if server else None
                speed, first_byte = get()
            figures["speeds"].append(speed)
            figures["first bytes"].append(first_byte)
            if server:
                figures["growths"].append(used["growth"])
                figures["cpu"].append(server.cpu_seconds() - cpu)
    return [{"name": name, "speed": median(figures["speeds"]), "speeds": figures["speeds"],
             "growth": max(figures["growths"], default=None), "first request": first_request,
             "first byte": None if first_request is None else median(figures["first bytes"]),
             "cpu": median(figures["cpu"]) if figures["cpu"] else None}
            for (name, _, _), figures, first_request in zip(rows, runs_of, first_requests)]


def served(stack, name, kind, path, size, db_uri, db_name, files_dir=None, args=()):
    """A row of measure_in_turns(): downloads of `path` from a server of `kind`, started
    in `stack`."""
    server = stack.enter_context(Server(kind, db_uri, db_name, files_dir, args))
    return name, lambda: timed_download(server.url + path, size), server


def show(title, rows, reference, size):
    print(f"\n{title}")
    print(f"{'':34} {'MB/s':>7} {'vs ' + reference['name'][:14]:>18} {'memory':>9} {'CPU/GiB':>8}"
          f" {'first byte: first, runs':>24}   runs (MB/s)")
    for row in rows:
        growth = f"+{row['growth']:.1f} MB" if row["growth"] is not None else ""
        cpu = f"{row['cpu'] * GiB / size:6.2f} s" if row["cpu"] is not None else ""
        first_byte = (f"{row['first request'] * 1000:8.1f} ms {row['first byte'] * 1000:7.1f} ms"
                      if row["first byte"] is not None else "")
        runs = " ".join(f"{speed:.0f}" for speed in row["speeds"])
        print(f"{row['name']:34} {row['speed']:7.0f} {ratio(row['speed'], reference['speed']):>18} {growth:>9}"
              f" {cpu:>8} {first_byte:>24}   {runs}")


def main():
    parser = command_line(__doc__, "a small file, few runs")
    parser.add_argument("--runs", type=int, help="runs of each row (5; 2 with --quick)")
    args = parser.parse_args()
    size, runs = (32 * MiB, 2) if args.quick else (1024 * MiB, 5)
    runs = args.runs or runs

    with big_file(size) as (path, db_uri, db_name):
        files_dir = path.parent
        print(f"Downloads of a {size / MiB:.0f} MiB file with curl, median of {runs} runs; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        with Server("part3", db_uri, db_name) as part3:
            seconds, location = put_file(part3.url, path)
        print(f"(stored in GridFS through part 3's PUT at {size / 1e6 / seconds:.0f} MB/s)")
        file_id = gridfs_file_id(db_uri, db_name, path.name)

        with contextlib.ExitStack() as stack:
            rows = [served(stack, name, "part3", location, size, db_uri, db_name, args=options)
                    for name, options in [("part 3, /uploads/<id>/orig", []), *GRIDFS_VARIANTS]]
            rows.append(served(stack, "Motor's GridFSHandler", "gridfshandler", f"/fs/{file_id}", size, db_uri,
                               db_name))
            rows.append(("the driver alone (readchunk)", lambda: (read_with_driver(db_uri, db_name, file_id), None),
                         None))
            gridfs = measure_in_turns(rows, runs)
        show("From GridFS", gridfs, gridfs[-1], size)
        print(f"{'part 3 vs GridFSHandler':34} {'':7} {ratio(gridfs[0]['speed'], gridfs[-2]['speed']):>18}"
              "   (targets: >= 1.00x the driver, >= 1.10x GridFSHandler)")

        with contextlib.ExitStack() as stack:
            rows = [served(stack, name, "part3", "/files/big.bin", size, db_uri, db_name, files_dir, options)
                    for name, options in [("part 3, /files/<name>", []), *DISK_VARIANTS]]
            rows += [served(stack, name, kind, "/static/big.bin", size, db_uri, db_name, files_dir)
                     for name, kind in [("Tornado's StaticFileHandler", "static"),
                                        ("StaticFileHandler, 1 MiB reads", "static-1mib")]]
            nginx_url = stack.enter_context(nginx(files_dir))
            if nginx_url:
                rows.append(("nginx (sendfile)", lambda: timed_download(f"{nginx_url}/static/big.bin", size), None))
            disk = measure_in_turns(rows, runs)
        show("From disk", disk, disk[len(DISK_VARIANTS) + 1], size)
        if nginx_url:
            print(f"{'part 3 vs nginx':34} {'':7} {ratio(disk[0]['speed'], disk[-1]['speed']):>18}")
        print(f"{'':34} {'':7} {'':18}   (targets: >= 1.50x StaticFileHandler, >= 0.75x nginx,"
              " memory +24 MB at most)")
        print(f"(load average {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
