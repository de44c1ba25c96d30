"""Soak a stage: many concurrent uploads and downloads of random files, mixed with
hostile requests, for a bounded time, on 127.0.0.1; every file checked by SHA-256.

    .venv/bin/python -m coursekit.soak                  # the last stage, part5_live, for 60 s
    .venv/bin/python -m coursekit.soak part1_basic --seconds 30 --clients 8

It runs the stage as a program (`python <stage>/app.py`), on MONGODB_URI or the
embedded database, and prints the counts that must all be zero (server errors,
answered or logged; mismatched downloads; lost files) and the app's memory at the
start and the end. Hostile requests (damaged images, disguised names, odd headers,
cross-site posts) are a share of all (`--hostile`); any answer but a 5xx or silence
will do for them. tests/test_soak.py runs a short soak of every stage in the test
suite, through soak()."""

import argparse
import asyncio
import dataclasses
import hashlib
import io
import random
import re
import sys
import time
import uuid
from urllib.parse import urlsplit

import psutil
from PIL import Image
from pymongo import MongoClient
from tornado.httpclient import AsyncHTTPClient

from .clients import Client, RawConnection
from .database import scratch_db
from .images import (corrupt_png, image_bytes, png_header, png_with_a_broken_chunk_list, png_with_a_text_bomb,
                     png_with_a_truncated_header, truncated_jpeg)
from .processes import StageProgram
from .stages import ORIGINAL_PATHS, RECORDS, STAGES

DAMAGED_IMAGES = [png_with_a_text_bomb(), png_with_a_broken_chunk_list(), png_with_a_truncated_header(),
                  truncated_jpeg(), corrupt_png(), png_header(20_000, 20_000)]
BAD_NAMES = ["photo\u202egnp.exe", "a\u2067b.png", "next\u0085line.png", "n" * 1000 + ".png"]
ODD_RANGES = [{"Range": "bytes=\u00b2-\u00b3"}, {"Range": f"bytes={'9' * 5000}-"}, {"Range": f"bytes=0-{'9' * 5000}"},
              {"Range": "bytes=5-", "If-Range": '"another"'}, {"Range": "bytes=0-0,-1"}]
ODD_HEADS = ["Content-Length: \u00b2", f"Content-Length: {'9' * 5000}", "Transfer-Encoding: chunked"]
# How Tornado logs an answer of 500 or more, or an exception no handler caught.
LOGGED_SERVER_ERROR = re.compile(r"\b5\d\d (GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) |Uncaught exception")


@dataclasses.dataclass
class Counts:
    uploads: int = 0
    downloads: int = 0
    hostile: int = 0
    bytes_moved: int = 0
    server_errors: int = 0  # answered with a 5xx, or not at all
    logged_server_errors: int = 0  # in the app's log
    mismatches: int = 0
    lost: int = 0
    seconds: float = 0  # how long it ran
    memory_start: float = 0  # the app's, in MB
    memory_end: float = 0

    def failures(self):
        return self.server_errors + self.logged_server_errors + self.mismatches + self.lost


def random_image(rng, max_side):
    """A PNG of random noise: it compresses badly, so its size follows its sides."""
    width, height = rng.randint(1, max_side), rng.randint(1, max_side)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(buffer, "PNG")
    return buffer.getvalue()


