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
# # Streaming, with part 3 running
#
# **Stage: part 3, `part3_streaming`** (its lesson is [part3_streaming/README.md](../part3_streaming/README.md)).
# This notebook serves part 2 and part 3 inside the kernel, side by side, and
# watches the kernel's memory while they work.
#
# ## What you will learn
#
# 1. how to watch a server's memory: a *memory probe*, a thread that notes the
#    kernel's resident memory every 10 ms;
# 2. what a big upload costs when it is buffered (part 2) and when it is streamed into
#    GridFS as it arrives (part 3), plotted over time;
# 3. what the partial-download storm costs, hundreds of clients that ask for the whole
#    file, read one byte and go, against part 3 and against Motor's `GridFSHandler`;
# 4. `Range` requests and validators (`ETag`, `If-None-Match`, `Last-Modified`,
#    `HEAD`), tried by hand, as raw HTTP over a socket;
#
# then two exercises: which chunks a `Range` touches, and resuming a download.
#
# It starts its own database: the MongoDB at `MONGODB_URI` when that variable is set,
# else the embedded database, SecantusDB, in a temporary folder. Run the cells in
# order; any cell can be run again, and so can the whole notebook (the setup cell
# stops what the last run started). The parameters cell holds the numbers worth
# varying; cells marked **Try it** are there to be changed; each exercise has a
# check, and a solution folded away below it. The last cell stops everything and
# deletes what the notebook stored. The figures depend on your machine (those quoted
# here come from a shared machine with 2 cores); the shapes of the plots do not.

# %% tags=["parameters"]
UPLOAD_MB = 100  # the big file's size, in MB (millions of bytes)
STORM_CLIENTS = 500  # one-byte readers sent to part 3
GRIDFS_HANDLER_CLIENTS = 20  # one-byte readers sent to Motor's GridFSHandler (each costs it the whole file)
CONCURRENCY = 20  # one-byte readers connected at once
MEMORY_INTERVAL = 0.01  # seconds between two samples of the kernel's memory

# %%
import asyncio
import collections
import contextlib
import datetime
import email.utils
import gc
import json
import logging
import os
import threading
import time
from urllib.parse import urlsplit

import matplotlib.pyplot as plt
import motor.web
import psutil
import tornado.web
from bson import ObjectId
from tornado.httpclient import AsyncHTTPClient

from coursekit import lab  # the course's toolkit: the Session that starts and stops things, the colours
from coursekit.clients import Client, RawConnection, multipart_around
from coursekit.stages import StageCode, load_stage
from coursekit.waiting import eventually

part2, part3 = StageCode(load_stage("part2_thumbnails")), StageCode(load_stage("part3_streaming"))

# %% [markdown]
# ## Start the database, part 2, part 3 and Motor's `GridFSHandler`
#
# Each stage gets a database of its own on the same server: part 3 lists files that
# are not images, which part 2's home page would not know how to show. Tornado's
# `HTTPServer` refuses bodies over 100 MiB unless told otherwise; part 3's handlers
# raise that limit for themselves, one request at a time, but part 2's server needs
# it raised up front (to 1 GiB here), as `bench/harness.py` does.
#
# Beside them, for the storm below, the file server of the 2014 code: Motor's
# `GridFSHandler`, which writes the file with `stream_to_handler()`, as parts 1 and 2
# do. Running this cell again stops the servers and the database of the last run first.

# %%
class GridFSHandlerById(motor.web.GridFSHandler):
    """Motor's handler, finding files by id (it finds them by name unless told otherwise)."""

    finished = 0  # requests served to the end, for clients gone or not

    def get_gridfs_file(self, bucket, filename, request):
        return bucket.open_download_stream(ObjectId(filename))

    def on_finish(self):
        GridFSHandlerById.finished += 1


session = await lab.Session.start(database=True)
client = await session.motor_client()
dbs = {name: client[f"{session.db_name}_{name[-1]}"] for name in ("part 2", "part 3")}  # dropped at the end
base_urls = {
    "part 2": await session.serve("part 2", part2.make_app(dbs["part 2"]), max_body_size=2**30,
                                  max_buffer_size=2**30),
    "part 3": await session.serve("part 3", part3.make_app(dbs["part 3"])),
    "GridFSHandler": await session.serve("GridFSHandler", tornado.web.Application(
        [(r"/fs/(\w+)", GridFSHandlerById, {"database": dbs["part 3"]})])),
}
for name, base_url in base_urls.items():
    print(f"{name}: {base_url}")

