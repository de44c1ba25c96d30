# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From Motor to PyMongo's async API
#
# **Stage: after part 3, `part3_streaming`** ([part 1's lesson](../part1_basic/README.md#what-changed-since-2014)
# says why Motor is being replaced).
# Every stage talks to MongoDB through Motor. Motor's own README says it is
# deprecated from 14 May 2026, one year after its successor became stable, and gets
# critical bug fixes only, until 14 May 2027. That successor is PyMongo's own async
# API, `pymongo.AsyncMongoClient` with `gridfs.AsyncGridFSBucket`, stable since
# PyMongo 4.13 (14 May 2025).
#
# ## What you will learn
#
# 1. the storage operations the stages use, written with Motor and with PyMongo's
#    async API side by side: `upload_from_stream`, `open_upload_stream` with `write`,
#    `close` and `abort`, listing the newest files with `to_list`,
#    `open_download_stream` with `readchunk`, `seek` for a range, `delete`;
# 2. the traps, each run so that you see it fail: no `stream_to_handler`, an
#    asynchronous `seek`, `async for` yielding lines, `to_list` lengths, GridFS
#    listings that are not dictionaries, no `delegate`, no `io_loop`, an asynchronous
#    `close`;
# 3. a migration table for the stages;
#
# then two exercises: a download handler ported to PyMongo's async GridFS, and the
# newest files listed as dictionaries.
#
# It needs only a database: the MongoDB at `MONGODB_URI` when that variable is set,
# else the embedded database, SecantusDB, in a temporary folder. Run the cells in
# order; any cell can be run again, and so can the whole notebook (the setup cell
# stops what the last run started). The parameters cell holds the numbers worth
# varying; cells marked **Try it** are there to be changed; each exercise has a
# check, and a solution folded away below it. The last cell stops everything and
# deletes what the notebook stored.

# %% tags=["parameters"]
BLOB_BYTES = 600_000  # the binary file of the examples: 600 kB, three chunks of 255 KiB
PIECE_BYTES = 100_000  # how much is written at a time with open_upload_stream()
BUFFERED_MB = 3  # written before close(), to see when a GridIn reaches the database
RANGE_START = 300_000  # the first byte of the range read with seek()
RANGE_LENGTH = 16  # and how many bytes it reads

# %%
import asyncio
import inspect
import os
import warnings

import motor
import pymongo
from bson import ObjectId
from gridfs import AsyncGridFSBucket, GridFSBucket
from gridfs.errors import NoFile
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import ConfigurationError
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import Application, HTTPError, RequestHandler

from coursekit import lab  # the course's toolkit: the Session that starts and stops things

print(f"Motor {motor.version}, PyMongo {pymongo.version}")

# %% [markdown]
# ## Start the database, and a client of each kind
#
# Both clients talk to the same database, so each can read what the other wrote:
# GridFS is a layout of two collections (see notebook 02), not a feature of a driver.
# In the code below, names starting with `motor_` are Motor's; the others are
# PyMongo's. Running this cell again closes the clients and the database of the last
# run first.

# %%
session = await lab.Session.start(database=True)
db_name = session.db_name  # a database of our own, dropped at the end

# Motor, as the stages use it
motor_client = await session.motor_client()
motor_db = motor_client[db_name]
motor_fs = MotorGridFSBucket(motor_db)

# PyMongo's async API
client = AsyncMongoClient(session.uri, serverSelectionTimeoutMS=3000)
await session.keep("the AsyncMongoClient", client, client.close)  # its close() is a coroutine, awaited
db = client[db_name]
fs = AsyncGridFSBucket(db)

print("Motor:  ", await motor_client.admin.command("ping"))
print("PyMongo:", await client.admin.command("ping"))

# %% [markdown]
# The names change and the shapes stay: a client, a database by subscript, a bucket
# made from the database. `MotorClient` came from `motor.motor_tornado`, built for
# Tornado's IOLoop; `AsyncMongoClient` is plain asyncio, which is what Tornado 6 runs
# on anyway.
#
# ## `upload_from_stream`: the same
#
# Parts 1 and 2 store an upload in one call. It reads the same with both:

