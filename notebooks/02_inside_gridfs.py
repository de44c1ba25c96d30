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
# # Inside GridFS, with part 1 running
#
# **Stage: part 1, `part1_basic`** (its lesson is [part1_basic/README.md](../part1_basic/README.md)).
# This notebook runs part 1 inside the kernel, uploads images to it over HTTP as a
# browser would, and then looks at what GridFS made of them.
#
# ## What you will learn
#
# 1. what a browser sends when it uploads a file, and what part 1 answers;
# 2. the two collections, `fs.files` and `fs.chunks`, and what their documents hold;
# 3. chunk arithmetic: how many chunks a file takes, and which chunk holds a given byte;
# 4. what a file of several megabytes becomes;
# 5. what the embedded database is, what it does not do that MongoDB does, and how
#    to run every notebook against a real MongoDB;
#
# then three exercises: a byte range read straight from `fs.chunks`, a bucket with
# smaller chunks, and an aggregation over `fs.files`.
#
# It starts its own database: the MongoDB at `MONGODB_URI` when that variable is set,
# else the embedded database, SecantusDB, in a temporary folder. Run the cells in
# order; any cell can be run again, and so can the whole notebook (the setup cell
# stops what the last run started). The parameters cell holds the numbers worth
# varying; cells marked **Try it** are there to be changed; each exercise has a
# check, and a solution folded away below it. The last cell stops everything and
# deletes what the notebook stored.

# %% tags=["parameters"]
BIG_FILE_MB = 10  # the size of the big upload, in MB (millions of bytes)
GRADIENT_SIZE = (320, 160)  # the small image's width and height, in pixels

# %%
import inspect
import io
import math
import os
import pprint
import re
import time

import matplotlib.pyplot as plt
from bson import ObjectId
from bson.errors import InvalidDocument
from IPython.display import Image as ShowImage
from motor.motor_tornado import MotorGridFSBucket
from PIL import Image
from pymongo.errors import PyMongoError
from coursekit import lab  # the course's toolkit: the Session that starts and stops things, the colours
from coursekit.clients import Client, multipart
from coursekit.stages import load_stage

part1 = load_stage("part1_basic")

# %% [markdown]
# ## Start the database and part 1
#
# `lab.Session.start(database=True)` stops whatever the last run of this cell started,
# then gives us a database to play with: `MONGODB_URI` when it is set; else it starts
# SecantusDB on a free port, in a temporary folder, the way `python3 course.py run`
# does, and waits until it answers. We get a database of our own in it
# (`notebook_...`), dropped by the last cell.
#
# Then part 1 itself: `make_app(db)` is the same application `python part1_basic/app.py`
# serves, here on a free port of `127.0.0.1`. The kernel's event loop serves it between
# cells too: open the address in your browser while this notebook is open.

# %%
session = await lab.Session.start(database=True)
client = await session.motor_client()
db = client[session.db_name]
base_url = await session.serve("part 1", part1.make_app(db))
print("Part 1 serves at", base_url)

# %% [markdown]
# ## Upload an image over HTTP
#
# A browser sends the upload form as `multipart/form-data`: each field between two
# boundary lines, with a small header saying its name, file name and type.
# `multipart()`, from the course's toolkit, builds that body from the form's fields,
# a file being (its name, its bytes, its type); here it is for a file of five bytes:

# %%
body, form_type = multipart({"file": ("hello.txt", b"hello", "text/plain")})
print("Content-Type:", form_type)
print(body.decode())

# %% [markdown]
# We POST such a body, as the form would, with a small PNG made here. The toolkit's
# `Client` does it as a browser does: it opens the home page, reads where the upload
# form posts, and sends the file there in such a body. Part 1 answers `302 Found`, a
# redirect back to the home page.

# %%
visitor = Client(base_url)


async def upload(filename, data, content_type="image/png"):
    response = await visitor.upload(data, filename, content_type)
    print(f"POST {filename} ({len(data):,} bytes): {response.code} {response.reason}")
    return response