class Soak:
    def __init__(self, stage, base_url, db, seconds, clients, max_side, seed, hostile=0.0):
        self.stage, self.base_url, self.db = stage, base_url, db
        self.deadline = time.monotonic() + seconds
        self.clients, self.max_side, self.hostile_share = clients, max_side, hostile
        self.rng = random.Random(seed)
        self.counts = Counts()
        self.stored = {}  # name -> SHA-256 of what was uploaded and accepted

    def original_path(self, name):
        """Where the stage serves the file uploaded as `name`, or None if it has no record."""
        document = (self.db[RECORDS[self.stage]].find_one({"filename": name})
                    or self.db.fs.files.find_one({"filename": name}))
        return document and ORIGINAL_PATHS[self.stage].format(document["_id"])

    async def worker(self):
        client = Client(self.base_url)
        while time.monotonic() < self.deadline:
            if self.rng.random() < self.hostile_share:
                await self.hostile(client)
            elif self.stored and self.rng.random() < 0.5:
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

    async def hostile(self, client):
        """One request as a careless or hostile client sends it: any answer but a 5xx will do."""
        self.counts.hostile += 1
        kind = self.rng.choice(["damaged image", "bad name", "odd range", "odd head", "cross-site post"])
        try:
            if kind == "damaged image":
                status = (await client.upload(self.rng.choice(DAMAGED_IMAGES), f"hostile-{uuid.uuid4().hex}.png")).code
            elif kind == "bad name":
                status = (await client.upload(image_bytes(), self.rng.choice(BAD_NAMES))).code
            elif kind == "odd range" and self.stored:
                path = await asyncio.to_thread(self.original_path, self.rng.choice(list(self.stored)))
                status = (await client.fetch(path or "/", headers=self.rng.choice(ODD_RANGES))).code
            elif kind == "odd head":
                status = await self.raw_post(client, self.rng.choice(ODD_HEADS))
            else:
                status = (await client.upload(image_bytes(), "forged.png", headers={
                    "Sec-Fetch-Site": "cross-site", "Origin": "https://elsewhere.example"})).code
        except OSError:
            status = None
        if status is None or status >= 500:
            self.counts.server_errors += 1

    async def raw_post(self, client, header):
        """POST `header` as it is, with no XSRF token, where the home page's form posts:
        the status, or None if no answer came."""
        if client.form_action is None:
            await client.visit()
        async with RawConnection(self.base_url) as connection:
            await connection.send_headers("POST", urlsplit(client.form_action).path, [header], b"zz\r\n")
            try:
                status, _, _ = await connection.response(timeout=30)
            except asyncio.IncompleteReadError:  # closed with no answer
                return None
        return status

    async def run(self):
        AsyncHTTPClient.configure(None, max_clients=self.clients)
        await asyncio.gather(*(self.worker() for _ in range(self.clients)))
        # At the end, every file that was accepted must come back whole.
        client = Client(self.base_url)
        for name in list(self.stored):
            await self.download(client, name)
        return self.counts


def soak(stage, program, db, seconds, clients, max_side, seed=1, hostile=0.2):
    """Soak `stage`, running as `program` (a StageProgram, started) on the pymongo
    database `db`; return the Counts, the app's memory at the start and the end with them."""
    app = psutil.Process(program.process.pid)
    memory_start = app.memory_info().rss / 1e6
    started = time.monotonic()
    counts = asyncio.run(Soak(stage, program.url, db, seconds, clients, max_side, seed, hostile).run())
    counts.seconds = time.monotonic() - started
    counts.memory_start, counts.memory_end = memory_start, app.memory_info().rss / 1e6
    counts.logged_server_errors = len(LOGGED_SERVER_ERROR.findall(program.output()))
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m coursekit.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", nargs="?", default=STAGES[-1], choices=STAGES)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-side", type=int, default=1200, help="largest image side, in pixels")
    parser.add_argument("--hostile", type=float, default=0.2, help="the share of hostile requests (0.2)")
    args = parser.parse_args(argv)
    db_name = f"soak_{uuid.uuid4().hex[:8]}"
    with scratch_db() as uri, MongoClient(uri) as mongo:
        try:
            with StageProgram(args.stage, uri, db_name) as program:
                counts = soak(args.stage, program, mongo[db_name], args.seconds, args.clients, args.max_side,
                              hostile=args.hostile)
        finally:
            mongo.drop_database(db_name)
    print(f"{args.stage}: {counts.seconds:.0f} s, {args.clients} clients, {counts.uploads} uploads, "
          f"{counts.downloads} downloads, {counts.hostile} hostile requests, {counts.bytes_moved / 1e6:.0f} MB moved")
    print(f"  server errors {counts.server_errors} (logged: {counts.logged_server_errors}), "
          f"mismatches {counts.mismatches}, lost files {counts.lost}")
    print(f"  app memory {counts.memory_start:.0f} MB at the start, {counts.memory_end:.0f} MB at the end")
    return 1 if counts.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
