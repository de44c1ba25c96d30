"""Part 4 under load (part4_production/README.md): what abandoned uploads leave is
swept away, safely, from several processes at once; and thumbnails are decoded
within a memory budget, whatever the number of threads; and the requests that come
by the thousand leave nothing for Python's cycle collector.

Everything runs against the real database. Where a process must die mid-upload, the
stage runs as a program (the `program` fixture) and is killed; where a client must be
slow, the test speaks HTTP by hand (the `start_upload` fixture's raw connection).
Each test gets a stage of its own: it kills one, changes its settings, or counts what
is stored or left for the collector."""

import asyncio
import collections
import contextlib
import datetime
import gc
import hashlib
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from motor.motor_tornado import MotorClient
from PIL import Image
from pymongo import monitoring
from pymongo.errors import PyMongoError

from coursekit.clients import Client, upload_collections
from coursekit.images import image_bytes
from coursekit.processes import free_port
from coursekit.waiting import eventually, wait_until

RUNS_ON = ["part4_production", "part5_live"]  # part 5 keeps what part 4 runs

CHUNK = 255 * 1024  # GridFS's chunk size, part 4's CHUNK_SIZE
MiB = 1024 * 1024
LIMIT = 30  # seconds: how long a wait may take before the test fails (a bound, not a delay)


async def chunks_of(db, file_id):
    return await db.fs.chunks.count_documents({"files_id": file_id})


async def the_upload_under_way(db):
    """The id of the one upload that `uploads_in_progress` lists, once it does."""
    async def listed():
        return await db.uploads_in_progress.find_one()
    return (await eventually(listed, timeout=LIMIT))["_id"]


# What Client.stored("uploads_in_progress") says when an upload has left nothing.
NOTHING = {"fs.files": 0, "fs.chunks": 0, "uploads": 0, "uploads_in_progress": 0}


# --- The sweep, end to end: a process killed mid-upload, another sweeping ---


@pytest.mark.takes(10)
async def test_a_killed_process_upload_is_swept_while_a_slow_live_one_survives_intact(program, db, start_upload):
    # A process dies (SIGKILL: no clean-up at all) with an upload half written.
    doomed = program()
    dead = await start_upload(Client(doomed.url), "dead.bin", 10 * MiB, os.urandom(3 * CHUNK + 1000))
    dead_id = await the_upload_under_way(db)
    await eventually(lambda: chunks_of_at_least(db, dead_id, 3), timeout=LIMIT)
    doomed.process.kill()
    doomed.process.wait()
    dead.close()
    assert await chunks_of(db, dead_id) == 3  # left behind

    # Two processes serve next, each sweeping: one upload, two sweepers.
    running = program("--processes=2", "--abandoned_after=3")
    body = os.urandom(4 * MiB)
    live = await start_upload(Client(running.url), "live.bin", len(body), body[:CHUNK])
    sent = CHUNK
    await eventually(lambda: db.uploads_in_progress.find_one({"_id": {"$ne": dead_id}}), timeout=LIMIT)
    # Slow: 16 KiB every 0.2 s, and once nothing for half of --abandoned_after;
    # for three times --abandoned_after, and until the dead upload's chunks are
    # gone. Then the rest at once.
    started = time.monotonic()
    while await chunks_of(db, dead_id) or time.monotonic() - started < 3 * 3:
        assert time.monotonic() - started < 3 * 3 + LIMIT, "the dead upload's chunks were never swept"
        await live.send(body[sent : sent + 16384])
        sent += 16384
        await asyncio.sleep(1.5 if sent == CHUNK + 10 * 16384 else 0.2)
    assert sent < len(body) // 2, "the live upload was over before the sweep"
    await eventually(lambda: no_record(db, dead_id), timeout=LIMIT)
    await live.send(body[sent:])
    status, headers, answer = await live.response(LIMIT)
    live.close()
    assert status == 201, answer
    response = await Client(running.url).fetch(headers["location"], request_timeout=60)
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(body).digest()
    assert await db.uploads_in_progress.count_documents({}) == 0
    assert running.output().count(f"swept upload {dead_id}") == 1, running.output()
    assert "Traceback" not in running.output()


async def chunks_of_at_least(db, file_id, count):
    return await chunks_of(db, file_id) >= count


async def no_record(db, file_id):
    return not await db.uploads_in_progress.count_documents({"_id": file_id})


# --- The sweep, step by step ---


class Commands(monitoring.CommandListener):
    """The commands a database client sends: (name, collection, filter)."""

    def __init__(self):
        self.sent = []

    def started(self, event):
        command = event.command
        name = event.command_name
        target = command.get(name)
        query = command.get("filter") or [delete.get("q") for delete in command.get("deletes", [])]
        self.sent.append((name, target, query))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


