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
# # Blocking work, with part 2 running
#
# **Stage: part 2, `part2_thumbnails`** (its lesson is [part2_thumbnails/README.md](../part2_thumbnails/README.md)).
# This notebook runs part 2 inside the kernel twice, once making thumbnails on the
# event loop and once on its thread pool, and shows what the difference looks like.
#
# ## What you will learn
#
# 1. how to see the event loop being busy: a *lag probe*, a coroutine that asks to
#    sleep 5 ms, again and again, and notes how late it wakes up;
# 2. what thumbnails made on the loop (with an executor that runs them inline) do to everyone
#    else, against thumbnails made on part 2's thread pool, plotted while large JPEGs
#    are uploaded;
# 3. what `asyncio.gather` gains when part 2 saves a photo and its thumbnail: two
#    GridFS saves one after the other against the same two side by side, timed;
#
# then two exercises: a thumbnail made on part 2's pool, and two saves that leave
# nothing behind when one of them fails.
#
# It starts its own database: the MongoDB at `MONGODB_URI` when that variable is set,
# else the embedded database, SecantusDB, in a temporary folder. Run the cells in
# order; any cell can be run again, and so can the whole notebook (the setup cell
# stops what the last run started). The parameters cell holds the numbers worth
# varying; cells marked **Try it** are there to be changed; each exercise has a
# check, and a solution folded away below it. The last cell stops everything and
# deletes what the notebook stored.
#
# Timings depend on your machine and on what else it is doing: run it again and the
# numbers move, the picture does not. The figures quoted below come from a shared
# machine with 2 cores, so they are given as ranges.

# %% tags=["parameters"]
PHOTOS = 4  # photos uploaded in each run
PHOTO_SIZE = (3464, 2309)  # their width and height, in pixels: 8 megapixels, 3:2
STAGGER = 0.15  # seconds between the starts of two uploads (0: all at once)
PROBE_INTERVAL = 0.005  # seconds the lag probe asks to sleep, again and again
SAVE_TRIES = 9  # how many times each way of saving is timed
NETWORK_DELAY_MS = 5  # how late the proxy hands on each piece of data, each way, in ms

# %%
import asyncio
import functools
import inspect
import io
import os
import statistics
import threading
import time

import matplotlib.pyplot as plt
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from PIL import Image
from tornado.ioloop import IOLoop

from coursekit import lab  # the course's toolkit: the Session that starts and stops things, the colours
from coursekit.clients import Client
from coursekit.database import local_address
from coursekit.executors import InlineExecutor
from coursekit.stages import StageCode, load_stage

part2 = StageCode(load_stage("part2_thumbnails"))  # what part 2 defines, whichever module holds it
print(f"{os.cpu_count()} cores; part 2 makes thumbnails on {part2.THUMBNAIL_THREADS} thread(s)")

# %% [markdown]
# ## Start the database and part 2, twice
#
# The same application, served on two ports of `127.0.0.1` by the kernel's event loop:
# `make_app(db, thumbnail_executor=InlineExecutor())` makes each thumbnail right in
# the handler, on the loop, as the smallest version of the lesson's chapter 1 does (the
# course's toolkit has that executor: its `submit()` runs the function at once, on the
# calling thread); `make_app(db)` hands it to part 2's thread pool with
# `run_in_executor`. Both store into one database of our own. Running this cell again
# stops the servers and the database of the last run first.

# %%
session = await lab.Session.start(database=True)
client = await session.motor_client()
db = client[session.db_name]
apps = {"on the loop": part2.make_app(db, thumbnail_executor=InlineExecutor()), "on the pool": part2.make_app(db)}
base_urls = {mode: await session.serve(f"part 2, thumbnails {mode}", app) for mode, app in apps.items()}
for mode, base_url in base_urls.items():
    print(f"part 2, thumbnails {mode}: {base_url}")

# %% [markdown]
# ## A few large JPEGs
#
# `PHOTOS` pictures of `PHOTO_SIZE` pixels (four of 8 megapixels with the defaults),
# generated here: blurry colour blobs under a fine grain, which keeps them big (a few
# MB each, like a phone photo) and so slow to decode. `make_thumbnail()` is part 2's
# own function; timed on its own, it shows how long each upload will keep a core busy.