# %%
blob = os.urandom(BLOB_BYTES)  # random bytes: with the defaults, three chunks of 255 KiB, the last partly filled
some_text = b"GridFS keeps files in chunks.\nEach chunk is a document.\nThis file has three lines.\n"

motor_id = await motor_fs.upload_from_stream("motor.bin", blob, metadata={"contentType": "application/octet-stream"})
pymongo_id = await fs.upload_from_stream("pymongo.bin", blob, metadata={"contentType": "application/octet-stream"})
text_id = await fs.upload_from_stream("lines.txt", some_text, metadata={"contentType": "text/plain"})
print("Motor stored", motor_id, "and PyMongo stored", pymongo_id)

# Each reads what the other wrote:
print("PyMongo reads Motor's file:", (await (await fs.open_download_stream(motor_id)).read()) == blob)
print("Motor reads PyMongo's file:", (await (await motor_fs.open_download_stream(pymongo_id)).read()) == blob)

# %% [markdown]
# ## `open_upload_stream` with `write`, `close` and `abort`: the same
#
# To write a file a piece at a time: `open_upload_stream()` is a plain call with
# both (no `await`), and returns a `GridIn` whose `write()`, `close()` and `abort()`
# are awaited. PyMongo's can also be used as `async with`, which closes it:

# %%
# Motor
motor_grid_in = motor_fs.open_upload_stream("motor-pieces.bin", metadata={"contentType": "application/octet-stream"})
for start in range(0, len(blob), PIECE_BYTES):
    await motor_grid_in.write(blob[start:start + PIECE_BYTES])
await motor_grid_in.close()

# PyMongo
async with fs.open_upload_stream("pymongo-pieces.bin", metadata={"contentType": "application/octet-stream"}) as grid_in:
    for start in range(0, len(blob), PIECE_BYTES):
        await grid_in.write(blob[start:start + PIECE_BYTES])

for file_id in (motor_grid_in._id, grid_in._id):
    print(file_id, await db.fs.chunks.count_documents({"files_id": file_id}), "chunks")

# %% [markdown]
# `abort()` deletes whatever was written so far: what an upload handler does when
# the client goes away half-way through.

# %%
for name, bucket in (("Motor", motor_fs), ("PyMongo", fs)):
    grid_in = bucket.open_upload_stream(f"{name}-aborted.bin")
    await grid_in.write(blob)
    await grid_in.abort()
    left = await db.fs.files.count_documents({"_id": grid_in._id}) + \
        await db.fs.chunks.count_documents({"files_id": grid_in._id})
    print(f"{name}: after abort(), {left} documents left")

# %% [markdown]
# One thing worth knowing about both, because Motor's `GridIn` *is* PyMongo's blocking
# `GridIn` run on a thread: neither writes a chunk to the database as soon as it is
# full. They keep the chunks in memory and insert them in batches of up to 48 MB,
# or at `close()`. Write `BUFFERED_MB` megabytes (3 with the defaults) and count what
# reached the database:

# %%
buffered = os.urandom(BUFFERED_MB * 10**6)
for name, bucket in (("Motor", motor_fs), ("PyMongo", fs)):
    grid_in = bucket.open_upload_stream(f"{name}-{BUFFERED_MB}mb.bin")
    await grid_in.write(buffered)
    before = await db.fs.chunks.count_documents({"files_id": grid_in._id})
    await grid_in.close()
    after = await db.fs.chunks.count_documents({"files_id": grid_in._id})
    print(f"{name}: {BUFFERED_MB} MB written, {before} chunks in the database; after close(), {after}")

# %% [markdown]
# So a `GridIn` is not a way to keep a big upload's memory small: up to 48 MB of it
# waits in the server's memory, and `write()` does not wait for the database until
# then. That is true before and after the migration.
#
# ## Listing the newest files: `to_list`, and what it returns
#
# Part 1's home page lists the newest uploads straight from GridFS. With Motor:

# %%
newest = [("uploadDate", -1), ("_id", -1)]

motor_files = await motor_fs.find().sort(newest).limit(20).to_list(None)
print(type(motor_files[0]).__name__, [f["filename"] for f in motor_files])

