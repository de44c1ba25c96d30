"""A big upload (1 GiB): parts 3 and 4 stream it into GridFS, part 2 buffers it
first; beside them, the database driver's own rate, and GridFS written in one
process without HTTP, by part 3's GridFSUpload and by Motor's open_upload_stream().

    python bench/big_upload.py            # 1 GiB, 3 runs of each
    python bench/big_upload.py --quick    # 32 MiB, 1 run: checks the script works
    python bench/big_upload.py --profile  # then two more part 3 uploads, under cProfile

Parts 3 and 4 get it by PUT (curl -T), as the lesson does. Part 2 gets the same
bytes in a form (curl -F), its body limits raised to 2 GiB for the comparison:
Tornado reads the whole body into memory before the handler runs, and the multipart
parser copies the file out of it. The file is random bytes, so part 2 then refuses
it (it takes images only, 400): the memory was spent all the same.

The driver alone is a child process inserting the file's 255 KiB chunks with
Motor's insert_one(), each awaited before the next, into the same database server:
the rate it takes them one at a time, the mark for an upload (which, one insert
under way while the next chunk arrives, may pass it). "vs driver" is the median of
each run's speed over that run's driver speed (the runs take turns). In child
processes too, with no HTTP, the file is fed 64 KiB at a time, as Tornado feeds
data_received, to part 3's GridFSUpload and to Motor's open_upload_stream(), whose
GridIn gathers up to 48 MB of chunks before it inserts any: their memory shows it.
open_upload_stream() gets the file's first 256 MiB only: its 48 MB inserts of a
whole 1 GiB made the embedded database grow past 10 GB, and on (it was killed);
past 48 MB, its memory no longer grows with the file.

With --profile, part 3 takes the file twice more, under cProfile: once timed by the
wall clock, once by its event loop's CPU time; the functions that took the most
time of their own are printed with both.

Between two uploads the database is dropped and the stages' indexes made again:
each starts from the same empty collections, and the disk holds one upload at a
time. (The embedded database's memory grows all the same, to 6-7 GB over a full run
here.) Then where the CPU went, in seconds per GiB: the writing process's main
thread (the event loop: HTTP, our code) and its other threads (Motor's, which
encode and send each insert), the database server (if it runs on this machine) and
curl; beside the seconds the upload took. Two cores serve them all: the load
average is printed.
"""

import asyncio
import math
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path

from motor.motor_tornado import MotorClient

from coursekit.stages import StageCode, load_stage
from harness import (MB, MiB, Server, big_file, command_line, cpu_seconds, curl_upload, database_process, median,
                     memory, put_file, ratio, write_in_child)

COLUMNS = ("loop", "threads", "database", "curl", "seconds")
GRIDIN_LIMIT = 256 * MiB  # what open_upload_stream() is given of the file (see above)


def emptied(db_uri, db_name):
    """Drop the database, then make the indexes that the stages make at start-up
    (part 4's create_indexes() makes part 3's and its own)."""
    async def empty():
        client = MotorClient(db_uri)
        await client.drop_database(db_name)
        await StageCode(load_stage("part4_production")).create_indexes(client[db_name])
        client.close()

    asyncio.run(empty())


def children_cpu():
    """CPU seconds of this process's children that have ended (curl's, the writers')."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def upload_with_curl(server, upload, db_pid):
    """Run upload() (curl to `server`): its figures, as write_in_child() gives them."""
    loop, threads = cpu_seconds(server.process.pid)
    database, curl = sum(cpu_seconds(db_pid)) if db_pid else 0, children_cpu()
    with memory(server) as growth:
        start = time.perf_counter()
        upload()
        seconds = time.perf_counter() - start
    loop_after, threads_after = cpu_seconds(server.process.pid)
    return {"seconds": seconds, "growth": growth["growth"], "loop": loop_after - loop,
            "threads": threads_after - threads, "curl": children_cpu() - curl,
            "database": sum(cpu_seconds(db_pid)) - database if db_pid else None}


def write_alone(writer, db_uri, db_name, path, db_pid, limit=None):
    """write_in_child(), and the database's CPU meanwhile."""
    database = sum(cpu_seconds(db_pid)) if db_pid else 0
    figures = write_in_child(writer, db_uri, db_name, path, limit)
    figures["size"] = min(limit or math.inf, path.stat().st_size)
    figures["database"] = sum(cpu_seconds(db_pid)) - database if db_pid else None
    return figures