# %%
def grainy_jpeg(width, height):
    """A JPEG of colour blobs with a fine grain: it compresses about as badly as a photo."""
    blobs = Image.merge("RGB", [Image.effect_noise((width // 16, height // 16), 80)
                                .resize((width, height), Image.Resampling.BICUBIC) for _ in "RGB"])
    picture = Image.blend(blobs, Image.effect_noise((width, height), 40).convert("RGB"), 0.25)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


photos = [grainy_jpeg(*PHOTO_SIZE) for _ in range(PHOTOS)]
thumbnail_ms = []
for photo in photos:
    start = time.perf_counter()
    image_type, width, height, thumbnail = part2.make_thumbnail(photo)
    thumbnail_ms.append((time.perf_counter() - start) * 1000)
print(f"{len(photos)} JPEGs of {width}x{height}, {statistics.mean(map(len, photos)) / 1e6:.1f} MB each")
print(f"make_thumbnail(): {min(thumbnail_ms):.0f} to {max(thumbnail_ms):.0f} ms each, "
      f"giving a {Image.open(io.BytesIO(thumbnail)).size} PNG of {len(thumbnail):,} bytes")

# %% [markdown]
# Tens of milliseconds of pure CPU work, and no `await` anywhere inside: while it runs
# on the event loop's thread, the loop can do nothing else.
#
# ## A lag probe
#
# How do we *see* the loop being busy? Ask it to wake us up in 5 ms, note the time
# when it does, and repeat. An idle loop wakes us a fraction of a millisecond late;
# a loop stuck in a thumbnail wakes us about as late as the thumbnail takes (the
# times printed above). The lag is how long any visitor's request, any database
# reply, anything at all would have waited too.

# %%
async def lag_probe(stop, start):
    """(seconds since `start`, lag in ms) each time a sleep of PROBE_INTERVAL ends, until `stop` is set."""
    samples = []
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL)
        woke = time.perf_counter()
        samples.append((woke - start, (woke - before - PROBE_INTERVAL) * 1000))
    return samples


stop = asyncio.Event()
probe = asyncio.create_task(lag_probe(stop, time.perf_counter()))
await asyncio.sleep(0.5)  # the loop has nothing else to do
stop.set()
idle = [lag for _, lag in await probe]
print(f"idle: {len(idle)} wake-ups in 0.5 s, lag median {statistics.median(idle):.2f} ms, "
      f"max {max(idle):.2f} ms")

# %% [markdown]
# ## Upload while the probe runs
#
# Part 2 protects its form against cross-site request forgery, so a script uploads
# as a careful client would: the toolkit's `Client` opens the home page once, keeps
# the `_xsrf` cookie, and sends the token back in the `X-XSRFToken` header with each
# upload. The uploads go from this kernel to the server in this kernel, over Tornado's
# `AsyncHTTPClient`.
#
# Each run: the probe alone for 0.2 s, then the uploads, one starting every `stagger`
# seconds as visitors would arrive, then the probe alone again. Same photos, same
# database; only where the thumbnails are made changes. After each run, what it
# stored is deleted: a database saves faster while it is nearly empty, and both runs
# should start from the same place.
#
# **Predict, then run:** with thumbnails on the loop, how late will the probe wake up
# at worst? And on the pool?

# %%
async def upload(visitor, filename, data):
    response = await visitor.upload(data, filename, "image/jpeg")
    assert response.code == 302, (response.code, response.body[:200])  # stored, back to the home page


async def upload_later(delay, visitor, filename, data):
    await asyncio.sleep(delay)
    await upload(visitor, filename, data)


async def lag_during_uploads(mode, stagger):
    """The probe's samples while the photos are uploaded to part 2 `mode`, and when the uploads ran."""
    visitor = Client(base_urls[mode])
    await upload(visitor, "warm-up.jpg", photos[0])  # threads, connections and decoders ready
    stop, start = asyncio.Event(), time.perf_counter()
    probe = asyncio.create_task(lag_probe(stop, start))
    await asyncio.sleep(0.2)
    began = time.perf_counter() - start
    await asyncio.gather(*(upload_later(n * stagger, visitor, f"photo-{n}.jpg", photo)
                           for n, photo in enumerate(photos)))
    ended = time.perf_counter() - start
    await asyncio.sleep(0.2)
    stop.set()
    samples = await probe
    # Delete what the run stored: the next run starts from the same, empty database.
    for collection in (db.imgs, db.fs.files, db.fs.chunks):
        await collection.delete_many({})
    lags = [lag for _, lag in samples]
    print(f"thumbnails {mode}: the uploads took {ended - began:.2f} s; lag median "
          f"{statistics.median(lags):.1f} ms, worst {max(lags):.0f} ms, "
          f"{sum(lag > 20 for lag in lags)} wake-ups more than 20 ms late")
    return {"samples": samples, "uploads": (began, ended)}


def plot_lags(runs, stagger):
    figure, axes = plt.subplots(2, 1, figsize=(8, 4.8), sharex=True, sharey=True, layout="constrained")
    for ax, (mode, run), color in zip(axes, runs.items(), (lab.BAD, lab.GOOD)):
        times, lags = zip(*run["samples"])
        ax.axvspan(*run["uploads"], color=lab.GREY, alpha=0.15, linewidth=0, label="uploads in flight")
        ax.vlines(times, 0, lags, color=color, linewidth=1.5, label="how late one wake-up was")
        ax.axhline(statistics.mean(thumbnail_ms), color=lab.GREY, linestyle=":", linewidth=1.5,
                   label="one thumbnail, timed alone")
        ax.set_title(f"thumbnails {mode}: worst lag {max(lags):.0f} ms", loc="left", fontsize=10)
        ax.set_ylabel("lag (ms)")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (seconds since the probe started)")
    arriving = f"one every {stagger} s" if stagger else "all at once"
    figure.suptitle(f"How late a {PROBE_INTERVAL * 1000:.0f} ms sleep wakes up while {PHOTOS} JPEGs of "
                    f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} are uploaded, {arriving}", fontsize=10)
    plt.show()


runs = {mode: await lag_during_uploads(mode, STAGGER) for mode in base_urls}
plot_lags(runs, STAGGER)

# %% [markdown]
# What you see:
#
# - **On the loop** (top), one spike per upload, each at least as tall as the dotted
#   line, one thumbnail timed alone: each spike is one `make_thumbnail()` running in
#   a handler, with the rest of that upload's work on the loop. While it ran, the
#   server answered no one: not the other uploads, not a visitor asking for a small
#   CSS file, not even this probe.
# - **On the pool** (bottom), the same thumbnails run on another thread, and the lag
#   stays low: a few milliseconds, now and then a little more. Pillow lets go of
#   Python's global lock (the GIL) while it decodes, so that thread really runs on
#   another core. What is left is the loop's own work, mostly reading and parsing
#   bodies of a few MB, which part 3 will stream instead.
# - The uploads got no faster on the loop: the same work was done in another place.
#   Blocking only made everyone else wait.
#
# On a busy machine, you may see a lone spike in either run that matches no
# thumbnail: the operating system gave the core to another process for a moment.
#
# **Try it:** what if the visitors all arrive at once? This cell runs both again with
# `try_stagger = 0`: on the loop, the thumbnails run back to back with no wake-up in
# between, so a spike is two or more thumbnails tall; on the pool, they queue for its
# threads and the loop stays free. Change `try_stagger` and run it again.

# %%
try_stagger = 0
plot_lags({mode: await lag_during_uploads(mode, try_stagger) for mode in base_urls}, try_stagger)

# %% [markdown]
# [`bench/blocking.py`](../bench/blocking.py) measures the same thing from the
# outside, with a light request every 5 ms from another process, eight 24-megapixel
# uploads at a time: a p99 of 306 to 386 ms on the loop against 18 to 19 ms on the pool.
#
# ## Two saves: one after the other, or side by side
#
# Part 2 stores each upload twice: the original and its thumbnail. `MainHandler.store`
# starts both saves and then waits for both, with `asyncio.gather`:

# %%
source = inspect.getsource(part2.MainHandler.store)
print(source[source.index("        results"):source.index("        stored")])

# %% [markdown]
# Let us time it against the obvious alternative, two `await`s one after the other,
# with a GridFS bucket like the stage's own (`MotorGridFSBucket(db)`) and one photo with
# its thumbnail. Each way is timed `SAVE_TRIES` times, taking turns, and the files are
# deleted after each try. To see what to expect, each save is also timed alone.
#
# Twice: first against our database as it is, on this machine; then as if it were
# across a network. For that, `DelayingProxy` stands between a second client and the
# database and hands on every piece of data `NETWORK_DELAY_MS` late, each way, as a
# network link would (a round trip then costs twice that).
#
# **Predict, then run:** side by side, will the two saves cost the sum of the two
# alone, the longer of the two, or something else? And across the "network"?

# %%
class DelayingProxy:
    """Forwards TCP connections to (host, port), each piece of data `delay` seconds late."""

    def __init__(self, host, port, delay):
        self.address, self.delay, self.streams, self.tasks = (host, port), delay, set(), set()

    async def start(self):
        self.server = await asyncio.start_server(self.connect, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def connect(self, client_reader, client_writer):
        self.tasks.add(asyncio.current_task())
        server_reader, server_writer = await asyncio.open_connection(*self.address)
        self.streams |= {client_writer, server_writer}
        await asyncio.gather(self.pipe(client_reader, server_writer), self.pipe(server_reader, client_writer),
                             return_exceptions=True)
        self.tasks.discard(asyncio.current_task())

    async def pipe(self, reader, writer):
        """Read as fast as data comes; write each piece once it is `delay` old."""
        loop, pieces = asyncio.get_running_loop(), asyncio.Queue()

        async def forward():
            while (piece := await pieces.get()) is not None:
                arrived, data = piece
                await asyncio.sleep(arrived + self.delay - loop.time())
                writer.write(data)
                await writer.drain()
            writer.close()

        forwarding = asyncio.create_task(forward())
        try:
            while data := await reader.read(256 * 1024):
                pieces.put_nowait((loop.time(), data))
        finally:
            pieces.put_nowait(None)
            await forwarding

    async def close(self):
        self.server.close()
        for writer in self.streams:
            writer.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


original = photos[0]
thumbnail = part2.make_thumbnail(original)[3]
buckets = {"on this machine": MotorGridFSBucket(db)}
if address := local_address(session.uri):  # a database we can put a proxy in front of
    proxy = DelayingProxy(*address, NETWORK_DELAY_MS / 1000)
    await session.keep("the delaying proxy", proxy, proxy.close)
    far_client = MotorClient(f"mongodb://127.0.0.1:{await proxy.start()}", directConnection=True,
                             serverSelectionTimeoutMS=3000)
    # Closing it talks to the database through the proxy, which this loop runs: close it
    # from another thread (a blocking call to a server on this loop would deadlock).
    await session.keep("the client behind the proxy", far_client,
                       functools.partial(asyncio.to_thread, far_client.close))
    buckets[f"{NETWORK_DELAY_MS} ms away, each way"] = MotorGridFSBucket(far_client[session.db_name])
else:
    print("Your MONGODB_URI is not a single local server: the database may well be across a network already.")


async def time_saves(fs):
    """{way: [ms of each try]}, for the four ways of saving the photo and its thumbnail to `fs`."""
    def save_original():
        return fs.upload_from_stream("photo.jpg", original, metadata={"contentType": "image/jpeg"})

    def save_thumbnail():
        return fs.upload_from_stream("photo.jpg.thumbnail.png", thumbnail, metadata={"contentType": "image/png"})

    async def one_after_the_other():
        return [await save_original(), await save_thumbnail()]

    async def side_by_side():
        return await asyncio.gather(save_original(), save_thumbnail())

    ways = {"the thumbnail\nalone": lambda: asyncio.gather(save_thumbnail()),
            "the original\nalone": lambda: asyncio.gather(save_original()),
            "one after\nthe other": one_after_the_other, "side by side\n(gather)": side_by_side}
    timings = {name: [] for name in ways}
    for _ in range(SAVE_TRIES):
        for name, save in ways.items():
            start = time.perf_counter()
            file_ids = await save()
            timings[name].append((time.perf_counter() - start) * 1000)
            await asyncio.gather(*(fs.delete(file_id) for file_id in file_ids))
    return timings


saves = {}
for where, bucket in buckets.items():
    saves[where] = timings = await time_saves(bucket)
    print(f"The database {where}:")
    for name, ms in timings.items():
        print(f"  {name.replace(chr(10), ' '):22}: median {statistics.median(ms):6.1f} ms "
              f"(from {min(ms):.1f} to {max(ms):.1f})")
    alone = [statistics.median(timings[name]) for name in list(timings)[:2]]
    print(f"  the two alone, added up: {sum(alone):.1f} ms; the longer of the two: {max(alone):.1f} ms")
print(f"original: {len(original) / 1e6:.1f} MB; thumbnail: {len(thumbnail):,} bytes")

# %%
figure, axes = plt.subplots(1, len(saves), figsize=(4.5 * len(saves), 3.4), squeeze=False, layout="constrained")
for ax, (where, timings) in zip(axes[0], saves.items()):
    names = list(timings)
    medians = [statistics.median(timings[name]) for name in names]
    bars = ax.bar(names, medians, color=[lab.GREY, lab.GREY, lab.BAD, lab.GOOD], width=0.6, label="median")
    ax.bar_label(bars, fmt="%.0f ms", fontsize=8)
    for x, name in enumerate(names):  # every try, as a dot
        ax.plot([x] * len(timings[name]), timings[name], ".", color="black", markersize=3, alpha=0.5,
                label="each try" if x == 0 else "_each try")
    ax.set_title(f"the database {where}", loc="left", fontsize=10)
    ax.set_xlabel("what is saved, and how")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(loc="upper left", fontsize=8)
axes[0, 0].set_ylabel("time to save (ms)")
figure.suptitle(f"Saving a photo ({len(original) / 1e6:.1f} MB) and its thumbnail to GridFS, "
                f"{SAVE_TRIES} tries each", fontsize=10)
plt.show()

# %% [markdown]
# What you see:
#
# - **The thumbnail alone takes a few milliseconds** on this machine, the original
#   several times more. A GridFS save is a handful of requests to the database, each waiting for
#   the one before: a check that GridFS's indexes exist (a `find` in each of its two
#   collections, and a look at the indexes of an empty one, as ours are between
#   tries), an `insert` of the chunks, an `insert` of the file's document. The
#   original's chunks also carry its megabytes.
# - **On this machine**, `gather` gains nothing you can count on: the figures are a
#   few milliseconds, they move from run to run, and one after the other may even
#   come out ahead (compare the medians, and the dots: one try can be unlucky). Here
#   the database's work is CPU work (SecantusDB is written in Python) on the same
#   cores as ours, so the two saves take turns rather than overlap.
# - **Across the "network"**, each request also waits for a round trip, and waiting
#   is what overlaps. One after the other costs well over either save alone: while
#   the first save waits, the second has not even started. (It costs less than both
#   added up, because the second save finds GridFS's collections no longer empty and
#   skips the look at their indexes.) Side by side costs about the longer of the two:
#   the thumbnail's requests go out while the original's are on their way.
#
# So the most `gather` can save is the shorter save's time, and it saves it when the
# time is spent waiting. It is worth its care, too: part 2's `return_exceptions=True`
# is there so that, if one save fails, we still learn the other's id and delete it
# (see the lesson, and exercise 2 below).
#
# **Try it:** set `NETWORK_DELAY_MS` to 20 in the parameters cell, or to 0, and run the
# notebook again.
#
# ## Exercises
#
# Each exercise gives you a cell to complete, then a cell that checks your answer:
# run it, and it says "solved" or what is still wrong. The solution is folded away
# in the cell after the check.
#
# ### Exercise 1: on part 2's pool
#
# Complete `thumbnail_on_the_pool(data)`: return what `part2.make_thumbnail(data)`
# returns, but made on part 2's own thread pool, `pool` below (the one `make_app()`
# made for the app served "on the pool"), as part 2's handler does
# (`IOLoop.current().run_in_executor(...)`). Why that pool and not
# asyncio's default one? It has one thread per core, less one for the loop: a burst
# of uploads waits in its queue instead of fighting for the cores.

# %%
pool = apps["on the pool"].settings["thumbnail_executor"]


async def thumbnail_on_the_pool(data):
    return part2.make_thumbnail(data)  # on the loop: your turn

# %%
async def check_exercise_1():
    threads, make_thumbnail = [], part2.make_thumbnail

    def noting_the_thread(data):  # part 2's function, noting the thread it runs on
        threads.append(threading.current_thread().name)
        return make_thumbnail(data)

    part2.make_thumbnail = noting_the_thread
    try:
        result = await thumbnail_on_the_pool(photos[-1])
    finally:
        part2.make_thumbnail = make_thumbnail
    return lab.check("Exercise 1", [
        lab.expect("the thumbnail", result, make_thumbnail(photos[-1])),
        lab.expect("make_thumbnail() ran on a thread of part 2's pool",
                   [name.startswith("thumbnail") for name in threads], [True]),
    ])

await check_exercise_1();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
async def thumbnail_on_the_pool(data):
    return await IOLoop.current().run_in_executor(pool, part2.make_thumbnail, data)

await check_exercise_1();

# %% [markdown]
# ### Exercise 2: both saved, or neither
#
# Complete `store_pair(original, thumbnail)`: save both to GridFS with `fs` (part 2's
# bucket, from its application's settings), side by side, and return their two ids.
# If either save fails, delete the one that worked and raise the error: nothing may be
# left behind. The check makes the thumbnail's save fail, with a source that breaks
# when GridFS reads it.

# %%
fs = apps["on the pool"].settings["fs"]


async def store_pair(original, thumbnail):
    return [await fs.upload_from_stream("photo.jpg", original),
            await fs.upload_from_stream("photo.jpg.thumbnail.png", thumbnail)]  # your turn

# %%
class BrokenSource:
    """A file whose read() fails, as a disk or a network might."""

    def read(self, size=-1):
        raise OSError("the source broke while GridFS was reading it")


async def check_exercise_2():
    ids = await store_pair(original, thumbnail)
    problems = [lab.expect("files stored by a pair that works",
                           await db.fs.files.count_documents({"_id": {"$in": ids}}), 2)]
    await asyncio.gather(*(fs.delete(file_id) for file_id in ids))
    before = set(await db.fs.files.distinct("_id"))
    try:
        await store_pair(original, BrokenSource())
        problems.append("store_pair() returned when the thumbnail's save failed: it should raise")
    except OSError:
        pass
    left = set(await db.fs.files.distinct("_id")) - before
    problems.append(lab.expect("files left after a failed pair", len(left), 0))
    await asyncio.gather(*(fs.delete(file_id) for file_id in left))
    return lab.check("Exercise 2", problems)

await check_exercise_2();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution, as part 2's MainHandler.store does it
async def store_pair(original, thumbnail):
    results = await asyncio.gather(fs.upload_from_stream("photo.jpg", original),
                                   fs.upload_from_stream("photo.jpg.thumbnail.png", thumbnail),
                                   return_exceptions=True)  # wait for both, even if one fails
    errors = [result for result in results if isinstance(result, BaseException)]
    if errors:
        await asyncio.gather(*(fs.delete(result) for result in results if not isinstance(result, BaseException)))
        raise errors[0]
    return results

await check_exercise_2();

# %% [markdown]
# ## Recap
#
# - CPU work in a handler (decoding an image, hashing, parsing) holds the event
#   loop: while it runs, nobody else is served. A lag probe makes that visible.
# - `run_in_executor` moves it to a thread pool. With a library that releases the
#   GIL, as Pillow does, the work really runs beside the loop; the loop keeps serving.
# - A pool with a thread per core (less one) bounds the work: a burst waits in the
#   pool's queue.
# - `asyncio.gather` overlaps independent waits: two saves cost about the longer of
#   the two. With `return_exceptions=True` you learn every outcome, and can clean up.
#
# ## Review questions
#
# 1. On the loop, the uploads did not get slower. Who paid for the thumbnails, then?
# 2. Why does moving the thumbnail to a thread help here, when threads do not help
#    pure-Python computing?
# 3. With `stagger` at 0, why are the spikes on the loop taller than one thumbnail?
# 4. Without `return_exceptions=True`, what would `gather` tell you when one of the two
#    saves fails, and what could be left behind?
#
# <details><summary>Answers</summary>
#
# 1. Everyone else: every request, reply and timer that waited while a thumbnail ran.
# 2. Pillow releases the GIL while it decodes and resizes, so the pool's thread runs on
#    another core at the same time as the loop.
# 3. The handlers run one after the other on one thread: each thumbnail waits for the
#    ones before it, and the loop is stuck for all of them.
# 4. Only the first error, at once: the other save may still be running, and its file,
#    whose id you never learn, stays in GridFS.
#
# </details>
#
# ## Stop everything
#
# The two servers, our database (dropped), the client, and the embedded database with
# its folder. Running this cell twice is fine.

# %%
await session.close()

# %% [markdown]
# ---
# Previous: [notebook 02, inside GridFS](02_inside_gridfs.ipynb) ·
# Next: [notebook 04, streaming](04_streaming.ipynb), with
# [part 3's lesson](../part3_streaming/README.md) · All notebooks: [README](README.md)