# %% [markdown]
# The same call with PyMongo returns `AsyncGridOut` objects, not dictionaries.
# Part 1's template writes `upload['_id']` and `upload['filename']`:

# %%
files = await fs.find().sort(newest).limit(20).to_list(None)
print(type(files[0]).__name__, [f.filename for f in files])
try:
    files[0]["_id"]
except TypeError as error:
    print("TypeError:", error)

# %% [markdown]
# Either read attributes (`upload._id`, `upload.filename`, `upload.upload_date`), or,
# to keep dictionaries, query the files collection itself:
# `await db.fs.files.find().sort(newest).limit(20).to_list(None)`.
#
# **`to_list` lengths.** `None` means everything, with both; a number means at most
# that many. Two traps. First, `to_list(0)`: Motor quietly returns an empty list,
# PyMongo refuses it:

# %%
print("Motor:", await motor_db.fs.files.find().to_list(0))
try:
    await db.fs.files.find().to_list(0)
except ValueError as error:
    print("PyMongo: ValueError:", error)

# %% [markdown]
# Second, on a *GridFS* cursor, in PyMongo 4.20, a number larger than what there is
# raises `StopAsyncIteration`, where Motor, and any collection cursor, return the
# shorter list. (`AsyncGridOutCursor.to_list(n)` calls `next()` n times.)

# %%
stored = await db.fs.files.count_documents({})
print(f"{stored} files; Motor's to_list(100):", len(await motor_fs.find().to_list(100)))
print(f"{stored} files; a collection cursor's to_list(100):", len(await db.fs.files.find().to_list(100)))
try:
    await fs.find().to_list(100)
except StopAsyncIteration:
    print(f"{stored} files; PyMongo's GridFS cursor, to_list(100): StopAsyncIteration")

# %% [markdown]
# Write `.limit(20).to_list(None)`, as the stages do, and it works with both.
#
# ## `open_download_stream` and `readchunk`: the same
#
# `open_download_stream()` is awaited with both: it reads the file's document, so
# `length`, `metadata` and the rest are there at once. `readchunk()` then returns
# the file one chunk at a time, and `b""` at the end:

# %%
motor_grid_out = await motor_fs.open_download_stream(pymongo_id)
grid_out = await fs.open_download_stream(pymongo_id)
print(f"{grid_out.filename}: {grid_out.length:,} bytes, {grid_out.metadata}, chunks of {grid_out.chunk_size:,}")

for name, stream in (("Motor", motor_grid_out), ("PyMongo", grid_out)):
    sizes = []
    while chunk := await stream.readchunk():
        sizes.append(len(chunk))
    print(f"{name}: readchunk() gave {sizes}")

# %% [markdown]
# ## Trap: there is no `stream_to_handler`
#
# Parts 1 and 2 serve a file with one line, `await grid_out.stream_to_handler(self)`.
# PyMongo has no such method, and knows nothing of Tornado:

# %%
print("Motor's GridOut:", hasattr(motor_grid_out, "stream_to_handler"))
try:
    await grid_out.stream_to_handler(None)
except AttributeError as error:
    print("PyMongo's: AttributeError:", error)

# %% [markdown]
# Write the loop yourself. It is five lines, and better than the original:
# Motor's `stream_to_handler()` calls `flush()` without waiting for it, so a slow
# client makes the server buffer what it has not taken yet, up to the whole file.
# Awaiting each `flush()` waits until the kernel's buffer for the socket has taken the
# chunk; when the client reads slowly, that buffer stays full, and the loop goes at the
# client's pace. Here it is as a handler, served in the kernel:

# %%
class DownloadHandler(RequestHandler):
    async def get(self, file_id):
        try:
            grid_out = await self.settings["fs"].open_download_stream(ObjectId(file_id))
        except NoFile:
            raise HTTPError(404)
        self.set_header("Content-Type", (grid_out.metadata or {}).get("contentType", "application/octet-stream"))
        self.set_header("Content-Length", grid_out.length)
        try:
            while chunk := await grid_out.readchunk():  # instead of stream_to_handler(self)
                self.write(chunk)
                await self.flush()  # until the socket has taken it: a chunk or so in memory
        except StreamClosedError:
            return  # the client went away


