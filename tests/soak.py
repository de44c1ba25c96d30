"""Soak a stage: many concurrent uploads and downloads of random files, for a
bounded time, on 127.0.0.1; every file checked by SHA-256.

    .venv/bin/python tests/soak.py                      # part3_streaming for 60 s
    .venv/bin/python tests/soak.py part1_basic --seconds 30 --clients 8

It serves the stage as a program (`python <stage>/app.py`), on MONGODB_URI or the
embedded database, and prints the counts that must all be zero (server errors,
mismatched downloads, lost files) and the app's memory at the start and the end.
tests/test_soak.py runs a short soak of every stage in the test suite."""

import argparse
import asyncio
import dataclasses
import hashlib
import io
import random
import sys
import time
import uuid
from pathlib import Path

import psutil
from PIL import Image
from pymongo import MongoClient
from tornado.httpclient import AsyncHTTPClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import ORIGINAL_PATHS, STAGES, Client, course, stage_program  # noqa: E402


@dataclasses.dataclass
class Counts:
    uploads: int = 0
    downloads: int = 0
    bytes_moved: int = 0
    server_errors: int = 0
    mismatches: int = 0
    lost: int = 0

    def failures(self):
        return self.server_errors + self.mismatches + self.lost


def random_image(rng, max_side):
    """A PNG of random noise: it compresses badly, so its size follows its sides."""
    width, height = rng.randint(1, max_side), rng.randint(1, max_side)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(buffer, "PNG")
    return buffer.getvalue()


class Soak:
    def __init__(self, stage, base_url, db, seconds, clients, max_side, seed):
        self.stage, self.base_url, self.db = stage, base_url, db
        self.deadline = time.monotonic() + seconds
        self.clients, self.max_side = clients, max_side
        self.rng = random.Random(seed)
        self.counts = Counts()
        self.stored = {}  # name -> SHA-256 of what was uploaded and accepted

    def original_path(self, name):
        """Where the stage serves the file uploaded as `name`, or None if it has no record."""
        document = self.db.imgs.find_one({"filename": name}) or self.db.fs.files.find_one({"filename": name})
        return document and ORIGINAL_PATHS[self.stage].format(document["_id"])

    async def worker(self):
        client = Client(self.base_url)
        while time.monotonic() < self.deadline:
            if self.stored and self.rng.random() < 0.5:
                await self.download(client, self.rng.choice(list(self.stored)))
            else:
                await self.upload(client)

    async def upload(self, client):
        data = random_image(self.rng, self.max_side)
        name = f"soak-{uuid.uuid4().hex}.png"
        try:
            response = await client.upload(data, name)
        except OSError:
            self.counts.server_errors += 1
            return
        self.counts.uploads += 1
        self.counts.bytes_moved += len(data)
        if response.code in (201, 302, 303):
            self.stored[name] = hashlib.sha256(data).hexdigest()
        else:
            self.counts.server_errors += 1

    async def download(self, client, name):
        path = await asyncio.to_thread(self.original_path, name)
        if path is None:
            self.counts.lost += 1
            return
        try:
            response = await client.fetch(path)
        except OSError:
            self.counts.server_errors += 1
            return
        self.counts.downloads += 1
        self.counts.bytes_moved += len(response.body)
        if response.code >= 500:
            self.counts.server_errors += 1
        elif response.code == 404:
            self.counts.lost += 1
        elif hashlib.sha256(response.body).hexdigest() != self.stored[name]:
            self.counts.mismatches += 1

    async def run(self):
        AsyncHTTPClient.configure(None, max_clients=self.clients)
        await asyncio.gather(*(self.worker() for _ in range(self.clients)))
        # At the end, every file that was accepted must come back whole.
        client = Client(self.base_url)
        for name in list(self.stored):
            await self.download(client, name)
        return self.counts


def soak(stage, uri, seconds, clients, max_side, seed=1):
    """Serve `stage` on the MongoDB at `uri`, soak it, print and return the counts and
    the app's memory (in MB) at the start and the end."""
    db_name = f"soak_{uuid.uuid4().hex[:8]}"
    with stage_program(stage, uri, db_name) as program, MongoClient(uri) as mongo:
        app = psutil.Process(program.process.pid)
        memory_start = app.memory_info().rss / 1e6
        started = time.monotonic()
        counts = asyncio.run(Soak(stage, program.url, mongo[db_name], seconds, clients, max_side, seed).run())
        elapsed = time.monotonic() - started
        memory_end = app.memory_info().rss / 1e6
        mongo.drop_database(db_name)
    print(f"{stage}: {elapsed:.0f} s, {clients} clients, {counts.uploads} uploads, {counts.downloads} downloads, "
          f"{counts.bytes_moved / 1e6:.0f} MB moved")
    print(f"  server errors {counts.server_errors}, mismatches {counts.mismatches}, lost files {counts.lost}")
    print(f"  app memory {memory_start:.0f} MB at the start, {memory_end:.0f} MB at the end")
    return counts, memory_start, memory_end


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", nargs="?", default=STAGES[-1], choices=STAGES)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-side", type=int, default=1200, help="largest image side, in pixels")
    args = parser.parse_args()
    with course.scratch_db() as uri:
        counts, _, _ = soak(args.stage, uri, args.seconds, args.clients, args.max_side)
    return 1 if counts.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