# %% [markdown]
# ## A memory probe
#
# The servers live in this kernel, so the kernel's memory is theirs, plus Jupyter's
# own, which stays put. A thread notes the resident size (RSS, what the operating
# system has given the process) every `MEMORY_INTERVAL` seconds. A thread, not a coroutine: when the
# event loop is stuck in a long piece of work, a coroutine could not wake up to look,
# and we would miss the peak.
#
# The clients in this notebook are written never to hold more than a piece of a file
# at a time, so that what grows is the servers' memory and not theirs.

# %%
@contextlib.contextmanager
def memory_trace():
    """Yield a list that fills with (seconds, MB of RSS) from a thread, until the block ends."""
    process, samples, done = psutil.Process(), [], threading.Event()
    gc.collect()  # start from a clean heap: what was freed before is not counted
    start = time.perf_counter()

    def sample():
        while not done.is_set():
            samples.append((time.perf_counter() - start, process.memory_info().rss / 1e6))
            done.wait(MEMORY_INTERVAL)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def growth(samples):
    """How far memory rose above where it started, in MB."""
    return max(mb for _, mb in samples) - samples[0][1]


with memory_trace() as idle:
    await asyncio.sleep(0.5)
print(f"the kernel holds {idle[0][1]:.0f} MB; idle for 0.5 s it grew by {growth(idle):.1f} MB")

# %% [markdown]
# ## One big upload, buffered and streamed
#
# A file of `UPLOAD_MB` megabytes of random bytes, written to a temporary folder of
# the session's, a megabyte at a time.
# `send_file()` gives it to Tornado's HTTP client as a *body producer*: the client
# calls it with a `write` function and awaits each write, so the file goes out in
# 64 KiB pieces and is never whole in memory, on this side.
#
# Part 3 takes it as `PUT /upload/<name>`, the body being the file (`curl -T`).
# Part 2 takes files in a form only, so it gets the same bytes wrapped in a
# `multipart/form-data` body: `multipart_around()`, from the course's toolkit, gives
# what goes before the file's bytes and what goes after. Both stages protect
# themselves against cross-site request forgery: a first `GET` gives us the `_xsrf`
# cookie, and its token goes back in the `X-XSRFToken` header. The toolkit's `Client`
# does both, as a browser would.

# %%
folder = await session.temporary_folder()
big_file = folder / "big.bin"
with big_file.open("wb") as out:
    for _ in range(UPLOAD_MB):
        out.write(os.urandom(10**6))
size = big_file.stat().st_size
print(f"{big_file.name}: {size:,} bytes")

http = AsyncHTTPClient()
visitors = {name: Client(base_urls[name]) for name in ("part 2", "part 3")}


def send_file(path, before=b"", after=b""):
    """A body producer: `before`, the file 64 KiB at a time, `after`; each write awaited."""
    async def produce(write):
        await write(before)
        with path.open("rb") as file:
            while piece := file.read(64 * 1024):
                await write(piece)  # waits until the connection has taken it
        await write(after)
    return produce


async def put_streamed(path):
    """PUT the file to part 3; it answers 201 and the id of the upload, in JSON."""
    visitor = visitors["part 3"]
    await visitor.visit()  # the _xsrf cookie
    return await visitor.fetch(f"/upload/{path.name}", "PUT", headers={"Content-Length": str(path.stat().st_size)},
                               body_producer=send_file(path), request_timeout=300)


async def post_form(path):
    """POST the file to part 2, in a form as a browser would."""
    visitor = visitors["part 2"]
    await visitor.visit()  # the _xsrf cookie, and where the form posts
    before, after, form_type = multipart_around("file", path.name, "application/octet-stream")
    headers = {"Content-Type": form_type, "Content-Length": str(len(before) + path.stat().st_size + len(after))}
    return await visitor.fetch(visitor.form_action, "POST", headers=headers,
                               body_producer=send_file(path, before, after), request_timeout=300)