base_url = await session.serve("the download handler",
                               Application([(r"/files/([0-9a-f]{24})", DownloadHandler)], fs=fs))
response = await AsyncHTTPClient().fetch(f"{base_url}/files/{pymongo_id}")
print(response.code, response.headers["Content-Type"], f"{len(response.body):,} bytes,",
      "the file:", response.body == blob)

# %% [markdown]
# ## Trap: `async for` gives lines, not chunks
#
# With Motor, `async for chunk in grid_out` gives the file chunk by chunk. PyMongo's
# `AsyncGridOut` is a file object, and iterating over a file gives *lines*, split at
# each `b"\n"`: right for a text file, arbitrary pieces for an image.

# %%
print("Motor, text file:   ", [len(piece) async for piece in await motor_fs.open_download_stream(text_id)])
print("PyMongo, text file: ", [len(piece) async for piece in await fs.open_download_stream(text_id)])

motor_pieces = [len(piece) async for piece in await motor_fs.open_download_stream(pymongo_id)]
pieces = [len(piece) async for piece in await fs.open_download_stream(pymongo_id)]
print(f"Motor, {len(blob):,} random bytes:   {len(motor_pieces)} pieces, {motor_pieces}")
print(f"PyMongo, {len(blob):,} random bytes: {len(pieces)} pieces, from {min(pieces)} to {max(pieces):,} bytes")

# %% [markdown]
# Code that used `async for` to send a file still sends the right bytes, in thousands
# of small writes instead of one a chunk, with a search for `b"\n"` through every
# byte. Use `readchunk()` in a loop, as above.
#
# ## Trap: `seek()` must be awaited
#
# A Range request asks for bytes `start` to `end` of a file. With a `GridOut`, that
# is `seek(start)`, then `read(length)` (or `readchunk()`, which gives the rest of
# the chunk `start` falls in). Motor's `seek()` is a plain method; PyMongo's is a
# coroutine:

# %%
motor_grid_out = await motor_fs.open_download_stream(pymongo_id)
print("Motor:   seek() returned", motor_grid_out.seek(RANGE_START))
print("         read:", (await motor_grid_out.read(RANGE_LENGTH)).hex())

grid_out = await fs.open_download_stream(pymongo_id)
print("PyMongo: seek() returned", await grid_out.seek(RANGE_START))
print("         read:", (await grid_out.read(RANGE_LENGTH)).hex())
print("the file's bytes there:", blob[RANGE_START:RANGE_START + RANGE_LENGTH].hex())

# %% [markdown]
# Forget the `await`, as code written for Motor does, and nothing fails: `seek()`
# makes a coroutine that never runs, and the read starts at byte 0. Python's only
# sign is a `RuntimeWarning` when the coroutine is thrown away, which is easy to miss
# in a server's log. The cell records the warning and prints it, rather than let it
# go to the log:

# %%
grid_out = await fs.open_download_stream(pymongo_id)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    grid_out.seek(RANGE_START)  # as Motor code wrote it: no await
    data = await grid_out.read(RANGE_LENGTH)
print("read:", data.hex(), "the right bytes:", data == blob[RANGE_START:RANGE_START + RANGE_LENGTH],
      "the first bytes of the file:", data == blob[:RANGE_LENGTH])
print("warnings:", [f"{w.category.__name__}: {w.message}" for w in caught])

# %% [markdown]
# ## `delete`: the same
#
# `delete()` removes the file's document and its chunks, and raises `NoFile` when
# there is no such file, with both. Two files stored for the purpose, deleted, then
# deleted again:

# %%
doomed = [await motor_fs.upload_from_stream("doomed.bin", blob), await fs.upload_from_stream("doomed.bin", blob)]
await motor_fs.delete(doomed[0])
await fs.delete(doomed[1])
for name, bucket in (("Motor", motor_fs), ("PyMongo", fs)):
    try:
        await bucket.delete(doomed[1])
    except NoFile as error:
        print(f"{name}: NoFile: {error}")
print("chunks left of the two files:", await db.fs.chunks.count_documents({"files_id": {"$in": doomed}}))

