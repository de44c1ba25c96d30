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
# browser would, and then looks at what GridFS made of them:
#
# 1. the two collections, `fs.files` and `fs.chunks`, and what their documents hold;
# 2. chunk arithmetic: how many chunks a file takes, and which chunk holds a given byte;
# 3. what a 10 MB file becomes.
#
# It starts its own database: the MongoDB at `MONGODB_URI` when that variable is set,
# else the embedded database, SecantusDB, in a temporary folder. The last cell stops
# everything and deletes what the notebook stored.

# %%
import contextlib
import io
import math
import os
import pprint
import re
import sys
import uuid
from pathlib import Path

import matplotlib.pyplot as plt
from bson import ObjectId
from IPython.display import Image as ShowImage
from motor.motor_tornado import MotorClient
from PIL import Image
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

# The notebook runs in notebooks/; the repository's root is the folder above with course.py.
ROOT = next(folder for folder in [Path.cwd(), *Path.cwd().parents] if (folder / "course.py").exists())
sys.path.insert(0, str(ROOT))
import course  # noqa: E402  (the repository root is not a package)


part1 = course.load_stage("part1_basic")

# %% [markdown]
# ## Start the database and part 1
#
# `course.scratch_db()` gives the URI of a database to play with: `MONGODB_URI` when it
# is set; else it starts SecantusDB on a free port, in a temporary folder, the way
# `python3 course.py run` does (with `course.embedded_db()`), waits until it answers,
# and stops it when the `with` block ends. An `ExitStack` keeps it running until the
# last cell.

# %%
running = contextlib.ExitStack()  # what this notebook starts; closed in the last cell
uri = running.enter_context(course.scratch_db())  # $MONGODB_URI, else the embedded database
print("The database:", course.redact(uri))

client = MotorClient(uri)
db = client[f"notebook_{uuid.uuid4().hex[:8]}"]  # a database of our own, dropped at the end

# %% [markdown]
# Now part 1 itself: `make_app(db)` is the same application `python part1_basic/app.py`
# serves, here on a free port of `127.0.0.1`. The kernel's event loop serves it between
# cells too: open the address in your browser while this notebook is open.

# %%
[sock] = bind_sockets(0, "127.0.0.1")
server = HTTPServer(part1.make_app(db))
server.add_sockets([sock])
base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
print("Part 1 serves at", base_url)

# %% [markdown]
# ## Upload an image over HTTP
#
# A browser sends the upload form as `multipart/form-data`: each field between two
# boundary lines, with a small header saying its name, file name and type. We build
# that body by hand and POST it, as the form would. Part 1 answers `302 Found`, a
# redirect back to the home page.

# %%
http = AsyncHTTPClient()


def multipart_form(field, filename, data, content_type):
    """The body a browser sends for a form with one file field, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n")
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def upload(filename, data, content_type="image/png"):
    body, form_type = multipart_form("file", filename, data, content_type)
    response = await http.fetch(f"{base_url}/", method="POST", body=body, headers={"Content-Type": form_type},
                                follow_redirects=False, raise_error=False)
    print(f"POST {filename} ({len(data):,} bytes): {response.code} {response.reason}")
    return response


def png(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


gradient = Image.linear_gradient("L").resize((320, 160))
picture = png(Image.merge("RGB", [gradient, gradient.rotate(180), Image.new("L", gradient.size, 160)]))
response = await upload("gradient.png", picture)

# %% [markdown]
# The home page lists the newest uploads; each links to `/imgs/<id>`, where `<id>` is
# the file's `_id` in GridFS. Download it back and compare:

# %%
home = (await http.fetch(f"{base_url}/")).body.decode()
image_path = re.search(r"/imgs/[0-9a-f]{24}", home).group()
downloaded = (await http.fetch(base_url + image_path)).body
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
# Why chunks at all? A MongoDB document is limited to 16 MB, and a file in one piece
# would have to be read and sent in one piece. In chunks, a file of any size is stored,
# replicated and sharded like any other data, and read a piece at a time.
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
# ## What a 10 MB file becomes
#
# A 10 MB PNG image made of random pixels (so that it does not compress), uploaded
# the same way:

# %%
SIDE = 1826  # 1826 x 1826 pixels x 3 bytes: 10 MB of pixels
noise = Image.frombytes("RGB", (SIDE, SIDE), os.urandom(SIDE * SIDE * 3))
big = png(noise, compress_level=0)  # stored uncompressed: quick to make, and noise would not shrink anyway
response = await upload("noise.png", big)

big_document = await db.fs.files.find_one({"filename": "noise.png"})
big_chunks = await db.fs.chunks.find({"files_id": big_document["_id"]}).sort("n").to_list(None)
sizes = [len(chunk["data"]) for chunk in big_chunks]
print(f"{big_document['length']:,} bytes -> {len(big_chunks)} chunks; "
      f"expected {chunk_count(big_document['length'], chunk_size)}")
print(f"full chunks: {sizes.count(chunk_size)} of {chunk_size:,} bytes; the last one: {sizes[-1]:,} bytes "
      f"= {big_document['length']:,} - {len(sizes) - 1} x {chunk_size:,}")
print("the chunks, joined, are the file:", b"".join(chunk["data"] for chunk in big_chunks) == big)

# %%
figure, ax = plt.subplots(figsize=(8, 2.8))
ax.bar([chunk["n"] for chunk in big_chunks], [size / 1024 for size in sizes], width=0.8)
ax.axhline(chunk_size / 1024, color="tab:gray", linestyle=":", linewidth=1)
ax.set_xlabel("chunk number n")
ax.set_ylabel("KiB")
ax.set_title(f"noise.png, {big_document['length'] / 1e6:.1f} MB: {len(big_chunks)} chunks of "
             f"{chunk_size // 1024} KiB, the last one partly filled", loc="left", fontsize=10)
figure.tight_layout()
plt.show()

# %% [markdown]
# To read the byte at offset 5,000,000, GridFS needs one chunk, not the whole file: this
# is what makes Range requests (part 3) cheap.

# %%
offset = 5_000_000
n, position = where_is(offset, chunk_size)
chunk = await db.fs.chunks.find_one({"files_id": big_document["_id"], "n": n})
print(f"byte {offset:,} is in chunk {n}, at position {position:,}: "
      f"{chunk['data'][position]} (and in the file: {big[offset]})")

# %% [markdown]
# One thing part 1 does not show: on the way in, Tornado read the whole 10 MB request
# into memory before the handler ran, and parsing the form copied the file out of it
# once more. GridFS stored it in chunks, but the server held all of it at once. Part 3 streams uploads chunk by
# chunk instead.
#
# ## Stop everything
#
# The server, our database, the client, and the embedded database with its folder:

# %%
server.stop()
await server.close_all_connections()
await client.drop_database(db.name)
client.close()
running.close()
print("Stopped part 1 and the database.")
