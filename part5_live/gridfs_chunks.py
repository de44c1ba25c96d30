"""GridFS's two collections, a chunk at a time: a new file written as its bytes
come (GridFSUpload), and a range of a file read a few chunks at a time (GridFSRange).
From part 4, an upload under way keeps a record in uploads_in_progress, for the sweep."""

import asyncio
import contextlib
import datetime
import time

from bson import Int64, ObjectId
from gridfs.errors import CorruptGridFile
from pymongo.errors import PyMongoError

from sweeper import UploadSwept

CHUNK_SIZE = 255 * 1024  # GridFS's default: a chunk is one document, under 16 MB
# How much a download reads of GridFS at a time, at most: 8 chunks (of 255 KiB)
# (bench/big_downloads.py measures 4 and 16 too).
CHUNKS_PER_READ = 8


class GridFSUpload:
    """A new GridFS file, written a chunk at a time as its bytes come, each insert
    awaited before the next. The two documents are GridFS's own: any driver or tool
    can read them.

    Motor's open_upload_stream() writes the same documents, but PyMongo's GridIn
    gathers up to 48 MB of chunks before it inserts any: that much memory for each
    upload, and no waiting for the database until then (measured by bench/big_upload.py).

    From its first chunk to its end, a document of its own in `uploads_in_progress`
    says that it is under way, and when it last received bytes: if its process dies,
    sweep_abandoned_uploads() finds the chunks it left by that document."""

    def __init__(self, db, filename, content_type, abandoned_after=3600):
        self.db, self.chunks = db, db.fs.chunks  # looked up once: each lookup makes new objects
        self.file = {"_id": ObjectId(), "filename": filename, "chunkSize": CHUNK_SIZE, "length": 0,
                     "metadata": {"contentType": content_type}}
        self.pieces, self.pending = [], 0  # less than a chunk, as it came, and its size
        self.inserting = None  # the insert of the chunk before, while it is under way
        self.may_land_later = False  # whether a write failed: a timeout is ours, the server may do it yet
        self.start = b""  # how the file begins: enough to tell an image
        # Bytes that come refresh the document this often: well within abandoned_after.
        self.heartbeat_every = abandoned_after / 4
        self.last_heartbeat = None  # time.monotonic() of the last refresh; None before the first chunk

    @property
    def size(self):
        return self.file["length"] + self.pending

    async def write(self, data):
        """Add `data` (bytes) to the file: each chunk's worth goes to insert_chunk()."""
        if self.last_heartbeat is not None and time.monotonic() - self.last_heartbeat >= self.heartbeat_every:
            await self.heartbeat()
        data = memoryview(data)  # its slices copy nothing
        while self.pending + len(data) >= CHUNK_SIZE:
            cut = CHUNK_SIZE - self.pending
            self.pieces.append(data[:cut])
            data = data[cut:]
            await self.insert_chunk()
        self.pieces.append(data)
        self.pending += len(data)

    async def insert_chunk(self):
        data = b"".join(self.pieces)  # the chunk's one copy: BSON encodes bytes only
        self.pieces, self.pending = [], 0
        # One insert at a time, the next chunk arriving meanwhile: at most two in
        # memory, and the database works while Tornado reads.
        await self.inserted()
        if self.file["length"] == 0:
            await self.heartbeat(first=True)  # before any chunk: a sweep can always find them
        document = {"files_id": self.file["_id"], "n": self.file["length"] // CHUNK_SIZE, "data": data}
        self.inserting = asyncio.ensure_future(self.chunks.insert_one(document))
        self.start = self.start or data[:12]
        self.file["length"] += len(data)

    async def inserted(self):
        """Wait for the chunk insert under way, if any: its error, if it failed, is raised here."""
        inserting, self.inserting = self.inserting, None
        if inserting is not None:
            try:
                await inserting
            except PyMongoError:
                self.may_land_later = True
                raise

    async def close(self):
        """Insert the last chunk, then the file's document: only now is the file listed."""
        if self.pending:
            await self.insert_chunk()
        await self.inserted()
        self.file.update(length=Int64(self.file["length"]), uploadDate=datetime.datetime.now(datetime.UTC))
        try:
            await self.db.fs.files.insert_one(self.file)
        except PyMongoError:
            self.may_land_later = True
            raise
        # Done, once its document in uploads_in_progress is gone: unless a sweep took it
        # meanwhile (the upload was silent for too long), in which case it is not done.
        done = {"_id": self.file["_id"], "swept": {"$exists": False}}
        if not (await self.db.uploads_in_progress.delete_one(done)).deleted_count:
            raise UploadSwept()

    async def abort(self):
        with contextlib.suppress(PyMongoError):  # failed or not, it must land before the deletes
            await self.inserted()
        await self.chunks.delete_many({"files_id": self.file["_id"]})
        await self.db.fs.files.delete_one({"_id": self.file["_id"]})
        # Last: until then a sweep finds it. Not at all if a write failed: one that timed
        # out may still land, after these deletes; the sweep deletes it once the record is stale.
        if not self.may_land_later:
            await self.db.uploads_in_progress.delete_one({"_id": self.file["_id"]})

    async def heartbeat(self, first=False):
        """Stamp this upload's document in `uploads_in_progress` with the database's
        clock: it lives. An HTTPError 408 if a sweep has taken it meanwhile."""
        stamp = {"$currentDate": {"updated": True}}
        uploads = self.db.uploads_in_progress
        if first:
            await uploads.update_one({"_id": self.file["_id"]}, stamp, upsert=True)
        else:
            alive = {"_id": self.file["_id"], "swept": {"$exists": False}}
            if not (await uploads.update_one(alive, stamp)).matched_count:
                raise UploadSwept()
        self.last_heartbeat = time.monotonic()


class GridFSRange:
    """Reads bytes start..end of a GridFS file, a few chunks at a time.

    Each read asks fs.chunks for the next chunks by their number, the first read for
    the chunk holding `start`. (A GridOut's cursor would fetch up to 16 MB at once.)
    Reads may run side by side: each takes its chunks before it awaits them."""

    def __init__(self, chunks, grid_out, start, end):
        self.chunks, self.file_id, self.chunk_size = chunks, grid_out._id, grid_out.chunk_size
        self.start, self.end = start, end
        self.next, self.last = start // self.chunk_size, (end - 1) // self.chunk_size
        self.count = 1  # chunks to read next: doubled each time, up to CHUNKS_PER_READ

    async def read(self):
        """The next pieces of the range, a list of bytes: empty at the end."""
        if self.next > self.last:
            return []
        first, last = self.next, min(self.last, self.next + self.count - 1)
        self.next, self.count = last + 1, min(2 * self.count, CHUNKS_PER_READ)
        query = {"files_id": self.file_id, "n": {"$gte": first, "$lte": last}}
        chunks = await self.chunks.find(query, sort=[("n", 1)]).to_list(None)
        pieces = []
        for n, chunk in enumerate(chunks, first):
            offset = n * self.chunk_size  # of the chunk's first byte in the file
            piece = chunk["data"][max(self.start - offset, 0) : self.end - offset]
            if chunk["n"] != n or len(piece) != min(self.end, offset + self.chunk_size) - max(self.start, offset):
                raise CorruptGridFile(f"chunk {n} of file {self.file_id} is missing or the wrong size")
            pieces.append(piece)
        if len(pieces) < last - first + 1:
            raise CorruptGridFile(f"chunk {first + len(pieces)} of file {self.file_id} is missing")
        return pieces


async def create_indexes(db):
    """Make the index by which GridFS readers find a file's chunks, {files_id: 1, n: 1},
    unique (PyMongo makes it before its own uploads), and from part 4 the one by which
    the sweep finds stale uploads, on `updated`. Once, at start-up: each does nothing
    if it exists, but each call is a trip to the database."""
    await db.fs.chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
    await db.uploads_in_progress.create_index("updated")


def well_formed(grid_out):
    """Whether a GridFS file's document has what GridFS writes: a length of 0 or more,
    chunks of a size over 0, an upload date. One written by hand, or damaged, may not."""
    length, chunk_size = grid_out.length, grid_out.chunk_size
    return (isinstance(length, int) and not isinstance(length, bool) and length >= 0
            and isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0
            and isinstance(grid_out.upload_date, datetime.datetime))