def show_profile(wall, cpu, count=14):
    """The functions in which the event loop's thread spent the most time of its own,
    by the wall clock (`wall`'s figures, waits included) and in CPU time (`cpu`'s)."""
    by_wall, by_cpu = pstats.Stats(str(wall)), pstats.Stats(str(cpu))
    print(f"\nWhere part 3's event loop spent its time, an upload under cProfile by the wall clock "
          f"({by_wall.total_tt:.1f} s in all, waits included), another by its CPU time ({by_cpu.total_tt:.1f} s);"
          " a coroutine's calls count its resumptions:")
    print(f"{'own s':>7} {'own CPU s':>10} {'with callees':>13} {'calls':>8}   function")
    rows = sorted(by_wall.stats.items(), key=lambda item: item[1][2], reverse=True)[:count]
    for key, (_, calls, own, cumulative, _) in rows:
        file, line, function = key
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
        own_cpu = by_cpu.stats[key][2] if key in by_cpu.stats else 0
        print(f"{own:7.2f} {own_cpu:10.2f} {cumulative:13.2f} {calls:8d}   {function} ({where})")


def main():
    parser = command_line(__doc__, "a small file, one run")
    parser.add_argument("--profile", action="store_true", help="two more part 3 uploads, under cProfile")
    args = parser.parse_args()
    size, runs = (32 * MiB, 1) if args.quick else (1024 * MiB, 3)
    load_before = os.getloadavg()[0]

    with big_file(size) as (path, db_uri, db_name), \
            Server("part3", db_uri, db_name) as part3, Server("part4", db_uri, db_name) as part4, \
            Server("part2", db_uri, db_name) as part2:
        db_pid = database_process(db_uri)
        names = {
            "driver": "the driver alone (insert_one)",
            "part3": "part 3, streamed (PUT)",
            "part4": "part 4, streamed (PUT)",
            "part2": "part 2, buffered (POST form)",
            "gridfsupload": "GridFSUpload (part 3)",
            "open_upload_stream": f"Motor's open_upload_stream(), {min(size, GRIDIN_LIMIT) // MiB} MiB",
        }
        ways = {
            "driver": lambda: write_alone("driver", db_uri, db_name, path, db_pid),
            "part3": lambda: upload_with_curl(part3, lambda: put_file(part3.url, path), db_pid),
            "part4": lambda: upload_with_curl(part4, lambda: put_file(part4.url, path), db_pid),
            # Part 2 refuses the random bytes (400), once it has spent the memory.
            "part2": lambda: upload_with_curl(part2, lambda: curl_upload(part2.url, path, form=True,
                                                                         expected=(302, 400)), db_pid),
            "gridfsupload": lambda: write_alone("gridfsupload", db_uri, db_name, path, db_pid),
            "open_upload_stream": lambda: write_alone("open_upload_stream", db_uri, db_name, path, db_pid,
                                                      GRIDIN_LIMIT),
        }
        results = {way: [] for way in ways}
        for _ in range(runs):  # in turns: each run's driver speed is measured beside its uploads
            for way, measure in ways.items():
                emptied(db_uri, db_name)
                results[way].append(measure())

        def speed(figures):
            return figures.get("size", size) / MB / figures["seconds"]

        driver = results["driver"]
        print(f"Uploads of a {size / MiB:.0f} MiB file, median of {runs} runs; "
              f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after ({os.cpu_count()} cores)")
        print(f"{'':36} {'MB/s':>6} {'vs driver':>10} {'memory peak':>12} {'peak / file size':>17}")
        for way in ways:
            if way == "gridfsupload":
                print("In one process, no HTTP, fed 64 KiB at a time:")
            speeds = [speed(figures) for figures in results[way]]
            # Part 2 stores nothing (it refuses the file): no ratio to the driver's rate.
            versus = "" if way == "part2" else ratio(median([s / speed(d) for s, d in zip(speeds, driver)]), 1)
            growth = max(figures["growth"] for figures in results[way])
            print(f"{names[way]:36} {median(speeds):6.0f} {versus:>10} {growth:+9.1f} MB "
                  f"{growth / (results[way][0].get('size', size) / MB):16.1f}x")
        part3_growth = max(max(figures["growth"] for figures in results["part3"]), 0.1)
        print(f"(part 2 needs {max(f['growth'] for f in results['part2']) / part3_growth:.0f} times part 3's "
              "memory; targets for parts 3 and 4: +24 MB at most, 0.85x the driver's rate)")

        print(f"\nCPU seconds per GiB, median{'':10} {'event loop':>10} {'threads':>8} {'database':>9} {'curl':>6} "
              f"{'took':>6}")
        for way in ways:
            cells = []
            for column in COLUMNS:
                known = [figures[column] * 1024 * MiB / figures.get("size", size) for figures in results[way]
                         if figures.get(column) is not None]
                cells.append(f"{median(known):.1f}" if known else "-")
            print(f"{names[way]:36} {cells[0]:>10} {cells[1]:>8} {cells[2]:>9} {cells[3]:>6} {cells[4]:>6}")

        if args.profile:
            with tempfile.TemporaryDirectory(prefix="bench-profile-") as folder:
                for clock in ("wall", "cpu"):
                    with Server("part3", db_uri, db_name, profile=Path(folder) / clock, clock=clock) as profiled:
                        emptied(db_uri, db_name)
                        put_file(profiled.url, path)
                show_profile(Path(folder) / "wall", Path(folder) / "cpu")


if __name__ == "__main__":
    main()
