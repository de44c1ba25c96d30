"""GridFS's two collections, a chunk at a time: a new file written as its bytes
come (GridFSUpload), and a range of a file read a few chunks at a time (GridFSRange).
From part 4, an upload under way keeps a record in uploads_in_progress, for the sweep."""

import datetime
import time

from bson import Int64, ObjectId
from gridfs.errors import CorruptGridFile

from sweeper import UploadSwept

CHUNK_SIZE = 255 * 1024  # GridFS's default: a chunk is one document, under 16 MB
# How much a download reads of GridFS at a time, at most: 8 chunks (of 255 KiB)
# (bench/big_downloads.py measures 4 and 16 too).
CHUNKS_PER_READ = 8


class GridFSUpload:
    """A new GridFS file, written a chunk at a time as its bytes come, each insert
    awaited. The two documents are GridFS's own: any driver or tool can read them.

    Motor's open_upload_stream() writes the same documents, but PyMongo's GridIn
    gathers up to 48 MB of chunks before it inserts any: that much memory for each
    upload, and no waiting for the database until then (measured: see the lesson).

    From its first chunk to its end, a document of its own in `uploads_in_progress`
    says that it is under way, and when it last received bytes: if its process dies,
    sweep_abandoned_uploads() finds the chunks it left by that document."""

    def __init__(self, db, filename, content_type, abandoned_after=3600):
        self.db = db
        self.file = {"_id": ObjectId(), "filename": filename, "chunkSize": CHUNK_SIZE, "length": 0,
                     "metadata": {"contentType": content_type}}
        self.pending = bytearray()  # less than a chunk, waiting for the rest
        self.start = b""  # how the file begins: enough to tell an image
        # Bytes that come refresh the document this often: well within abandoned_after.
        self.heartbeat_every = abandoned_after / 4
        self.last_heartbeat = None  # time.monotonic() of the last refresh; None before the first chunk

    @property
    def size(self):
        return self.file["length"] + len(self.pending)

    async def write(self, data):
        self.pending += data
        if self.last_heartbeat is not None and time.monotonic() - self.last_heartbeat >= self.heartbeat_every:
            await self.heartbeat()
        while len(self.pending) >= CHUNK_SIZE:
            await self.insert_chunk(CHUNK_SIZE)

    async def insert_chunk(self, size):
        data = bytes(self.pending[:size])
        del self.pending[:size]
        n = self.file["length"] // CHUNK_SIZE
        if n == 0:  # the index reads need, as PyMongo makes it for its own uploads
            await self.db.fs.chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
            await self.heartbeat(first=True)  # before any chunk: a sweep can always find them
        await self.db.fs.chunks.insert_one({"files_id": self.file["_id"], "n": n, "data": data})
        self.start = self.start or data[:12]
        self.file["length"] += size

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

    async def close(self):
        """Insert the last chunk, then the file's document: only now is the file listed."""
        if self.pending:
            await self.insert_chunk(len(self.pending))
        self.file.update(length=Int64(self.file["length"]), uploadDate=datetime.datetime.now(datetime.UTC))
        await self.db.fs.files.insert_one(self.file)
        # Done, once its document in uploads_in_progress is gone: unless a sweep took it
        # meanwhile (the upload was silent for too long), in which case it is not done.
        done = {"_id": self.file["_id"], "swept": {"$exists": False}}
        if not (await self.db.uploads_in_progress.delete_one(done)).deleted_count:
            raise UploadSwept()

    async def abort(self):
        await self.db.fs.chunks.delete_many({"files_id": self.file["_id"]})
        await self.db.fs.files.delete_one({"_id": self.file["_id"]})
        await self.db.uploads_in_progress.delete_one({"_id": self.file["_id"]})  # last: until then a sweep finds it


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
