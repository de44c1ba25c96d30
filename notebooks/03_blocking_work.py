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
# event loop and once on its thread pool, and shows what the difference looks like:
#
# 1. a *lag probe*: a coroutine that asks to sleep 5 ms, again and again, and notes
#    how late it wakes up. Late means the event loop was busy with something else;
# 2. the probe's lag plotted over time while a few large JPEGs are uploaded, with
#    thumbnails made on the loop (`thumbnail_executor=None`) and on the pool;
# 3. two GridFS saves one after the other against the same two saves at once with
#    `asyncio.gather`, timed.
#
# It starts its own database: the MongoDB at `MONGODB_URI` when that variable is set,
# else the embedded database, SecantusDB, in a temporary folder. The last cell stops
# everything and deletes what the notebook stored. Timings depend on your machine and
# on what else it is doing: run it again and the numbers move, the picture does not.

# %%
import asyncio
import contextlib
import inspect
import io
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import matplotlib.pyplot as plt
from motor.motor_tornado import MotorClient
from PIL import Image
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

# The notebook runs in notebooks/; the repository's root is the folder above with course.py.
ROOT = next(folder for folder in [Path.cwd(), *Path.cwd().parents] if (folder / "course.py").exists())
sys.path.insert(0, str(ROOT))
import course  # noqa: E402  (the repository root is not a package)


part2 = course.load_stage("part2_thumbnails")
print(f"{os.cpu_count()} cores; part 2 makes thumbnails on {part2.THUMBNAIL_THREADS} thread(s)")

# %% [markdown]
# ## Start the database and part 2, twice
#
# The same application, served on two ports of `127.0.0.1` by the kernel's event loop:
# `make_app(db, thumbnail_executor=None)` makes each thumbnail right in the handler,
# on the loop, as the 2014 code did; `make_app(db)` hands it to part 2's thread pool
# with `run_in_executor`. Both store into one database of our own.

# %%
running = contextlib.ExitStack()  # what this notebook starts; closed in the last cell
uri = running.enter_context(course.scratch_db())  # $MONGODB_URI, else the embedded database
print("The database:", course.redact(uri))

client = MotorClient(uri)
db = client[f"notebook_{uuid.uuid4().hex[:8]}"]  # a database of our own, dropped at the end

apps, servers, base_urls = {}, [], {}
for mode, executor in (("on the loop", None), ("on the pool", part2.thumbnail_pool)):
    apps[mode] = part2.make_app(db, thumbnail_executor=executor)
    [sock] = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(apps[mode])
    server.add_sockets([sock])
    servers.append(server)
    base_urls[mode] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(f"part 2, thumbnails {mode}: {base_urls[mode]}")

# %% [markdown]
# ## A few large JPEGs
#
# Four 8-megapixel pictures, generated here: blurry colour blobs under a fine grain,
# which keeps them big (a few MB each, like a phone photo) and so slow to decode.
# `make_thumbnail()` is part 2's own function; timed on its own, it shows how long
# each upload will keep a core busy.