# %% [markdown]
# Now the two uploads, one after the other, each with the probe running. Part 3 first:
# what part 2 allocates might otherwise still be counted against it.
#
# Part 2 answers its upload with 400, "not an image" (the file is random bytes), and
# logs it: expect two **warning** lines from Tornado below the cell.

# %%
uploads = {}
for name, upload in [("part 3, streamed", put_streamed), ("part 2, buffered", post_form)]:
    with memory_trace() as samples:
        start = time.perf_counter()
        response = await upload(big_file)
        seconds = time.perf_counter() - start
        await asyncio.sleep(0.3)  # and a moment after,
        gc.collect()  # with the garbage collected, as Python does from time to time
        await asyncio.sleep(0.2)
    uploads[name] = samples
    print(f"{name}: {response.code} {response.reason} in {seconds:.1f} s ({size / 1e6 / seconds:.0f} MB/s); "
          f"memory grew by {growth(samples):.1f} MB at the peak")
    if response.code == 201:
        upload_id = json.loads(response.body)["id"]
print("part 3 stored the file as upload", upload_id)

# %%
def plot_memory(ax, samples, color, label, linestyle="-"):
    times, mbs = zip(*samples)
    ax.plot(times, [mb - mbs[0] for mb in mbs], color=color, linewidth=1.5, label=label, linestyle=linestyle)


figure, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
for (name, samples), color, linestyle in zip(uploads.items(), (lab.GOOD, lab.BAD), ("-", "--")):
    plot_memory(ax, samples, color, f"{name}: +{growth(samples):.0f} MB at the peak", linestyle)
ax.axhline(size / 1e6, color=lab.GREY, linestyle=":", linewidth=1.5, label="the file's size")
ax.set_xlabel("time (seconds since the upload started)")
ax.set_ylabel("memory growth (MB)")
ax.set_title(f"The kernel's memory while a {size / 1e6:.0f} MB file is uploaded", loc="left", fontsize=10)
ax.legend(loc="upper left", fontsize=8)
plt.show()

# %% [markdown]
# What you see:
#
# - **Part 2** (vermillion, dashed) climbs while the body arrives: Tornado keeps every piece until
#   the body is complete, joins them into one `bytes`, and the form parser copies the
#   file out of it. Three or four times the file's size, for one upload; a few visitors
#   uploading at once, and the server runs out of memory. And all of it for nothing:
#   only once the body was in could the handler look at the file and answer 400,
#   "not an image". Part of the memory stays taken until Python's garbage collector
#   runs (the handler, the error and its traceback refer to one another); we call
#   it ourselves after 0.3 s, where Python would do it in its own time.
# - **Part 3** (blue, solid) stays flat. `@stream_request_body` hands each piece to
#   `data_received()`, and Tornado reads no more until it returns: once a chunk of
#   255 KiB is whole, its GridFS insert starts, and the next chunk waits for it. Two
#   chunks wait in memory at most, never the file: a 10 GB upload would cost the
#   same few MB.
#
# [`bench/big_upload.py`](../bench/big_upload.py) does the same with 1 GiB and
# two separate processes: part 2 grew by 4296 MB, part 3 by 2.5 MB.
#
# ## The partial-download storm
#
# The 2012 blog post that started this course asked: what if many clients ask for a
# big file, read its first byte, and go? A server that reads the file faster than
# clients take it, or goes on reading after they have gone, pays in memory and in
# database reads. Each of our clients speaks HTTP by hand over a connection of its own
# (the toolkit's `RawConnection`), reads the head and one byte of the body, and closes
# the connection, `CONCURRENCY` of them at a time.
#
# Beside part 3 we serve the same file the 2014 way, with Motor's `GridFSHandler`,
# started with the others: it reads chunk after chunk and never waits for the client
# to take them. It gets fewer clients (`GRIDFS_HANDLER_CLIENTS` against
# `STORM_CLIENTS`), as it reads the whole file for each, gone or not.
#
# Part 3 logs each download its client left as a 499, which Tornado's access log
# writes as a warning, as it does every 4xx: hundreds of lines here. The storm's cell
# quiets that log (to errors only) while it runs, and gives it back its level after.

