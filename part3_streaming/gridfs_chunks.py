"""GridFS's two collections, a chunk at a time: a new file written as its bytes
come (GridFSUpload), and a range of a file read a few chunks at a time (GridFSRange)."""

import asyncio
import contextlib
import datetime

from bson import Int64, ObjectId
from gridfs.errors import CorruptGridFile
from pymongo.errors import PyMongoError

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
    upload, and no waiting for the database until then (measured by bench/big_upload.py)."""

    def __init__(self, db, filename, content_type):
        self.db, self.chunks = db, db.fs.chunks  # looked up once: each lookup makes new objects
        self.file = {"_id": ObjectId(), "filename": filename, "chunkSize": CHUNK_SIZE, "length": 0,
                     "metadata": {"contentType": content_type}}
        self.pieces, self.pending = [], 0  # less than a chunk, as it came, and its size
        self.inserting = None  # the insert of the chunk before, while it is under way
        self.start = b""  # how the file begins: enough to tell an image

    @property
    def size(self):
        return self.file["length"] + self.pending

    async def write(self, data):
        """Add `data` (bytes) to the file: each chunk's worth goes to insert_chunk()."""
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
        document = {"files_id": self.file["_id"], "n": self.file["length"] // CHUNK_SIZE, "data": data}
        self.inserting = asyncio.ensure_future(self.chunks.insert_one(document))
        self.start = self.start or data[:12]
        self.file["length"] += len(data)

    async def inserted(self):
        """Wait for the chunk insert under way, if any: its error, if it failed, is raised here."""
        inserting, self.inserting = self.inserting, None
        if inserting is not None:
            await inserting

    async def close(self):
        """Insert the last chunk, then the file's document: only now is the file listed."""
        if self.pending:
            await self.insert_chunk()
        await self.inserted()
        self.file.update(length=Int64(self.file["length"]), uploadDate=datetime.datetime.now(datetime.UTC))
        await self.db.fs.files.insert_one(self.file)

    async def abort(self):
        with contextlib.suppress(PyMongoError):  # failed or not, it must land before the deletes
            await self.inserted()
        await self.chunks.delete_many({"files_id": self.file["_id"]})
        await self.db.fs.files.delete_one({"_id": self.file["_id"]})


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
    unique (PyMongo makes it before its own uploads). Once, at start-up: it does
    nothing if it exists, but each call is a trip to the database."""
    await db.fs.chunks.create_index([("files_id", 1), ("n", 1)], unique=True)


def well_formed(grid_out):
    """Whether a GridFS file's document has what GridFS writes: a length of 0 or more,
    chunks of a size over 0, an upload date. One written by hand, or damaged, may not."""
    length, chunk_size = grid_out.length, grid_out.chunk_size
    return (isinstance(length, int) and not isinstance(length, bool) and length >= 0
            and isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0
            and isinstance(grid_out.upload_date, datetime.datetime))
