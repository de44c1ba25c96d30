"""Part 3's benchmarks still run: each script's --quick mode prints its figures.

No timing is checked (this machine's speed is not the code's), only that every
row the lesson quotes is printed, with numbers in it."""

import asyncio
import os
import re
import sys

import pytest

from coursekit.processes import unmeasured
from coursekit.stages import ROOT

RUNS_ON = []  # the benchmarks start the stages they measure
pytestmark = pytest.mark.takes(20)

NUMBER = r"[+-]?\d+(\.\d+)?"
SCRIPTS = {
    "big_downloads.py": [
        # MB/s, the ratio, memory, CPU a GiB, the first byte: first answer, later ones
        rf"part 3, /uploads/<id>/orig +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s +{NUMBER} ms +{NUMBER} ms",
        rf"part 3, READS_AHEAD = 1 +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s",
        rf"part 3, CHUNKS_PER_READ = 4 +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s",
        rf"part 3, CHUNKS_PER_READ = 16 +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s",
        rf"Motor's GridFSHandler +{NUMBER} +{NUMBER}x +\+{NUMBER} MB",
        rf"the driver alone \(readchunk\) +{NUMBER} +1\.00x",
        rf"part 3 vs GridFSHandler +{NUMBER}x",
        rf"part 3, /files/<name> +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s +{NUMBER} ms +{NUMBER} ms",
        rf"part 3, DISK_READ_SIZE = 64 KiB +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s",
        rf"part 3, reads on a thread +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s",
        rf"Tornado's StaticFileHandler +{NUMBER} +1\.00x +\+{NUMBER} MB +{NUMBER} s +{NUMBER} ms +{NUMBER} ms",
        rf"StaticFileHandler, 1 MiB reads +{NUMBER} +{NUMBER}x +\+{NUMBER} MB +{NUMBER} s +{NUMBER} ms",
        r"nginx \(sendfile\) +[\d.]+ +[\d.]+x +[\d.]+ ms|nginx is not installed: its figures are skipped",
    ],
    "slow_client.py": [
        rf"part 3: {NUMBER} MB/s, memory grew by {NUMBER} MB",
        rf"Motor's GridFSHandler: {NUMBER} MB/s, memory grew by {NUMBER} MB",
    ],
    "partial_reads.py": [
        rf"part 3 +200 +{NUMBER} +{NUMBER} +{NUMBER} MB +{NUMBER} MB",
        rf"part 3, READ_AHEAD_FROM = 0 +200 +{NUMBER} +{NUMBER} +{NUMBER} MB +{NUMBER} MB",
        rf"Motor's GridFSHandler +2 +{NUMBER} +{NUMBER} +{NUMBER} MB +{NUMBER} MB",
        rf"Tornado's StaticFileHandler +200 +{NUMBER} +{NUMBER} +{NUMBER} MB +{NUMBER} MB",
    ],
    "big_upload.py": [
        rf"the driver alone \(insert_one\) +{NUMBER} +1\.00x +\+{NUMBER} MB",
        rf"part 3, streamed \(PUT\) +{NUMBER} +{NUMBER}x +\+{NUMBER} MB",
        rf"part 4, streamed \(PUT\) +{NUMBER} +{NUMBER}x +\+{NUMBER} MB",
        rf"part 2, buffered \(POST form\) +{NUMBER} +\+{NUMBER} MB",
        rf"GridFSUpload \(part 3\) +{NUMBER} +{NUMBER}x +\+{NUMBER} MB",
        rf"Motor's open_upload_stream\(\), \d+ MiB +{NUMBER} +{NUMBER}x +\+{NUMBER} MB",
        # Where the CPU went, per GiB: event loop, threads, database (if on this machine), curl, seconds.
        rf"part 3, streamed \(PUT\) +{NUMBER} +{NUMBER} +({NUMBER}|-) +{NUMBER} +{NUMBER}$",
    ],
}


async def test_the_benchmarks_print_their_figures(mongodb_uri):
    async def run(script):
        process = await asyncio.create_subprocess_exec(
            sys.executable, ROOT / "bench" / script, "--quick",
            env={**unmeasured(os.environ), "MONGODB_URI": mongodb_uri},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 600)
        return process.returncode, output.decode()

    results = await asyncio.gather(*(run(script) for script in SCRIPTS))
    for (script, rows), (status, output) in zip(SCRIPTS.items(), results):
        assert status == 0, f"{script} failed:\n{output}"
        for row in rows:
            assert re.search(rf"^(?:{row})", output, re.M), f"{script} did not print /{row}/:\n{output}"