# %%
file_id = (await dbs["part 3"].uploads.find_one({"_id": ObjectId(upload_id)}))["original"]
storm_urls = {"part 3": f"{base_urls['part 3']}/uploads/{upload_id}/orig",
              "GridFSHandler": f"{base_urls['GridFSHandler']}/fs/{file_id}"}
for name, url in storm_urls.items():
    print(f"{name:14} {url}")

# %%
async def read_one_byte(url):
    """GET `url` by hand, read the head and one byte of the body, and hang up."""
    # The connection is closed at the end with the rest unread: the server sees it reset.
    async with RawConnection(url) as connection:
        await connection.send_headers("GET", urlsplit(url).path)
        head = await connection.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        await connection.reader.readexactly(1)


async def storm(url, clients):
    """`clients` one-byte readers of `url`, CONCURRENCY at a time."""
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one():
        async with slots:
            await read_one_byte(url)

    await asyncio.gather(*(one() for _ in range(clients)))


async def until_finished(name, requests):
    """Wait until GridFSHandler has finished `requests`, each once it has read the whole
    file, client gone or not. Part 3 stops reading when a client goes: nothing to wait for."""
    if name == "GridFSHandler":
        await eventually(lambda: GridFSHandlerById.finished >= requests, timeout=300)
        GridFSHandlerById.finished = 0


storms = {}
access_log, level = logging.getLogger("tornado.access"), logging.getLogger("tornado.access").level
access_log.setLevel(logging.ERROR)  # a 499 warning for each client gone: hundreds
try:
    for name, clients in [("part 3", STORM_CLIENTS), ("GridFSHandler", GRIDFS_HANDLER_CLIENTS)]:
        await storm(storm_urls[name], 5)  # warm-up: connections to the database, buffers
        await until_finished(name, 5)
        with memory_trace() as samples:
            start = time.perf_counter()
            await storm(storm_urls[name], clients)
            seconds = time.perf_counter() - start
            await until_finished(name, clients)  # what the server still does for the clients gone
            busy = time.perf_counter() - start
            await asyncio.sleep(0.5)
        storms[name] = {"samples": samples, "clients gone": seconds, "clients": clients}
        print(f"{name:14}: {clients} clients gone after {seconds:.1f} s, the server busy {busy - seconds:.1f} s "
              f"more; memory grew by {growth(samples):.1f} MB at the peak")
finally:
    access_log.setLevel(level)

# %%
figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True, layout="constrained")
for ax, (name, run), color, linestyle in zip(axes, storms.items(), (lab.GOOD, lab.BAD), ("-", "--")):
    plot_memory(ax, run["samples"], color, "the kernel's memory", linestyle)
    ax.axvline(run["clients gone"], color=lab.GREY, linestyle=":", linewidth=1.5, label="the last client gone")
    ax.set_title(f"{name}, {run['clients']} clients: +{growth(run['samples']):.0f} MB at the peak",
                 loc="left", fontsize=10)
    ax.set_xlabel("time (seconds since the storm started)")
    ax.legend(loc="upper left", fontsize=8)
axes[0].set_ylabel("memory growth (MB)")
figure.suptitle(f"Clients that read one byte of a {size / 1e6:.0f} MB file and go, {CONCURRENCY} at a time "
                "(note the client counts)", fontsize=10)
plt.show()

# %% [markdown]
# What you see:
#
# - **Part 3** served hundreds of clients with its memory nearly flat (a few tens of
#   MB at most, with `CONCURRENCY` clients connected at a time): it reads one read ahead
#   of what it sends (a chunk at first, doubling up to 8 chunks), and two reads ahead
#   only once a client has taken 4 MiB. When the connection resets,
#   `on_connection_close()` marks the client gone, and the next `flush()` raises: it
#   stops reading, and nothing is left to do once the last client has gone.
# - **`GridFSHandler`** reads the file as fast as the database gives it (a GridOut's
#   cursor fetches the chunks in the batches the database sends, up to 16 MiB each),
#   and hands each chunk to `write()` and `flush()` without waiting for the client to
#   take it. A few such requests hold
#   hundreds of MB between them, and each reads the whole file, for no one, after its
#   client has gone: look where the dotted line is. A small fraction of part 3's
#   clients, and most of the work spent on bytes nobody wanted. (When it is all over,
#   memory may fall below where it started: what the warm-up had left is given back
#   too.)
#
# [`bench/partial_reads.py`](../bench/partial_reads.py) does it with 2000 clients of a
# 100 MB file, measuring a separate server process: part 3's memory peaked 24 to 69 MB
# up on a busy machine (14 to 15 MB, with a 200 MB file, on an idle one).
#
# ## Range requests and validators, by hand
#
# A download manager resumes, a video player seeks: they ask for part of a file with a
# `Range` header. A browser that has a file already asks whether it changed, with the
# validators it was given, `ETag` and `Last-Modified`. Let us speak HTTP to part 3 by
# hand, over a socket, to see exactly what goes back and forth. `exchange()` sends the
# request as written, prints the answer's status line and the headers that matter
# here (`Date`, `Server`, `Content-Type` and the safety headers left out), and returns
# the body, reading it in pieces and keeping at most its first bytes.