def png(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


gradient = Image.linear_gradient("L").resize(GRADIENT_SIZE)
picture = png(Image.merge("RGB", [gradient, gradient.rotate(180), Image.new("L", gradient.size, 160)]))
response = await upload("gradient.png", picture)

# %% [markdown]
# The home page lists the newest uploads; each links to `/imgs/<id>`, where `<id>` is
# the file's `_id` in GridFS. Download the newest back and compare:

# %%
home = (await visitor.fetch("/")).body.decode()
image_path = re.search(r"/imgs/[0-9a-f]{24}", home).group()
downloaded = (await visitor.fetch(image_path)).body
print(f"GET {image_path}: {len(downloaded):,} bytes, identical to the upload: {downloaded == picture}")
ShowImage(downloaded)

# %% [markdown]
# ## `fs.files`: one document per file
#
# GridFS keeps a file in two collections named after the bucket, `fs` by default. The
# file's own document holds its size (`length`), the size of its chunks, when it was
# uploaded, its name, and whatever `metadata` the application gave it: part 1 keeps
# the content type there.

# %%
file_id = ObjectId(image_path.rsplit("/", 1)[1])
file_document = await db.fs.files.find_one({"_id": file_id})
pprint.pprint(file_document)

# %% [markdown]
# ## `fs.chunks`: the bytes, in numbered pieces
#
# The bytes are in `fs.chunks`, in documents of at most `chunkSize` bytes (255 KiB,
# the default), each with the file's id and its number `n`. Our small image fits in one:

# %%
chunks = await db.fs.chunks.find({"files_id": file_id}).sort("n").to_list(None)
for chunk in chunks:
    print({**chunk, "data": f"<{len(chunk['data']):,} bytes>"})
print("the chunks, joined, are the file:", b"".join(chunk["data"] for chunk in chunks) == picture)

# %% [markdown]
# GridFS finds a file's chunks, in order, through a unique index on `files_id` and `n`,
# which the driver creates on the first upload:

# %%
pprint.pprint(await db.fs.chunks.index_information())

# %% [markdown]
# ## Chunk arithmetic
#
# Why chunks at all? A MongoDB document is limited to 16 MiB (16,777,216 bytes), and a
# file in one piece would have to be read and sent in one piece. Here is the limit,
# hit on purpose: one document a little over 16 MiB.

# %%
try:
    await db.too_big.insert_one({"data": b"x" * 2**24})
except (PyMongoError, InvalidDocument) as error:  # the server refuses it, or the driver before it
    print(f"{type(error).__name__}: {str(error).split(', full error')[0]}")

# %% [markdown]
# In chunks, a file of any size is stored, replicated and sharded like any other data,
# and read a piece at a time.
#
# A file of `length` bytes takes `ceil(length / chunkSize)` chunks, all full but the
# last. Byte number `offset` is in chunk `offset // chunkSize`, at position
# `offset % chunkSize` within it.

# %%
def chunk_count(length, chunk_size):
    return math.ceil(length / chunk_size)


def where_is(offset, chunk_size):
    """(chunk number, position in that chunk) of byte number `offset`."""
    return divmod(offset, chunk_size)


chunk_size = file_document["chunkSize"]
print(f"chunkSize: {chunk_size:,} bytes = {chunk_size // 1024} KiB")
print(f"our image: {file_document['length']:,} bytes -> {chunk_count(file_document['length'], chunk_size)} chunk(s)")
for length in (chunk_size, chunk_size + 1, 10_000_000):
    print(f"a file of {length:,} bytes -> {chunk_count(length, chunk_size)} chunks")

# %% [markdown]
# **Try it:** where is a given byte? Change `offset` and run the cell again.

# %%
offset = 1_000_000
chunk_number, position = where_is(offset, chunk_size)
print(f"byte {offset:,} is in chunk {chunk_number}, at position {position:,}")

# %% [markdown]
# ## What a big file becomes
#
# A PNG image of `BIG_FILE_MB` megabytes (10 with the defaults), made of random pixels
# so that it does not compress, uploaded the same way.
#
# **Predict, then run:** how many chunks will it take, and how big will the last one be?

# %%
side = math.isqrt(BIG_FILE_MB * 10**6 // 3)  # side x side pixels x 3 bytes: BIG_FILE_MB of pixels
noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
big = png(noise, compress_level=0)  # stored uncompressed: quick to make, and noise would not shrink anyway
response = await upload("noise.png", big)

big_document = await db.fs.files.find_one({"filename": "noise.png"}, sort=[("uploadDate", -1), ("_id", -1)])
big_chunks = await db.fs.chunks.find({"files_id": big_document["_id"]}).sort("n").to_list(None)
sizes = [len(chunk["data"]) for chunk in big_chunks]
print(f"{big_document['length']:,} bytes -> {len(big_chunks)} chunks; "
      f"expected {chunk_count(big_document['length'], chunk_size)}")
print(f"full chunks: {sizes.count(chunk_size)} of {chunk_size:,} bytes; the last one: {sizes[-1]:,} bytes "
      f"= {big_document['length']:,} - {len(sizes) - 1} x {chunk_size:,}")
print("the chunks, joined, are the file:", b"".join(chunk["data"] for chunk in big_chunks) == big)

# %%
figure, ax = plt.subplots(figsize=(8, 3), layout="constrained")
ax.bar([chunk["n"] for chunk in big_chunks], [size / 1024 for size in sizes], width=0.8, color=lab.BLUE,
       label="the chunk's data")
ax.axhline(chunk_size / 1024, color=lab.GREY, linestyle=":", linewidth=1.5,
           label=f"chunkSize, {chunk_size // 1024} KiB")
ax.set_xlabel("chunk number n")
ax.set_ylabel("size (KiB)")
ax.set_title(f"noise.png, {big_document['length'] / 1e6:.1f} MB: {len(big_chunks)} chunks, "
             "all full but the last", loc="left", fontsize=10)
ax.set_ylim(0, chunk_size / 1024 * 1.35)  # room for the legend above the bars
ax.legend(loc="upper right", fontsize=8, ncols=2)
plt.show()

# %% [markdown]
# To read the byte in the middle of the file, GridFS needs one chunk, not the whole
# file: this is what makes Range requests (part 3) cheap.

# %%
middle = len(big) // 2
n, position = where_is(middle, chunk_size)
chunk = await db.fs.chunks.find_one({"files_id": big_document["_id"], "n": n})
print(f"byte {middle:,} is in chunk {n}, at position {position:,}: "
      f"{chunk['data'][position]} (and in the file: {big[middle]})")

# %% [markdown]
# One thing part 1 does not show: on the way in, Tornado read the whole request into
# memory before the handler ran, and parsing the form copied the file out of it once
# more. GridFS stored it in chunks, but the server held all of it at once. Part 3
# streams uploads chunk by chunk instead (notebook 04 plots the difference).
#
# ## The embedded database, and a real MongoDB
#
# Unless `MONGODB_URI` is set, the database here is
# [SecantusDB](https://pypi.org/project/secantusdb/) 0.7.0b3, started by
# `coursekit.database.scratch_db()` as a separate process (`secantusd-py`, its Python server).
# It speaks MongoDB's wire protocol, so Motor and PyMongo talk to it as to a
# `mongod`, and it stores its data with WiredTiger, MongoDB's own storage engine.
# It is one node, and it says it is the primary of a replica set of one (named
# `secantus`): drivers then allow what a replica set has, change streams among them
# (part 5 uses them). No sharding. Here is what it says it is:

# %%
build_info = await client.admin.command("buildInfo")
hello = await client.admin.command("hello")
print(f"version {build_info['version']}, max wire version {hello['maxWireVersion']}, "
      f"replica set: {hello.get('setName', 'none')}, "
      f"largest document: {hello['maxBsonObjectSize']:,} bytes")

# %% [markdown]
# It answers as MongoDB 8.2 would, but it is not MongoDB. The next cell *tries*
# features that MongoDB has, each against this database, and prints what happens:
# a feature that works, a refusal with the server's own message, or an answer that
# is not MongoDB's. Against a real MongoDB (set `MONGODB_URI`) it prints that
# server's answers instead: a standalone `mongod` refuses transactions and change
# streams too, where a replica set (or Atlas) runs both.

# %%
features = db.features  # a collection of our own, for the tries
await features.drop()
await features.insert_many([{"word": word, "group": word[0]} for word in ("apple", "avocado", "banana")])


async def transaction():
    async with await client.start_session() as db_session, db_session.start_transaction():
        await features.insert_one({"word": "cherry", "group": "c"}, session=db_session)
    return "committed"


async def change_stream():
    async with features.watch(max_await_time_ms=500) as stream:
        inserted = time.perf_counter()
        await features.insert_one({"word": "date", "group": "d"})
        for _ in range(10):
            if change := await stream.try_next():
                seen = (time.perf_counter() - inserted) * 1000
                return (f"saw the {change['operationType']} of {change['fullDocument']['word']!r}, "
                        f"{seen:.0f} ms after it was sent")
    return "saw nothing"


async def text_search():
    await features.create_index([("word", "text")])
    return [doc["word"] async for doc in features.find({"$text": {"$search": "banana"}})]


class WrongAnswer(Exception):
    """An answer that is not the one MongoDB gives."""


async def map_reduce():
    result = await db.command("mapReduce", "features", map="function() { emit(this.group, 1); }",
                              reduce="function(key, values) { return Array.sum(values); }", out={"inline": 1})
    groups, there_are = len(result["results"]), len(await features.distinct("group"))
    if groups != there_are:
        raise WrongAnswer(f"it answers ok, with {groups} groups where there are {there_are}")
    return f"{groups} groups"


async def aggregation():
    pipeline = [
        {"$group": {"_id": "$group", "words": {"$sum": 1}}},
        {"$lookup": {"from": "features", "localField": "_id", "foreignField": "group", "as": "same"}},
        {"$setWindowFields": {"sortBy": {"_id": 1}, "output": {"running": {
            "$sum": "$words", "window": {"documents": ["unbounded", "current"]}}}}},
    ]
    return [(group["_id"], group["words"], len(group["same"]), group["running"])
            async for group in features.aggregate(pipeline)]


async def replica_set_status():
    status = await client.admin.command("replSetGetStatus")
    return f"set {status['set']!r}, members: " + ", ".join(
        f"{member['name']} ({member['stateStr']})" for member in status["members"])


tries = {
    "a multi-document transaction": transaction,
    "a change stream": change_stream,
    "a text index and $text": text_search,
    "a hashed index (a shard key for sharding)": lambda: features.create_index([("word", "hashed")]),
    "a $where query (JavaScript)": lambda: features.find({"$where": "this.word.length > 5"}).to_list(None),
    "mapReduce (JavaScript)": map_reduce,
    "replica set status": replica_set_status,
    "explain (the plan's first stage)": lambda: features.find({"word": "apple"}).explain(),
    "$group, $lookup and $setWindowFields": aggregation,
}
for what, attempt in tries.items():
    try:
        result = await attempt()
    except PyMongoError as error:
        print(f"✘ {what}: refused, {type(error).__name__}: {str(error).split(', full error')[0]}")
    except WrongAnswer as error:
        print(f"✘ {what}: {error}")
    else:
        if isinstance(result, dict):  # explain's answer: show its plan
            result = result["queryPlanner"]["winningPlan"]["stage"]
        print(f"✔ {what}: {result}")

# %% [markdown]
# What it does not do that MongoDB does, as the cell above measured with SecantusDB
# 0.7.0b3:
#
# - **Change streams work**, as on a replica set or Atlas, because it answers as a
#   replica set of one; a standalone `mongod` refuses them ("only supported on replica
#   sets"). (Started with `--standalone`, SecantusDB refuses them too.)
# - **No text indexes, no `$text`; no hashed indexes**, which MongoDB has on any
#   deployment (a hashed index is what a hashed shard key needs).
# - **No JavaScript**: `$where` is refused, and `mapReduce` answers, but with no
#   results at all, where MongoDB groups the documents. (MongoDB deprecates
#   `mapReduce` and `$where` in favour of aggregation, which SecantusDB does run.)
# - **A replica set of one node only**: `replSetGetStatus` names itself as the one member,
#   so nothing about elections, read preferences or `w: "majority"` across nodes can be
#   tried here.
# - Multi-document transactions and change streams both need a replica set (or a sharded
#   cluster) in production: a standalone `mongod` refuses them.
#
# Nothing in the stages uses what it lacks (part 5 uses change streams): GridFS needs only inserts, finds, deletes
# and the index on `files_id` and `n`, which behave as MongoDB's (the rest of this
# notebook shows them). It is slower than `mongod`: its own README puts its Python
# server at 2 to 27 times slower per operation.
#
# **To run every notebook against a real MongoDB**, set `MONGODB_URI` before starting
# Jupyter; the notebooks then start no database of their own, create their
# `notebook_...` databases there and drop them in their last cell:
#
# ```console
# MONGODB_URI="mongodb://localhost:27017" .venv/bin/jupyter lab notebooks/
# ```
#
# (A replica set: `mongodb://host1,host2,host3/?replicaSet=rs0`; Atlas:
# `mongodb+srv://user:password@cluster.example.mongodb.net/`.)
#
# ## Exercises
#
# Each exercise gives you a cell to complete, then a cell that checks your answer:
# run it, and it says "solved" or what is still wrong. The solution is folded away
# in the cell after the check.
#
# ### Exercise 1: a byte range, straight from `fs.chunks`
#
# Complete `read_range(file_id, start, end)`: return bytes `start` to `end - 1` of a
# GridFS file, reading from `db.fs.chunks` only the chunks that hold them (use
# `where_is`, and a query on `files_id` and `n`). Part 3 serves Range requests
# this way.

# %%
async def read_range(file_id, start, end):
    return b""  # your turn

# %%
async def check_exercise_1():
    cases = [(0, 10), (chunk_size - 5, chunk_size + 5), (middle, middle + 3 * chunk_size), (len(big) - 7, len(big))]
    return lab.check("Exercise 1", [
        lab.expect(f"read_range(big file, {start:,}, {end:,})", await read_range(big_document["_id"], start, end),
                   big[start:end])
        for start, end in cases
    ])

await check_exercise_1();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
async def read_range(file_id, start, end):
    first, offset = where_is(start, chunk_size)
    last = where_is(end - 1, chunk_size)[0]
    chunks = db.fs.chunks.find({"files_id": file_id, "n": {"$gte": first, "$lte": last}}).sort("n")
    data = b"".join([chunk["data"] async for chunk in chunks])
    return data[offset:offset + end - start]

await check_exercise_1();

# %% [markdown]
# ### Exercise 2: smaller chunks
#
# A bucket can have another name and another chunk size. Complete `store_in_small_chunks(data)`:
# store `data` in a bucket named `small`, in chunks of 64 KiB, and return the new
# file's id. (`MotorGridFSBucket(db, bucket_name=..., chunk_size_bytes=...)`; its
# collections are then `small.files` and `small.chunks`.)

# %%
async def store_in_small_chunks(data):
    return await MotorGridFSBucket(db).upload_from_stream("small.bin", data)  # your turn

# %%
async def check_exercise_2():
    data = big[:300_000]
    new_id = await store_in_small_chunks(data)
    stored = await db.small.chunks.find({"files_id": new_id}).sort("n").to_list(None)
    return lab.check("Exercise 2", [
        lab.expect("chunks in small.chunks", len(stored), chunk_count(len(data), 64 * 1024)),
        lab.expect("the chunks, joined, are the data", b"".join(chunk["data"] for chunk in stored) == data, True),
    ])

await check_exercise_2();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
async def store_in_small_chunks(data):
    bucket = MotorGridFSBucket(db, bucket_name="small", chunk_size_bytes=64 * 1024)
    return await bucket.upload_from_stream("small.bin", data)

await check_exercise_2();

# %% [markdown]
# ### Exercise 3: what is stored, by type
#
# Complete `bytes_by_type()`: with one aggregation on `db.fs.files`, return a dict
# from each content type (`metadata.contentType`) to the total `length` of the files
# of that type, `None` for files stored without one. (`$group` with `$sum`.)

# %%
async def bytes_by_type():
    return {}  # your turn

# %%
async def check_exercise_3():
    wanted = {}
    async for document in db.fs.files.find():
        content_type = (document.get("metadata") or {}).get("contentType")  # None: stored without one
        wanted[content_type] = wanted.get(content_type, 0) + document["length"]
    return lab.check("Exercise 3", [lab.expect("bytes_by_type()", await bytes_by_type(), wanted)])

await check_exercise_3();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
async def bytes_by_type():
    pipeline = [{"$group": {"_id": "$metadata.contentType", "bytes": {"$sum": "$length"}}}]
    return {group["_id"]: group["bytes"] async for group in db.fs.files.aggregate(pipeline)}

await check_exercise_3();

# %% [markdown]
# ## Recap
#
# - An upload is a `multipart/form-data` body; part 1 stores the file in GridFS and
#   redirects to the home page.
# - GridFS keeps a file as one document in `fs.files` (its length, chunk size, date,
#   name and metadata) and numbered chunks in `fs.chunks`, found in order through the
#   unique index on `files_id` and `n`.
# - A file of `length` bytes takes `ceil(length / chunkSize)` chunks; byte `offset`
#   is in chunk `offset // chunkSize`. Reading part of a file means reading only the
#   chunks that hold it.
# - The embedded database speaks MongoDB's protocol on MongoDB's storage engine, as
#   one node, without change streams, text or hashed indexes, or JavaScript; set
#   `MONGODB_URI` to use a real MongoDB instead.
#
# ## Review questions
#
# 1. A file of exactly two chunk sizes: how many chunks? And one byte more?
# 2. Why does GridFS need the index on `files_id` and `n` to be unique?
# 3. Part 1 stores a 10 MB upload in chunks of 255 KiB. How much of it did the
#    server hold in memory at once, and why?
# 4. Why can `fs.chunks` be sharded while a single big document could not be split?
#
# <details><summary>Answers</summary>
#
# 1. Two; three, the last holding one byte.
# 2. So that a chunk cannot be stored twice: reading chunks `0, 1, 2, ...` in order must
#    give the file exactly once. The index also makes that read fast.
# 3. All of it, and more: Tornado buffers the whole request body before the handler
#    runs, and parsing the form copies the file out of it.
# 4. Each chunk is a document of its own, and a shard holds whole documents.
#
# </details>
#
# ## Stop everything
#
# Part 1's server, our database (dropped), the client, and the embedded database with
# its folder. Running this cell twice is fine.

# %%
await session.close()

# %% [markdown]
# ---
# Previous: [notebook 01, async fundamentals](01_async_fundamentals.ipynb) ·
# Next: [notebook 03, blocking work](03_blocking_work.ipynb), with
# [part 2's lesson](../part2_thumbnails/README.md) · All notebooks: [README](README.md)