# %% [markdown]
# ## Trap: no `delegate`
#
# A Motor object wraps a blocking PyMongo one, its `delegate`. Code that needs the
# blocking API on a thread, say to read a file with Pillow there, can build a
# blocking bucket on the same client: `GridFSBucket(db.delegate)`. PyMongo's async
# objects wrap nothing, and a database gives a *collection* for any attribute name
# it does not know, so `db.delegate` is a collection called "delegate":

# %%
print("Motor:   db.delegate is a", type(motor_db.delegate).__name__)
print("PyMongo: db.delegate is an", type(db.delegate).__name__, "named", repr(db.delegate.name))
try:
    GridFSBucket(db.delegate)
except TypeError as error:
    print("TypeError:", error)

# %% [markdown]
# A blocking client of its own does it: `MongoClient` with the same URI, opened
# once, closed at the end (here, at the end of the `with` block).

# %%
def read_file(bucket, file_id):
    """Blocking: run it on a thread."""
    with bucket.open_download_stream(file_id) as file:
        return file.read()


with MongoClient(session.uri, serverSelectionTimeoutMS=3000) as sync_client:
    print(await asyncio.to_thread(read_file, GridFSBucket(sync_client[db_name]), text_id))

# %% [markdown]
# ## Trap: no `io_loop`
#
# Motor's clients take an `io_loop` argument, to tie a client to a loop other than
# the current one, a habit from the days when code passed its loop around.
# `AsyncMongoClient` uses the running asyncio loop, and refuses the argument as an
# unknown option:

# %%
motor_other = MotorClient(session.uri, io_loop=IOLoop.current())
try:
    print("Motor accepts io_loop:", motor_other.io_loop is IOLoop.current())
finally:
    motor_other.close()
try:
    AsyncMongoClient(session.uri, io_loop=IOLoop.current())
except ConfigurationError as error:
    print("PyMongo: ConfigurationError:", error)

# %% [markdown]
# ## Trap: `close()` must be awaited
#
# Motor's `client.close()` is a plain method; `AsyncMongoClient.close()` is a
# coroutine. Forget the `await` and the client is not closed: its connections and
# monitor tasks stay, and again the only sign is a `RuntimeWarning` (recorded and
# printed here).

# %%
print("Motor's close() is a coroutine function:", inspect.iscoroutinefunction(MotorClient.close))
print("PyMongo's close() is a coroutine function:", inspect.iscoroutinefunction(AsyncMongoClient.close))
throwaway = AsyncMongoClient(session.uri)
try:
    await throwaway.admin.command("ping")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        throwaway.close()  # as Motor code wrote it: no await
    print("warnings:", [f"{w.category.__name__}: {w.message}" for w in caught])
finally:
    await throwaway.close()  # the right way