# %%
def grainy_jpeg(width, height):
    """A JPEG of colour blobs with a fine grain: it compresses about as badly as a photo."""
    blobs = Image.merge("RGB", [Image.effect_noise((width // 16, height // 16), 80)
                                .resize((width, height), Image.Resampling.BICUBIC) for _ in "RGB"])
    picture = Image.blend(blobs, Image.effect_noise((width, height), 40).convert("RGB"), 0.25)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


photos = [grainy_jpeg(3464, 2309) for _ in range(4)]  # 3:2, 8 megapixels
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
# a loop stuck in a 40 ms thumbnail wakes us about 40 ms late. The lag is how long
# any visitor's request, any database reply, anything at all would have waited too.

# %%
async def lag_probe(stop, start, interval=0.005):
    """(seconds since `start`, lag in ms) each time a sleep of `interval` ends, until `stop` is set."""
    samples = []
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(interval)
        woke = time.perf_counter()
        samples.append((woke - start, (woke - before - interval) * 1000))
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
# as a careful client would: it fetches the home page once, keeps the `_xsrf` cookie,
# and sends the token back in the `X-XSRFToken` header. The uploads go from this
# kernel to the server in this kernel, over `AsyncHTTPClient`.
#
# Each run: the probe alone for 0.2 s, then the four uploads, one starting every
# `STAGGER` seconds as visitors would arrive, then the probe alone again. Same
# photos, same database; only where the thumbnails are made changes. After each run,
# what it stored is deleted: a database saves faster while it is nearly empty, and
# both runs should start from the same place.

# %%
http = AsyncHTTPClient()
STAGGER = 0.15  # seconds between two uploads' starts: try 0, all at once


def multipart_form(field, filename, data, content_type):
    """The body a browser sends for a form with one file field, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n")
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def xsrf_headers(base_url):
    """The cookie and header a POST to part 2 needs: its token, read from the first visit."""
    response = await http.fetch(base_url + "/")
    token = response.headers["Set-Cookie"].split("_xsrf=", 1)[1].split(";", 1)[0]
    return {"Cookie": f"_xsrf={token}", "X-XSRFToken": token}


async def upload(base_url, headers, filename, data):
    body, form_type = multipart_form("file", filename, data, "image/jpeg")
    response = await http.fetch(base_url + "/", method="POST", body=body, follow_redirects=False,
                                headers={**headers, "Content-Type": form_type}, raise_error=False)
    assert response.code == 302, (response.code, response.body[:200])  # stored, back to the home page


async def upload_later(delay, base_url, headers, filename, data):
    await asyncio.sleep(delay)
    await upload(base_url, headers, filename, data)


async def lag_during_uploads(mode):
    """The probe's samples while the photos are uploaded to part 2 `mode`, and when the uploads ran."""
    base_url = base_urls[mode]
    headers = await xsrf_headers(base_url)
    await upload(base_url, headers, "warm-up.jpg", photos[0])  # threads, connections and decoders ready
    stop, start = asyncio.Event(), time.perf_counter()
    probe = asyncio.create_task(lag_probe(stop, start))
    await asyncio.sleep(0.2)
    began = time.perf_counter() - start
    await asyncio.gather(*(upload_later(n * STAGGER, base_url, headers, f"photo-{n}.jpg", photo)
                           for n, photo in enumerate(photos)))
    ended = time.perf_counter() - start
    await asyncio.sleep(0.2)
    stop.set()
    samples = await probe
    # Delete what the run stored: the next run starts from the same, empty database.
    for collection in (db.imgs, db.fs.files, db.fs.chunks):
        await collection.delete_many({})
    return {"samples": samples, "uploads": (began, ended)}


runs = {}
for mode in base_urls:
    runs[mode] = run = await lag_during_uploads(mode)
    lags = [lag for _, lag in run["samples"]]
    began, ended = run["uploads"]
    print(f"thumbnails {mode}: the uploads took {ended - began:.2f} s; lag median "
          f"{statistics.median(lags):.1f} ms, worst {max(lags):.0f} ms, "
          f"{sum(lag > 20 for lag in lags)} wake-ups more than 20 ms late")

# %%
figure, axes = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True, sharey=True)
for ax, (mode, run), color in zip(axes, runs.items(), ("tab:red", "tab:blue")):
    times, lags = zip(*run["samples"])
    ax.axvspan(*run["uploads"], color="tab:gray", alpha=0.15, linewidth=0, label="uploads in flight")
    ax.vlines(times, 0, lags, color=color, linewidth=1.5)  # one stick per wake-up: how late it was
    ax.axhline(statistics.mean(thumbnail_ms), color="tab:gray", linestyle=":", linewidth=1,
               label="one thumbnail, timed alone")
    ax.set_title(f"thumbnails {mode}: worst lag {max(lags):.0f} ms", loc="left", fontsize=10)
    ax.set_ylabel("lag (ms)")
axes[0].legend(loc="upper right", fontsize=8)
axes[-1].set_xlabel("seconds since the probe started")
figure.suptitle("How late a 5 ms sleep wakes up while four 8-megapixel JPEGs are uploaded", fontsize=11)
figure.tight_layout()
plt.show()

# %% [markdown]
# What you see:
#
# - **On the loop** (top), one spike per upload, each about as tall as the dotted
#   line, one thumbnail timed alone: each spike is one `make_thumbnail()` running in
#   a handler. While it ran, the server answered no one: not the other uploads, not
#   a visitor asking for a small CSS file, not even this probe. Set `STAGGER = 0` and
#   run the two cells again: the four uploads arrive together, their thumbnails run
#   back to back, and the stalls add up to one spike several thumbnails tall.
# - **On the pool** (bottom), the same thumbnails run on another thread, and the lag
#   stays low: a few milliseconds, now and then a little more. Pillow lets go of Python's global lock (the
#   GIL) while it decodes, so that thread really runs on the other core. What is
#   left is the loop's own work, mostly reading and parsing bodies of a few MB,
#   which part 3 will stream instead.
# - The uploads got no faster on the loop: the same work was done in another place.
#   Blocking only made everyone else wait.
#
# On a busy machine, you may see a lone spike in either run that matches no
# thumbnail: the operating system gave the core to another process for a moment.
#
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
# with the stage's own GridFS bucket (`MotorGridFSBucket(db)`, in the application's
# settings) and one photo with its thumbnail. Each way is timed a few times, taking
# turns, and the files are deleted after each try. To see what to expect, each save
# is also timed alone.

# %%
fs = apps["on the pool"].settings["fs"]
original = photos[0]
thumbnail = part2.make_thumbnail(original)[3]


async def save_original():
    return await fs.upload_from_stream("photo.jpg", original, metadata={"contentType": "image/jpeg"})


async def save_thumbnail():
    return await fs.upload_from_stream("photo.jpg.thumbnail.png", thumbnail, metadata={"contentType": "image/png"})


async def one_after_the_other():
    original_id = await save_original()
    thumbnail_id = await save_thumbnail()
    return [original_id, thumbnail_id]


async def side_by_side():
    return await asyncio.gather(save_original(), save_thumbnail())


async def only_original():
    return [await save_original()]


async def only_thumbnail():
    return [await save_thumbnail()]


ways = {"the thumbnail\nalone": only_thumbnail, "the original\nalone": only_original,
        "one after\nthe other": one_after_the_other, "side by side\n(gather)": side_by_side}
timings = {name: [] for name in ways}
for _ in range(9):
    for name, save in ways.items():
        start = time.perf_counter()
        file_ids = await save()
        timings[name].append((time.perf_counter() - start) * 1000)
        await asyncio.gather(*(fs.delete(file_id) for file_id in file_ids))
for name, ms in timings.items():
    print(f"{name.replace(chr(10), ' '):22}: median {statistics.median(ms):6.1f} ms "
          f"(from {min(ms):.1f} to {max(ms):.1f})")
alone = [statistics.median(timings[name]) for name in list(ways)[:2]]
print(f"the two alone, added up: {sum(alone):.1f} ms; the longer of the two: {max(alone):.1f} ms")
print(f"original: {len(original) / 1e6:.1f} MB; thumbnail: {len(thumbnail):,} bytes")

# %%
figure, ax = plt.subplots(figsize=(8, 3))
names = list(timings)
medians = [statistics.median(timings[name]) for name in names]
bars = ax.bar(names, medians, color=["tab:gray", "tab:gray", "tab:orange", "tab:green"], width=0.6)
ax.bar_label(bars, fmt="%.0f ms", fontsize=9)
for x, name in enumerate(names):  # every try, as a dot
    ax.plot([x] * len(timings[name]), timings[name], "k.", markersize=3, alpha=0.5)
ax.set_ylabel("ms (median; dots: each try)")
ax.set_title("Saving a photo and its thumbnail to GridFS", loc="left", fontsize=10)
figure.tight_layout()
plt.show()

# %% [markdown]
# What you see:
#
# - **The thumbnail alone takes a few milliseconds**, the original several times
#   more. A GridFS save is a handful of requests to the database, each waiting for
#   the one before: a check that GridFS's indexes exist (a `find` in each of its two
#   collections, and a look at the indexes of an empty one, as ours are between
#   tries), an `insert` of the chunks, an `insert` of the file's document. The
#   original's chunks also carry 3.6 MB.
# - **One after the other** costs about both added up, or a little more: while the
#   first save waits for the database, the second has not even started.
# - **Side by side** (`gather`) costs about as much as the original alone: the
#   thumbnail's save happens while the original's is waiting, and comes almost free.
#   Compare the medians, and the dots: one try can be unlucky.
#
# The most `gather` can save is the shorter save's time: the thumbnail's, a few
# milliseconds here, next to a database on the same machine. Against a MongoDB across
# a network, each of those requests also waits for a round trip, and overlapping
# them is worth more. It is worth its care, too: part 2's
# `return_exceptions=True` is there so that, if one save fails, we still learn the
# other's id and delete it (see the lesson).
#
# ## Stop everything
#
# The two servers, our database, the client, and the embedded database with its folder:

# %%
for server in servers:
    server.stop()
    await server.close_all_connections()
await client.drop_database(db.name)
client.close()
running.close()
print("Stopped part 2 and the database.")