# %%
SHOWN = ("content-length", "content-range", "accept-ranges", "etag", "last-modified", "cache-control")
Answer = collections.namedtuple("Answer", "status headers body size")


async def exchange(method, path, *headers, server="part 3", keep=64):
    """Send one request and print it, then the answer's head: return an Answer, its
    `body` the first `keep` bytes of the body and its `size` the body's length."""
    async with RawConnection(base_urls[server]) as connection:
        request = [f"{method} {path} HTTP/1.1", f"Host: {connection.host}", "Connection: close", *headers]
        print("\n".join(f"> {line}" for line in request))
        await connection.send(("\r\n".join(request) + "\r\n\r\n").encode())
        status_line, *lines = (await connection.reader.readuntil(b"\r\n\r\n")).decode().strip().split("\r\n")
        answer_headers = dict(line.split(": ", 1) for line in lines)
        print(f"< {status_line}")
        for name, value in answer_headers.items():
            if name.lower() in SHOWN:
                print(f"< {name}: {value}")
        body, length = b"", 0
        while method != "HEAD" and (piece := await connection.reader.read(256 * 1024)):  # until the server closes
            body += piece[:keep - len(body)]
            length += len(piece)
    print(f"({length:,} bytes of body)\n")
    return Answer(int(status_line.split()[1]), {name.lower(): value for name, value in answer_headers.items()},
                  body, length)


file_path = f"/uploads/{upload_id}/orig"
head = await exchange("HEAD", file_path)
etag, modified = head.headers["etag"], head.headers["last-modified"]

# %% [markdown]
# `HEAD` gets the headers a `GET` would, without the body. They say what a client may
# do with this file:
#
# - `Accept-Ranges: bytes`: it may ask for a part of it;
# - `ETag`: the GridFS file's id, in quotes. A file is never changed in GridFS, only
#   replaced by a new one with a new id, so this tag names these exact bytes: a
#   *strong* validator;
# - `Last-Modified`: when it was uploaded, for clients that only know dates;
# - `Cache-Control`: keep it for a year, and do not even ask again (`immutable`).
#
# Now some ranges: the first 16 bytes, the last 16 (`bytes=-16`), 16 in the middle,
# one past the end, and two ranges at once. Each answer is checked against the file
# on disk. The range past the end is an error of the client's, which Tornado logs:
# expect a **warning** line (`416 GET ...`) below the cell.

# %%
def file_bytes(offset, count):
    with big_file.open("rb") as file:
        file.seek(offset)
        return file.read(count)


middle = size // 2
answers = {
    "first 16": (await exchange("GET", file_path, "Range: bytes=0-15"), file_bytes(0, 16)),
    "last 16": (await exchange("GET", file_path, "Range: bytes=-16"), file_bytes(size - 16, 16)),
    "middle": (await exchange("GET", file_path, f"Range: bytes={middle}-{middle + 15}"), file_bytes(middle, 16)),
}
for name, (answer, expected) in answers.items():
    print(f"{name}: {answer.status}, {answer.size} bytes, the file's own: {answer.body == expected}")
chunk_size = part3.CHUNK_SIZE
print(f"The middle bytes are in GridFS chunk n={middle // chunk_size} of {-(-size // chunk_size)}: "
      f"the only one part 3 read for them.\n")

past_the_end = await exchange("GET", file_path, f"Range: bytes={size}-")
two_ranges = await exchange("GET", file_path, "Range: bytes=0-0,-1")