# %% [markdown]
# ## A migration table for the stages
#
# What each stage does with Motor today, and what it becomes. Files stored by one
# are read by the other, so moving a stage needs no change to the data.
#
# | what the stages do | with Motor | with PyMongo's async API | where |
# | --- | --- | --- | --- |
# | import | `from motor.motor_tornado import MotorClient, MotorGridFSBucket` | `from pymongo import AsyncMongoClient`, `from gridfs import AsyncGridFSBucket` | parts 1 to 3 |
# | connect | `MotorClient(uri, serverSelectionTimeoutMS=3000)` | `AsyncMongoClient(uri, serverSelectionTimeoutMS=3000)`; no `io_loop` | parts 1 to 3 |
# | close the client | `client.close()` | `await client.close()` | wherever a client is closed |
# | the bucket | `MotorGridFSBucket(db)` | `AsyncGridFSBucket(db)` | parts 1 to 3 |
# | store an upload | `await fs.upload_from_stream(name, data, metadata=...)` | the same | parts 1 to 3 |
# | list the newest files from GridFS | `await fs.find().sort(...).limit(20).to_list(None)`: dictionaries, `upload['_id']` | the same call gives `AsyncGridOut`s: `upload._id` in the template, or `db.fs.files.find()` for dictionaries; no `to_list(n)` on a GridFS cursor | part 1 |
# | list the newest uploads | `await db.imgs.find().sort(...).limit(20).to_list(None)` (part 3: `db.uploads`) | the same; `to_list(0)` raises `ValueError` | parts 2 and 3 |
# | open a file | `await fs.open_download_stream(file_id)`, `NoFile` if missing | the same | parts 1 to 3 |
# | send it | `await grid_out.stream_to_handler(self)` | a loop: `readchunk()`, `self.write(chunk)`, `await self.flush()` | parts 1 and 2 |
# | read a range | `grid_out.seek(start)` | `await grid_out.seek(start)` | any code that seeks a `GridOut` |
# | read it piece by piece | `async for chunk in grid_out` | `readchunk()` in a loop: `async for` gives lines | any code that iterates a `GridOut` |
# | write a file piece by piece | `open_upload_stream()`, awaited `write()`, `close()`, `abort()` | the same (both buffer up to 48 MB) | any code that streams into a `GridIn` |
# | delete a file | `await fs.delete(file_id)` | the same | parts 2 and 3 |
# | a blocking bucket on the same client, for a thread | `GridFSBucket(db.delegate)` | `GridFSBucket(MongoClient(uri)[db_name])`, a client of its own | part 3 |
#
# In short: the calls that only store, open and delete carry over with a change of
# import; what serves a file (`stream_to_handler`) must be written out, and every
# `seek()` and `close()` needs an `await`, which only a `RuntimeWarning` will remind
# you of.
#
# ## Exercises
#
# Each exercise gives you a cell to complete, then a cell that checks your answer:
# run it, and it says "solved" or what is still wrong. The solution is folded away
# in the cell after the check.
#
# ### Exercise 1: port a download handler
#
# `MotorFromHandler` serves a file from byte `?start=` to the end, written as code for
# Motor is. `FromHandler` is the same handler, for now: the check serves it with
# PyMongo's bucket (`fs`) in its settings, and it goes wrong. Give `FromHandler` a
# `get()` of its own, ported, so that it sends the right bytes, a chunk at a time (not
# a line at a time), and still answers 404 for a file that does not exist.
#
# The check asks for a file that does not exist, and Tornado logs a **warning** for it
# (`404 GET /from/...`) below the check. Until the handler is ported, Python warns as
# well: `RuntimeWarning: coroutine 'AsyncGridOut.seek' was never awaited`.

# %%
class MotorFromHandler(RequestHandler):
    """GET /from/<id>?start=n: the file from byte n to its end, with a Motor bucket as `fs`."""

    async def get(self, file_id):
        try:
            grid_out = await self.settings["fs"].open_download_stream(ObjectId(file_id))
        except NoFile:
            raise HTTPError(404)
        grid_out.seek(int(self.get_argument("start", "0")))
        async for chunk in grid_out:
            self.write(chunk)
            await self.flush()


class FromHandler(MotorFromHandler):
    """The same, with PyMongo's async bucket as `fs`: your turn, give it a get() of its own."""