async def abandoned_upload(stage_code, db, size, silent_for):
    """An upload written by part 4's own GridFSUpload, then abandoned (as if its
    process had died) `silent_for` seconds ago: its id."""
    upload = stage_code.GridFSUpload(db, "abandoned.bin", "application/octet-stream")
    await upload.write(os.urandom(size))
    # write() may return with the last chunk's insert under way: a dead process's has landed.
    await eventually(lambda: chunks_of_at_least(db, upload.file["_id"], size // CHUNK), timeout=LIMIT)
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=silent_for)
    await db.uploads_in_progress.update_one({"_id": upload.file["_id"]}, {"$set": {"updated": then}})
    return upload.file["_id"]


async def test_sweepers_at_once_delete_each_abandoned_upload_once_and_spare_the_live_ones(stage, stage_code,
                                                                                           mongodb_uri, db_name, db):
    client = Client(None, db, collections=upload_collections(stage))
    abandoned = [await abandoned_upload(stage_code, db, 2 * CHUNK, silent_for=7200) for _ in range(12)]
    live = stage_code.GridFSUpload(db, "live.bin", "application/octet-stream")
    await live.write(os.urandom(2 * CHUNK))
    finished = stage_code.GridFSUpload(db, "done.bin", "application/octet-stream")
    await finished.write(os.urandom(CHUNK + 5))
    await finished.close()

    commands = Commands()
    watched = MotorClient(mongodb_uri, event_listeners=[commands])
    try:
        swept = await asyncio.gather(*(stage_code.sweep_abandoned_uploads(watched[db_name], 3600) for _ in range(4)))
    finally:
        watched.close()
    assert sum(swept) == len(abandoned)  # each one swept, by one sweeper
    assert not await db.fs.chunks.count_documents({"files_id": {"$in": abandoned}})
    assert await db.uploads_in_progress.count_documents({}) == 1  # the live one's
    assert await chunks_of(db, finished.file["_id"]) == 2

    # How the sweep finds its work: by uploads_in_progress alone. It touches fs.chunks
    # only to delete the chunks of an upload it has claimed, by that upload's id.
    for name, collection, query in commands.sent:
        if collection == "fs.chunks":
            assert name == "delete" and [q.keys() for q in query] == [{"files_id"}], (name, query)
            assert query[0]["files_id"] in abandoned
    assert ("find", "uploads_in_progress") in [sent[:2] for sent in commands.sent]

    # The live upload goes on and ends as any other.
    await live.write(b"the end")
    await live.close()
    assert await client.stored() == {"fs.files": 2, "fs.chunks": 5, "uploads": 0}
    assert await db.uploads_in_progress.count_documents({}) == 0


async def test_what_a_timed_out_insert_writes_late_is_swept(stage_code, proxied, db):
    # An insert that timed out is the client's failure alone: the server may still do
    # it, after the upload has deleted its chunks. Its record must outlive that.
    proxy, through_proxy = proxied(timeoutMS=500)
    upload = stage_code.GridFSUpload(through_proxy, "late.bin", "application/octet-stream")
    await upload.write(os.urandom(CHUNK))  # its record, and its first chunk
    await upload.inserted()
    proxy.pause()  # the database hangs, as far as the upload can tell
    await upload.write(os.urandom(CHUNK))
    with pytest.raises(PyMongoError):
        await upload.close()  # the second chunk's insert times out
    proxy.resume()
    await upload.abort()  # the database is back: the deletes go through
    upload_id = upload.file["_id"]
    await db.fs.chunks.insert_one({"files_id": upload_id, "n": 9, "data": b"late"})  # as a late insert lands
    stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    await db.uploads_in_progress.update_one({"_id": upload_id}, {"$set": {"updated": stale}})
    assert await stage_code.sweep_abandoned_uploads(db, 3600) == 1, "the record went with the upload"
    assert await db.fs.chunks.count_documents({"files_id": upload_id}) == 0
    assert await db.uploads_in_progress.count_documents({}) == 0


@pytest.mark.parametrize("when", ["mid-body", "at its end"])
async def test_an_upload_that_a_sweep_took_gets_408_and_leaves_nothing(serve, stage_code, db, start_upload, when):
    # Its record goes stale as if it had been silent for an hour; with a short
    # --abandoned_after its next bytes check the record, else its end does.
    abandoned_after = 0.2 if when == "mid-body" else 3600
    client = await serve(abandoned_after=abandoned_after)
    upload = await start_upload(client, "paused.bin", 4 * CHUNK, os.urandom(2 * CHUNK))
    upload_id = await the_upload_under_way(db)
    await eventually(lambda: chunks_of_at_least(db, upload_id, 2), timeout=LIMIT)
    an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    await db.uploads_in_progress.update_one({"_id": upload_id}, {"$set": {"updated": an_hour_ago}})
    assert await stage_code.sweep_abandoned_uploads(db, 1) == 1
    if when == "mid-body":
        await asyncio.sleep(abandoned_after)  # the next bytes are due to refresh the record
        await upload.send(b"a few more bytes")
    else:
        await upload.send(os.urandom(2 * CHUNK))
    status, _, body = await upload.response(LIMIT)
    upload.close()
    assert status == 408, body
    assert b"paused for too long" in body
    assert await client.stored("uploads_in_progress") == NOTHING


async def test_a_client_gone_mid_upload_leaves_no_record_either(client, db, start_upload):
    upload = await start_upload(client, "gone.bin", 4 * CHUNK, os.urandom(2 * CHUNK))
    upload_id = await the_upload_under_way(db)
    await eventually(lambda: chunks_of_at_least(db, upload_id, 2), timeout=LIMIT)
    upload.close()

    async def all_deleted():
        return await client.stored("uploads_in_progress") == NOTHING

    await eventually(all_deleted, timeout=LIMIT)


async def test_the_sweep_loop_sweeps_at_once_and_then_again(stage_code, db):
    gone = await abandoned_upload(stage_code, db, CHUNK, silent_for=10)
    loop = asyncio.create_task(stage_code.sweep_abandoned_uploads_forever(db, 1))
    try:
        await eventually(lambda: no_chunks(db, gone), timeout=LIMIT)  # swept at once
        later = await abandoned_upload(stage_code, db, CHUNK, silent_for=10)
        await eventually(lambda: no_chunks(db, later), timeout=LIMIT)  # and again, a period later
    finally:
        loop.cancel()


async def test_the_sweep_loop_outlives_a_database_that_does_not_answer(stage_code, caplog):
    nobody = MotorClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=100)
    loop = asyncio.create_task(stage_code.sweep_abandoned_uploads_forever(nobody.test, 0.2))
    try:
        await eventually(lambda: caplog.text.count("could not sweep abandoned uploads") >= 2, timeout=LIMIT)
        assert not loop.done()  # it tried again, and goes on
    finally:
        loop.cancel()
        nobody.close()