# %% [markdown]
# What you see:
#
# - A range that exists gets **`206 Partial Content`**, a `Content-Range` that says
#   which bytes of how many, and those bytes only. To serve the middle of the file,
#   part 3 works out which chunk holds them (chunk arithmetic, as in notebook 02) and
#   reads that one: seeking costs the same at the start or at the end of a 10 GB file.
# - A range that starts past the end gets **416** (`Range Not Satisfiable`, as RFC 9110 names it) and
#   `Content-Range: bytes */<size>`, which tells the client how big the file is, and
#   a short error page.
# - Two ranges at once would need a `multipart/byteranges` answer. Part 3 does not
#   make those: it ignores the header and sends the whole file with **200**, which
#   RFC 9110 allows. So does Tornado's `StaticFileHandler`.
#
# Last, the validators. A browser that has the file sends back what it was given:
# `If-None-Match` with the ETag, or `If-Modified-Since` with the date. If its copy is
# current, the answer is **`304 Not Modified`** and no body at all.

# %%
await exchange("GET", file_path, f"If-None-Match: {etag}")
await exchange("GET", file_path, f'If-None-Match: "not-this-one", W/{etag}', "Range: bytes=0-15")
await exchange("GET", file_path, f"If-Modified-Since: {modified}")
hour_earlier = email.utils.format_datetime(email.utils.parsedate_to_datetime(modified) - datetime.timedelta(hours=1),
                                           usegmt=True)
older = await exchange("GET", file_path, f"If-Modified-Since: {hour_earlier}", "Range: bytes=0-15")
# The same list to Motor's GridFSHandler, with the ETag it gives this file:
theirs = (await exchange("HEAD", f"/fs/{file_id}", server="GridFSHandler")).headers["etag"]
again = await exchange("GET", f"/fs/{file_id}", f'If-None-Match: "not-this-one", W/{theirs}', "Range: bytes=0-15",
                       server="GridFSHandler")

# %% [markdown]
# What you see:
#
# - The ETag sent back as it came: **304**, no body. This is what makes a reload of
#   the gallery cheap; the browser still asks (unless `immutable` told it not to), but
#   nothing is sent.
# - A list of tags, one of them the same id marked weak (`W/`): still **304**.
#   `If-None-Match` compares tags *weakly*, whatever the marks; Tornado's
#   `check_etag_header()` does that, and understands lists and `*`. The `Range` is
#   not even looked at: nothing is sent.
# - The date it was given: **304**. A date an hour earlier: the file changed since,
#   as far as the client can tell, so the range is sent, **206**.
# - The same kind of list, with the ETag it gave, to Motor's `GridFSHandler`: it
#   compares the header with its tag as a plain string, finds no match, ignores the
#   `Range` it does not know, and sends the whole file again: **200**, every byte.
#
# **Try it:** send your own. Change the method and the headers, and run the cell
# again: `If-None-Match: *`, a range like `bytes=-0` or `bytes=5-2`, or `HEAD` with a
# `Range`. The lesson says what each should give; `part3.requested_range()` decides.
# (Those that answer 416 log a warning, as above.)

# %%
try_method, try_headers = "GET", ["Range: bytes=5-2"]
await exchange(try_method, file_path, *try_headers);

# %% [markdown]
# ## Exercises
#
# Each exercise gives you a cell to complete, then a cell that checks your answer:
# run it, and it says "solved" or what is still wrong. The solution is folded away
# in the cell after the check.
#
# ### Exercise 1: which chunks does a Range touch?
#
# Complete `chunks_touched(range_header, size, chunk_size)`: the numbers of the GridFS
# chunks part 3 reads to answer that `Range` header for a file of `size` bytes, in
# order. None for a range it answers with 416, and all of them when the header is not
# one range (part 3 then sends the whole file). `part3.requested_range(header, size)`
# tells you the bytes, as `(start, end)` with `end` excluded, or `None`.

# %%
def chunks_touched(range_header, size, chunk_size):
    return []  # your turn

