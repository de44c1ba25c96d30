"""Full downloads of a big file (1 GiB), from GridFS and from disk, with curl.

    python bench/big_downloads.py            # 1 GiB, 5 runs of each
    python bench/big_downloads.py --quick    # 32 MiB, 2 runs: checks the script works

From GridFS: part 3 (/uploads/<id>/orig) beside Motor's GridFSHandler, and beside
the driver alone reading the same file with readchunk(), no HTTP at all. From
disk: part 3 (/files/<name>) beside Tornado's StaticFileHandler, and nginx when it
is installed. Runs take turns, after a warm-up, and the medians are printed, with
the growth of each server's resident memory (the largest over its runs).
"""

from harness import (MiB, Server, big_file, command_line, download, gridfs_file_id, median, memory, nginx, put_file,
                     ratio, read_with_driver)


def measure(name, runs, get, server=None):
    """Median MB/s of `runs` calls of get() after one warm-up, and the memory growth."""
    get()
    speeds, growths = [], []
    for _ in range(runs):
        if server:
            with memory(server) as figures:
                speeds.append(get())
            growths.append(figures["growth"])
        else:
            speeds.append(get())
    return {"name": name, "speed": median(speeds), "speeds": speeds, "growth": max(growths, default=None)}


def show(title, rows, reference):
    print(f"\n{title}")
    print(f"{'':34} {'MB/s':>7} {'vs ' + reference['name'][:14]:>18} {'memory':>9}   runs (MB/s)")
    for row in rows:
        growth = f"+{row['growth']:.1f} MB" if row["growth"] is not None else ""
        runs = " ".join(f"{speed:.0f}" for speed in row["speeds"])
        print(f"{row['name']:34} {row['speed']:7.0f} {ratio(row['speed'], reference['speed']):>18} {growth:>9}   {runs}")


def main():
    parser = command_line(__doc__, "a small file, few runs")
    args = parser.parse_args()
    size, runs = (32 * MiB, 2) if args.quick else (1024 * MiB, 5)

    with big_file(size) as (path, db_uri, db_name):
        files_dir = path.parent
        print(f"Downloads of a {size / MiB:.0f} MiB file with curl, median of {runs} runs")
        with Server("part3", db_uri, db_name, files_dir) as part3, \
                Server("gridfshandler", db_uri, db_name) as handler, \
                Server("static", db_uri, db_name, files_dir) as static:
            seconds, location = put_file(part3.url, path)
            print(f"(stored in GridFS through part 3's PUT at {size / 1e6 / seconds:.0f} MB/s)")
            file_id = gridfs_file_id(db_uri, db_name, path.name)

            gridfs = [
                measure("part 3, /uploads/<id>/orig", runs, lambda: download(part3.url + location, size),
                        part3),
                measure("Motor's GridFSHandler", runs, lambda: download(f"{handler.url}/fs/{file_id}", size), handler),
                measure("the driver alone (readchunk)", runs, lambda: read_with_driver(db_uri, db_name, file_id)),
            ]
            show("From GridFS", gridfs, gridfs[2])
            print(f"{'part 3 vs GridFSHandler':34} {'':7} {ratio(gridfs[0]['speed'], gridfs[1]['speed']):>18}"
                  "   (targets: >= 1.00x the driver, >= 1.10x GridFSHandler)")

            with nginx(files_dir) as nginx_url:
                disk = [
                    measure("part 3, /files/<name>", runs, lambda: download(f"{part3.url}/files/big.bin", size), part3),
                    measure("Tornado's StaticFileHandler", runs,
                            lambda: download(f"{static.url}/static/big.bin", size), static),
                ]
                if nginx_url:
                    disk.append(measure("nginx (sendfile)", runs, lambda: download(f"{nginx_url}/static/big.bin", size)))
            show("From disk", disk, disk[1])
            if nginx_url:
                print(f"{'part 3 vs nginx':34} {'':7} {ratio(disk[0]['speed'], disk[2]['speed']):>18}")
            print(f"{'':34} {'':7} {'':18}   (targets: >= 1.50x StaticFileHandler, >= 0.75x nginx,"
                  " memory +24 MB at most)")


if __name__ == "__main__":
    main()