# %%
async def check_exercise_1():
    class Counting(FromHandler):  # the handler, counting its writes
        writes = 0

        def write(self, chunk):
            Counting.writes += 1
            super().write(chunk)

    url = await session.serve("exercise 1", Application([(r"/from/([0-9a-f]{24})", Counting)], fs=fs))
    start = len(blob) // 2
    response = await AsyncHTTPClient().fetch(f"{url}/from/{pymongo_id}?start={start}", raise_error=False)
    writes = Counting.writes
    missing = await AsyncHTTPClient().fetch(f"{url}/from/{ObjectId()}", raise_error=False)
    await session.stop("exercise 1")
    chunk_size = (await db.fs.files.find_one({"_id": pymongo_id}))["chunkSize"]
    chunks = -(-len(blob) // chunk_size) - start // chunk_size  # those that hold bytes start.. to the end
    return lab.check("Exercise 1", [
        lab.expect(f"the body from byte {start:,}", response.body, blob[start:]),
        lab.expect("a missing file", missing.code, 404),
        None if writes <= chunks else f"{writes:,} writes for {chunks} chunks: a chunk at a time, please",
    ])

await check_exercise_1();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
class FromHandler(RequestHandler):
    """GET /from/<id>?start=n: the file from byte n to its end (PyMongo's async API)."""

    async def get(self, file_id):
        try:
            grid_out = await self.settings["fs"].open_download_stream(ObjectId(file_id))
        except NoFile:
            raise HTTPError(404)
        await grid_out.seek(int(self.get_argument("start", "0")))  # a coroutine now
        while chunk := await grid_out.readchunk():  # async for would give lines
            self.write(chunk)
            await self.flush()

await check_exercise_1();

# %% [markdown]
# ### Exercise 2: the newest files, as dictionaries
#
# Part 1's home page lists the newest files from GridFS as dictionaries. Complete
# `newest_files(n)`: with PyMongo's async API only, return the `n` newest files of
# the `fs` bucket as dictionaries holding at least `_id` and `filename`, newest
# first (by `uploadDate`, then `_id`), whether there are more than `n` files or fewer.

# %%
async def newest_files(n):
    return await fs.find().sort(newest).to_list(n)  # your turn

# %%
async def check_exercise_2():
    problems = []
    for n in (3, 1000):
        wanted = [(f["_id"], f["filename"]) for f in await motor_fs.find().sort(newest).limit(n).to_list(None)]
        try:
            got = [(f["_id"], f["filename"]) for f in await newest_files(n)]
        except Exception as error:
            got = f"it raised {type(error).__name__}: {error}"
        problems.append(lab.expect(f"newest_files({n}), as (_id, filename)", got, wanted))
    return lab.check("Exercise 2", problems)

await check_exercise_2();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution: the files collection itself gives dictionaries, and limit() the length
async def newest_files(n):
    return await db.fs.files.find().sort(newest).limit(n).to_list(None)

await check_exercise_2();

# %% [markdown]
# ## Recap
#
# - Motor is deprecated (critical fixes until 14 May 2027); PyMongo's async API,
#   `AsyncMongoClient` and `AsyncGridFSBucket`, replaces it, on plain asyncio, with no
#   thread pool in between.
# - GridFS files are the same bytes in the same collections: either driver reads what
#   the other wrote, and a migration moves no data.
# - Most calls carry over. The traps are the ones that fail quietly: `seek()` and
#   `close()` are coroutines now (forget the `await` and only a `RuntimeWarning` says
#   so), `async for` gives lines, and a GridFS listing gives `AsyncGridOut`s.
# - `stream_to_handler` is gone: write the `readchunk()` loop with an awaited
#   `flush()`, which also gives the backpressure Motor's method never had.
#
# ## Review questions
#
# 1. What does `grid_out.seek(start)` without `await` do with PyMongo's async API, and
#    what does the next `read()` return?
# 2. Why is `async for chunk in grid_out` a poor way to send a binary file with PyMongo?
# 3. `await fs.find().to_list(100)` on a bucket with 7 files: what happens, and what
#    do you write instead?
# 4. Part 3 builds `GridFSBucket(db.delegate)` for its thread pool. What replaces it
#    after the migration?
#
# <details><summary>Answers</summary>
#
# 1. It creates a coroutine that never runs: the position stays where it was, and
#    `read()` starts at byte 0. Python warns when the coroutine is thrown away.
# 2. It gives lines, split at every `b"\n"`: thousands of small, arbitrary pieces, and
#    a search through every byte.
# 3. With PyMongo 4.20 it raises `StopAsyncIteration`. Write
#    `.limit(100).to_list(None)`, or query `db.fs.files` for dictionaries.
# 4. A blocking `MongoClient` of its own, `GridFSBucket(MongoClient(uri)[db_name])`,
#    opened once and closed at the end.
#
# </details>
#
# ## Stop everything
#
# The server, our database (dropped), both clients, and the embedded database with
# its folder. Running this cell twice is fine.

# %%
await session.close()

# %% [markdown]
# ---
# Previous: [notebook 04, streaming](04_streaming.ipynb) ·
# Next: [notebook 06, templates and authentication](06_templates_and_auth.ipynb), then
# [part 4's lesson](../part4_production/README.md), running the course's app for real ·
# All notebooks: [README](README.md)
