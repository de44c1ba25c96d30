"""A process out of file descriptors: part 3, then part 4 and its pausing listener.

    python bench/descriptors.py            # 5 s out of descriptors for each stage
    python bench/descriptors.py --quick    # 1 s: checks the script works

Each stage runs as a program allowed 64 open files (its soft and hard limits, set
before it starts), on the embedded database. One client connects and is answered;
then 150 more connect at once, far more than the process can accept, and stay
connected. Meanwhile the first client asks again, and the lines the stage logs and
the CPU time it burns are counted. Then the crowd goes away, and a new client tries.
"""

import http.client
import os
import resource
import socket
import time

from harness import Stage, command_line, database

LIMIT = 64  # open files the stage may have
CROWD = 150  # connections at once: more than the process can hold, fewer than its backlog


def few_files():
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def cpu_seconds(pid):
    """User and system CPU time of process `pid` so far, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(stage, seconds, db_uri, db_name):
    with Stage(stage, db_uri, db_name, preexec=few_files) as program:
        kept = http.client.HTTPConnection("127.0.0.1", program.port, timeout=30)
        kept.request("GET", "/")
        kept.getresponse().read()
        lines_before, cpu_before = len(program.output().splitlines()), cpu_seconds(program.process.pid)
        crowd = [socket.create_connection(("127.0.0.1", program.port)) for _ in range(CROWD)]
        time.sleep(seconds)
        lines = program.output().splitlines()[lines_before:]
        cpu = cpu_seconds(program.process.pid) - cpu_before
        start = time.perf_counter()
        kept.request("GET", "/")
        kept_status = kept.getresponse().status
        kept_wait = time.perf_counter() - start
        for sock in crowd:
            sock.close()
        start = time.perf_counter()
        fresh = http.client.HTTPConnection("127.0.0.1", program.port, timeout=30)
        fresh.request("GET", "/")
        fresh_status = fresh.getresponse().status
        fresh_wait = time.perf_counter() - start
        fresh.close()
        kept.close()
    return {
        "lines": len(lines) / seconds,
        "bytes": sum(len(line) + 1 for line in lines) / seconds,
        "errors": sum("Too many open files" in line for line in lines) / seconds,
        "cpu": cpu / seconds,
        "kept": f"{kept_status} in {kept_wait:.2f} s",
        "fresh": f"{fresh_status} in {fresh_wait:.2f} s",
    }


def main():
    parser = command_line(__doc__, "1 s out of descriptors, not 5")
    args = parser.parse_args()
    seconds = 1 if args.quick else 5
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)  # the crowd
    print(f"{CROWD} connections at once to a stage allowed {LIMIT} open files, for {seconds} s")
    print(f"{'':8} {'log lines/s':>12} {'log MB/s':>9} {'EMFILE lines/s':>15} {'CPU':>6}   "
          f"{'a kept connection':>18}   {'a new one, after':>16}")
    with database() as (db_uri, db_name):
        for stage, label in (("part3_streaming", "part 3"), ("part4_production", "part 4")):
            row = measure(stage, seconds, db_uri, db_name)
            print(f"{label:8} {row['lines']:12.0f} {row['bytes'] / 1e6:9.2f} {row['errors']:15.0f} {row['cpu']:6.0%}   "
                  f"{row['kept']:>18}   {row['fresh']:>16}")


if __name__ == "__main__":
    main()