# %%
def check_exercise_1():
    n = part3.CHUNK_SIZE
    cases = [("bytes=0-15", 10 * n, [0]), (f"bytes={n - 1}-{n}", 10 * n, [0, 1]), ("bytes=-16", 10 * n + 20, [10]),
             (f"bytes={3 * n}-", 5 * n, [3, 4]), (f"bytes={5 * n}-", 5 * n, []), ("bytes=0-0,-1", 3 * n, [0, 1, 2]),
             ("bytes=5-2", 3 * n, [0, 1, 2])]
    return lab.check("Exercise 1", [
        lab.expect(f"chunks_touched({header!r}, {size:,}, {n:,})", chunks_touched(header, size, n), wanted)
        for header, size, wanted in cases
    ])

check_exercise_1();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
def chunks_touched(range_header, size, chunk_size):
    start, end = part3.requested_range(range_header, size) or (0, size)
    if start >= end:
        return []
    return list(range(start // chunk_size, (end - 1) // chunk_size + 1))

check_exercise_1();

# %% [markdown]
# ### Exercise 2: resume a download
#
# A download broke after `have` bytes. Complete `resume(url, have)`: fetch the rest of
# the file, from byte `have` to the end, and return the answer's status code and
# body. Ask part 3 for that range only: the check wants a `206`, not the whole file
# again.

# %%
async def resume(url, have):
    response = await http.fetch(url)
    return response.code, response.body[have:]  # the whole file again: your turn

# %%
async def check_exercise_2():
    have = size - 300_000
    try:
        status, rest = await resume(storm_urls["part 3"], have)
    except Exception as error:
        status, rest = f"it raised {type(error).__name__}: {error}", None
    return lab.check("Exercise 2", [
        lab.expect("the status", status, 206),
        lab.expect("the rest of the file", rest, file_bytes(have, size - have)),
    ])

await check_exercise_2();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
async def resume(url, have):
    response = await http.fetch(url, headers={"Range": f"bytes={have}-"})
    return response.code, response.body

await check_exercise_2();

# %% [markdown]
# ## Recap
#
# - A buffered upload costs the server several times the file's size, until the last
#   byte is in; a streamed one (`@stream_request_body`, each piece awaited until
#   GridFS has the chunk before it) costs a chunk or two, whatever the size.
# - A download that awaits each `flush()` reads no faster than the client takes, and
#   stops when the client goes; `stream_to_handler()` reads the whole file for every
#   request, client or no client.
# - `Range` asks for bytes `start` to `end`: part 3 reads only the chunks that hold
#   them and answers 206, 416 past the end, and the whole file (200) for several
#   ranges at once.
# - `ETag` and `Last-Modified` let a browser ask "has it changed?" and get a 304 with
#   no body. `If-None-Match` is compared weakly, and may hold a list.
#
# ## Review questions
#
# 1. Why does part 2 need several times the file's size in memory for one upload?
# 2. What makes part 3's download stop reading when the client has gone?
# 3. A client asks for `bytes=-16` of a file of 100 bytes. Which bytes does it get,
#    with which status and `Content-Range`?
# 4. Why can part 3 use the GridFS file's id as a *strong* ETag?
# 5. A browser sends `If-None-Match` with the right tag and a `Range`. What comes back?
#
# <details><summary>Answers</summary>
#
# 1. Tornado keeps every piece of the body until it is complete, joins them into one
#    `bytes`, and the form parser copies the file out of that.
# 2. The connection's reset runs `on_connection_close()`, which marks the client
#    gone, and the next `flush()` raises `StreamClosedError`: the loop stops reading.
# 3. Bytes 84 to 99, with `206 Partial Content` and `Content-Range: bytes 84-99/100`.
# 4. A GridFS file is never changed, only replaced by a new one with a new id: the id
#    names these exact bytes.
# 5. `304 Not Modified`, no body: the validator is checked first, the range never.
#
# </details>
#
# ## Stop everything
#
# The three servers, our databases (dropped), the client, the temporary folder and the
# embedded database with its folder. Running this cell twice is fine.

# %%
await session.close()

# %% [markdown]
# ---
# Previous: [notebook 03, blocking work](03_blocking_work.ipynb) ·
# Next: [notebook 05, from Motor to PyMongo's async API](05_motor_to_pymongo_async.ipynb), then
# [part 4's lesson](../part4_production/README.md) · All notebooks: [README](README.md)