async def no_chunks(db, file_id):
    return not await chunks_of(db, file_id)


# --- What requests leave for the cycle collector ---


async def test_uploads_downloads_and_thumbnails_leave_no_reference_cycles(client, connect):
    # Part 4 runs Python's cycle collector less often (see the lesson): what requests
    # leave in reference cycles waits longer to be freed. These leave none.
    connection = await connect(client)
    photo = image_bytes("JPEG", size=(800, 600))

    async def ask(method, path, body=b""):
        status, headers, answer = await connection.request(method, path, body)
        assert status in (200, 201), (status, answer)
        return headers

    original = (await ask("PUT", "/upload/photo.jpg", photo))["location"]
    requests = [("PUT", "/upload/photo.jpg", photo), ("GET", original, b""),
                ("GET", original.removesuffix("orig") + "thumb", b""), ("GET", "/static/style.css", b"")]
    for request in requests:  # once first: caches, connections
        await ask(*request)
    gc.collect()
    gc.disable()
    rounds = 20
    try:
        for _ in range(rounds):
            for request in requests:
                await ask(*request)
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage, to be named
        gc.collect()
        left = collections.Counter(type(thing).__qualname__ for thing in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    # What the requests leave comes back with each round. Something else may leave a
    # cycle once meanwhile, as the database client that an earlier test closed: its
    # monitor thread ends when it next wakes, leaving its PeriodicExecutor in one.
    each_round = {kind: count for kind, count in left.items() if count >= rounds}
    assert not each_round, f"left in reference cycles: {left.most_common(12)}"


# --- Decoding within a budget ---


class Borrower(threading.Thread):
    """A thread that borrows `size` from `budget` and holds it until released."""

    def __init__(self, budget, size):
        super().__init__(daemon=True)
        self.budget, self.size = budget, size
        self.holding, self.release = threading.Event(), threading.Event()

    def run(self):
        with self.budget.lend(self.size):
            self.holding.set()
            self.release.wait(30)


def settle(budget, lent, waiting):
    """Wait until `budget` has lent `lent` and has `waiting` threads in line."""
    def settled():
        return (budget.lent, len(budget.waiting)) == (lent, waiting)

    wait_until(settled, timeout=10, interval=0.01)


def test_the_budget_lends_what_fits_and_makes_the_rest_wait_in_turn(stage_code):
    budget = stage_code.DecodeBudget(100)
    first, second, third = (Borrower(budget, 40) for _ in range(3))
    for borrower in (first, second, third):
        borrower.start()
        if borrower is not third:
            borrower.holding.wait(10)
    settle(budget, lent=80, waiting=1)
    assert not third.holding.is_set()
    big = Borrower(budget, 250)  # more than the whole budget: waits until it is alone
    big.start()
    small = Borrower(budget, 10)  # would fit, but comes after the big one
    small.start()
    settle(budget, lent=80, waiting=3)
    first.release.set()
    third.holding.wait(10)
    settle(budget, lent=80, waiting=2)
    second.release.set()
    third.release.set()
    big.holding.wait(10)
    settle(budget, lent=250, waiting=1)
    assert not small.holding.is_set()
    big.release.set()
    small.holding.wait(10)
    small.release.set()
    for borrower in (first, second, third, big, small):
        borrower.join(10)
    settle(budget, lent=0, waiting=0)


def watched(budget):
    """The stage's `budget`, noting in its `seen` how much it has lent each time it lends."""
    lend, budget.seen = budget.lend, []

    @contextlib.contextmanager
    def noting(size):
        with lend(size):
            budget.seen.append((size, budget.lent))
            yield

    budget.lend = noting
    return budget


@contextlib.contextmanager
def thumbnail_threads(count, budget):
    """A pool of `count` threads that decode within `budget`. At the end, pass or
    fail, threads still waiting for the budget are let through: Python waits for a
    pool's threads as it exits, and a thread left waiting would hang the suite."""
    threads = ThreadPoolExecutor(count)
    try:
        yield threads
    finally:
        with budget.changed:
            budget.limit = float("inf")
            budget.changed.notify_all()
        threads.shutdown(cancel_futures=True)


def png(width, height, mode="RGBA"):
    return image_bytes("PNG", size=(width, height), color="orange", mode=mode)


async def test_concurrent_image_uploads_all_succeed_within_a_small_budget(serve, stage_code):
    # Eight threads, as on a 9-core machine, and a budget that fits two of these
    # images at a time; and one image that needs more than the whole budget.
    images = [png(1500, 1000) for _ in range(10)] + [png(3000, 2500)]
    costs = [stage_code.decoding_cost(Image.open(io.BytesIO(data)), 0) for data in images]
    budget = watched(stage_code.DecodeBudget(2 * costs[0] + 1))
    assert costs[-1] > budget.limit
    with thumbnail_threads(8, budget) as threads:
        client = await serve(thumbnail_executor=threads)
        client.app.settings["decode_budget"] = budget
        responses = await asyncio.gather(*(client.upload(data, f"image{n}.png") for n, data in enumerate(images)))
        assert [response.code for response in responses] == [302] * len(images)
        assert len(await client.listed()) == len(images)
        assert sorted(size for size, _ in budget.seen) == sorted(costs)  # every image decoded within it
        for size, lent in budget.seen:
            assert lent <= budget.limit or lent == size  # never over, but for the big one, alone
        assert budget.lent == 0


def test_the_cost_of_decoding_is_told_from_the_header(stage_code):
    # A PNG's pixels, and its premultiplied copy when it has alpha; a JPEG's, drafted
    # to 1/8 (a thumbnail needs no more), unless progressive: then its coefficients.
    def cost(data, draft=False):
        image = Image.open(io.BytesIO(data))
        pixels = image.size[0] * image.size[1]
        if draft:
            image.draft(None, (256, 256))
        return stage_code.decoding_cost(image, pixels) - stage_code.DECODER_OVERHEAD

    assert cost(png(2000, 1000, "RGB")) == 2000 * 1000 * 4
    assert cost(png(2000, 1000, "RGBA")) == 2000 * 1000 * 8
    assert cost(png(2000, 1000, "L")) == 2000 * 1000
    jpeg = image_bytes("JPEG", size=(4000, 2000))
    assert cost(jpeg, draft=True) == 1000 * 500 * 4  # 1/4: the largest scale still over 256 pixels
    progressive = io.BytesIO()
    Image.new("RGB", (4000, 2000), "teal").save(progressive, "JPEG", progressive=True)
    assert cost(progressive.getvalue(), draft=True) == 1000 * 500 * 4 + 4000 * 2000 * 3 * 2


def test_the_program_lists_abandoned_after_and_decode_budget_in_its_help(program):
    _, help_text = program.run("--help", timeout=20)
    # Tornado lists option names with dashes, and takes them either way.
    assert "--abandoned-after " in help_text and "(default 3600)" in help_text
    assert "--decode-budget " in help_text and "(default 268435456)" in help_text
