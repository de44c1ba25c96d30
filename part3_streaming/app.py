"""Part 3: uploads streamed into GridFS, and big files served in chunks.

This file reads as its lesson, README.md: first what part 3 adds (the streamed
upload, then the chunked download, then the small helpers they use), then, under
one banner, what is carried over from part 2. Part 2's BaseHandler alone comes
before the lesson: the lesson's handlers subclass it, and Python needs a class
defined before its subclasses.

Run it with `python part3_streaming/app.py`; `--help` lists its options. Their
defaults come from the environment variables PORT (8000), MONGODB_URI
(mongodb://localhost:27017), MONGODB_DB (part3_streaming, the stage's name) and
COOKIE_SECRET.
"""

import asyncio
import collections
import contextlib
import datetime
import email.message
import email.utils
import io
import logging
import mimetypes
import os
import re
import secrets
import sys
import unicodedata
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tornado.log
import tornado.options
import tornado.web
from bson import Int64, ObjectId
from bson.errors import InvalidId
from gridfs import GridFSBucket
from gridfs.errors import CorruptGridFile, NoFile
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from PIL import ExifTags, Image, ImageOps
from pymongo.errors import ConnectionFailure, PyMongoError
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError


# Part 2's, unchanged: here, above the lesson, because the lesson's handlers subclass it.
class BaseHandler(tornado.web.RequestHandler):
    def set_default_headers(self):
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")  # believe our Content-Type

    def set_cookie(self, name, value, **kwargs):
        """Every cookie we set (the XSRF one, so far) is SameSite=Lax: browsers do not
        send it with a POST that another site starts. Reached by HTTPS, it is Secure too:
        never sent over plain HTTP, where anyone on the way could read or replace it."""
        kwargs.setdefault("samesite", "Lax")
        kwargs.setdefault("secure", self.request.protocol == "https")
        super().set_cookie(name, value, **kwargs)

    @property
    def fs(self):
        return self.settings["fs"]

    @property
    def db(self):
        return self.settings["db"]

    async def run_blocking(self, function, *args):
        """function(*args) on the thumbnail threads, so the event loop serves meanwhile."""
        executor = self.settings["thumbnail_executor"]
        if executor is None:  # on the event loop itself, blocking it: see bench/blocking.py
            return function(*args)
        return await IOLoop.current().run_in_executor(executor, function, *args)

    def write_error(self, status_code, **kwargs):
        """An error page that says what went wrong, never a traceback."""
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, ConnectionFailure):  # the database is down or out of reach
            self.set_status(503)
            message = "The database is not answering. Please try again in a moment."
        else:
            message = getattr(error, "log_message", None) or self._reason
        self.render("error.html", status_code=self.get_status(), message=message)


# ==== What part 3 adds ====

# --- Uploads, streamed into GridFS as they arrive ---

# How the files of the formats we accept (IMAGE_TYPES) begin: only those are read back
# to be thumbnailed.
IMAGE_START = re.compile(rb"\x89PNG\r\n\x1a\n|\xff\xd8\xff|GIF8[79]a|RIFF....WEBP", re.DOTALL)
CHUNK_SIZE = 255 * 1024  # GridFS's default: a chunk is one document, under 16 MB
# A form's body is its file and a little more: boundaries, the part's headers, other fields.
FORM_OVERHEAD = 64 * 1024
DATABASE_FAILED = "The database failed: the file was not stored. Please try again."


@tornado.web.stream_request_body
class StreamedUpload(BaseHandler):
    """An upload written to GridFS piece by piece, as it arrives: what the form and
    PUT share. Tornado calls prepare() when the headers are in, data_received() for
    each piece of the body, then post() or put() once it is all there; or, if the
    client goes away first, on_connection_close() and nothing else."""

    # Also when Tornado refuses the request before prepare() (XSRF, size), and the
    # connection then closes: there is nothing to delete.
    upload = None  # the GridFS file being written
    overhead = 0  # bytes a body may hold besides its file: a subclass sets its own

    def prepare(self):
        self.received = 0
        # The limit is the file's: a body may hold a little more than its file (a form's does).
        limit = self.settings["max_upload_size"] + self.overhead
        declared = self.request.headers.get("Content-Length", "")
        # Only ASCII digits ("²".isdigit() is true too), and 19 of them are more than
        # any disk holds: Tornado answers anything else with a bare 400.
        if re.fullmatch(r"[0-9]{1,19}", declared) and int(declared) > limit:
            self.request.connection.set_max_body_size(int(declared))  # else Tornado adds a 400 to our 413
            raise self.too_big()
        # A chunked body has no Content-Length: Tornado cuts it off (a bare 400) when
        # the sizes of its chunks add up to more than this.
        self.request.connection.set_max_body_size(limit)

    def too_big(self):
        limit = human_size(self.settings["max_upload_size"])
        return tornado.web.HTTPError(413, f"That file is too big: the limit is {limit}.")

    def start_file(self, filename, content_type):
        """Begin the GridFS file the upload goes to: nothing is stored until bytes come."""
        check_filename(filename)
        self.upload = GridFSUpload(self.db, filename, claimed_type(content_type, filename))

    async def write_file(self, data):
        """Add `data` to the file, within the size limit, whichever way the file comes."""
        if self.upload.size + len(data) > self.settings["max_upload_size"]:
            raise self.too_big()
        await self.upload.write(data)

    async def receive(self, chunk):
        """Take this piece of the body: what a subclass must provide, as only it knows
        where the file's bytes are. It writes them with write_file(), once start_file()
        has begun the file; an HTTPError it raises refuses the upload."""
        raise NotImplementedError

    async def data_received(self, chunk):
        # Awaited by Tornado: it reads no more of the body, and the client's sending
        # slows down, until the database has taken this piece.
        self.received += len(chunk)
        try:
            await self.receive(chunk)
        except tornado.web.HTTPError as error:
            await self.refuse(error)
        except PyMongoError:
            log.exception("could not store an upload")
            await self.refuse(tornado.web.HTTPError(503, DATABASE_FAILED))

    async def refuse(self, error):
        """Answer `error` before the body has all arrived. Tornado then reads no more
        of it, and closes the connection once the answer is sent."""
        await self.discard()
        self.log_exception(type(error), error, None)
        self.send_error(error.status_code, exc_info=(type(error), error, None))

    async def discard(self):
        """Delete the chunks an unfinished upload has stored."""
        upload, self.upload = self.upload, None
        if upload is not None:
            try:
                await upload.abort()
            except PyMongoError:
                log.exception("could not delete the partial upload %s, left behind", upload.file["_id"])

    def on_connection_close(self):
        super().on_connection_close()  # tells Tornado not to call post() or put()
        if self.upload is not None:
            log.info("client gone after %d bytes of %r: deleting them", self.received, self.upload.file["filename"])
            IOLoop.current().add_callback(self.discard)

    async def store(self):
        """The whole body is in: close the file, make its thumbnail if it is an image,
        then the document that lists them. If any of it fails, nothing is kept."""
        upload, self.upload = self.upload, None  # a disconnect no longer deletes it
        if upload is None or not upload.size:
            raise tornado.web.HTTPError(400, "Choose a file to upload: the file is missing or empty.")
        file, thumbnail_id = upload.file, None
        try:
            await upload.close()
            image = None
            if IMAGE_START.match(upload.start):
                # Read back from GridFS on a thread: Pillow reads what it needs of
                # the file, which is never all in memory, however big.
                image = await self.run_blocking(thumbnail_from_gridfs, self.settings["sync_fs"], file["_id"])
            document = {
                "filename": file["filename"],
                "contentType": file["metadata"]["contentType"],
                "length": file["length"],
                "uploadDate": file["uploadDate"],
                "original": file["_id"],
                "thumbnail": None,
            }
            if image:
                image_type, width, height, thumbnail = image
                thumbnail_id = await self.fs.upload_from_stream(
                    f"{file['filename']}.thumbnail.png", thumbnail, metadata={"contentType": "image/png"})
                document.update(contentType=image_type, width=width, height=height, thumbnail=thumbnail_id)
            result = await self.db.uploads.insert_one(document)
        except Exception as error:
            await self.delete_files(upload, thumbnail_id)
            if isinstance(error, NotAnImage):
                raise tornado.web.HTTPError(400, str(error))
            if isinstance(error, PyMongoError):
                log.exception("could not store %r", file["filename"])
                raise tornado.web.HTTPError(503, DATABASE_FAILED)
            raise
        log.info("stored %r as %s (%s, %s)", file["filename"], result.inserted_id,
                 document["contentType"], human_size(file["length"]))
        return result.inserted_id

    async def delete_files(self, upload, thumbnail_id):
        """Delete an upload's files, logging what cannot be: we are already handling an error."""
        deletions = [upload.abort()] + ([self.fs.delete(thumbnail_id)] if thumbnail_id else [])
        for result in await asyncio.gather(*deletions, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("could not delete a file of %r, left behind: %r", upload.file["filename"], result)


class GridFSUpload:
    """A new GridFS file, written a chunk at a time as its bytes come, each insert
    awaited. The two documents are GridFS's own: any driver or tool can read them.

    Motor's open_upload_stream() writes the same documents, but PyMongo's GridIn
    gathers up to 48 MB of chunks before it inserts any: that much memory for each
    upload, and no waiting for the database until then (measured: see the lesson)."""

    def __init__(self, db, filename, content_type):
        self.db = db
        self.file = {"_id": ObjectId(), "filename": filename, "chunkSize": CHUNK_SIZE, "length": 0,
                     "metadata": {"contentType": content_type}}
        self.pending = bytearray()  # less than a chunk, waiting for the rest
        self.start = b""  # how the file begins: enough to tell an image

    @property
    def size(self):
        return self.file["length"] + len(self.pending)

    async def write(self, data):
        self.pending += data
        while len(self.pending) >= CHUNK_SIZE:
            await self.insert_chunk(CHUNK_SIZE)

    async def insert_chunk(self, size):
        data = bytes(self.pending[:size])
        del self.pending[:size]
        n = self.file["length"] // CHUNK_SIZE
        if n == 0:  # the index reads need, as PyMongo makes it for its own uploads
            await self.db.fs.chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
        await self.db.fs.chunks.insert_one({"files_id": self.file["_id"], "n": n, "data": data})
        self.start = self.start or data[:12]
        self.file["length"] += size

    async def close(self):
        """Insert the last chunk, then the file's document: only now is the file listed."""
        if self.pending:
            await self.insert_chunk(len(self.pending))
        self.file.update(length=Int64(self.file["length"]), uploadDate=datetime.datetime.now(datetime.UTC))
        await self.db.fs.files.insert_one(self.file)

    async def abort(self):
        await self.db.fs.chunks.delete_many({"files_id": self.file["_id"]})
        await self.db.fs.files.delete_one({"_id": self.file["_id"]})


class FormUploadHandler(StreamedUpload):
    """POST /upload: the home page's form, parsed as it streams in."""

    SUPPORTED_METHODS = ("POST",)
    overhead = FORM_OVERHEAD

    def prepare(self):
        super().prepare()
        form_type, params = parse_options_header(self.request.headers.get("Content-Type", ""))
        if form_type != "multipart/form-data" or not params.get("boundary"):
            raise tornado.web.HTTPError(400, "Send the file in a multipart/form-data form, as the page does.")
        self.form = PushMultipartParser(params["boundary"])
        self.in_file = False  # whether the bytes parsed now are the file's

    async def receive(self, chunk):
        """Parse this piece of the form as it comes, writing the file's bytes to GridFS."""
        try:
            for part in self.form.parse(chunk):
                if isinstance(part, MultipartSegment):  # a new part: its headers
                    filename = part_filename(part)
                    self.in_file = part.name == "file" and bool(filename) and self.upload is None
                    if self.in_file:
                        self.start_file(filename, part.content_type)
                elif part is None:  # the end of a part
                    self.in_file = False
                elif self.in_file:  # some bytes of the part
                    await self.write_file(part)
        except MultipartError as error:
            raise tornado.web.HTTPError(400, f"That form data is malformed: {error}")

    async def post(self):
        try:
            self.form.close()  # checks that the form ended as a form should
        except MultipartError as error:
            await self.discard()
            raise tornado.web.HTTPError(400, f"That form data is malformed: {error}")
        await self.store()
        self.redirect(self.reverse_url("home"))


class PutUploadHandler(StreamedUpload):
    """PUT /upload/<filename>: the body is the file, as `curl -T` sends it."""

    SUPPORTED_METHODS = ("PUT",)

    def prepare(self):
        super().prepare()
        self.start_file(self.path_args[0], self.request.headers.get("Content-Type"))

    async def receive(self, chunk):
        await self.write_file(chunk)

    async def put(self, filename):
        upload_id = await self.store()
        self.set_status(201)
        self.set_header("Location", self.reverse_url("download", upload_id, "orig"))
        self.write({"id": str(upload_id)})


# --- Downloads, sent a piece at a time ---

# How much a download reads at a time, at most: 8 GridFS chunks (of 255 KiB), or
# 1 MiB of a file on disk; and how many reads run ahead of what is being sent: one,
# then two once the client has taken 4 MiB (measured: see the lesson).
CHUNKS_PER_READ = 8
DISK_READ_SIZE = 1024 * 1024
READS_AHEAD = 2
READ_AHEAD_FROM = 4 * 1024 * 1024
A_YEAR = 365 * 24 * 3600


class ChunkedDownload(BaseHandler):
    """What the GridFS and the disk downloads share: validators, one Range, HEAD, and
    the body sent a piece at a time, each awaited until the client has taken it."""

    client_gone = False

    def on_connection_close(self):
        super().on_connection_close()
        self.client_gone = True  # read no more for it

    async def send_file(self, size, etag, modified, open_range, include_body=True):
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("ETag", etag)
        self.set_header("Last-Modified", modified)
        if self.not_modified(modified):
            self.set_status(304)
            return
        start, end = 0, size
        # Range means something for GET alone: HEAD ignores it. With If-Range, only for
        # the file the client has part of: if it changed since, it gets the new one whole.
        wanted = include_body and self.same_file(etag, modified) and requested_range(
            self.request.headers.get("Range", ""), size)
        if wanted:
            start, end = wanted
            if start >= end:
                self.clear()  # an error page: none of the file's headers (its type, an attachment)
                self.set_status(416)
                self.set_header("Content-Range", f"bytes */{size}")
                self.render("error.html", status_code=416, message=f"That range is outside the file's {size} bytes.")
                return
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.set_header("Content-Length", end - start)
        if include_body and start < end:
            await self.send_pieces(open_range(start, end))

    def not_modified(self, modified):
        """Whether the client's copy is current: by ETag if it sent one, else by date."""
        if self.request.headers.get("If-None-Match"):
            return self.check_etag_header()  # handles lists, weak tags and *
        since = http_date(self.request.headers.get("If-Modified-Since"))
        return since is not None and to_the_second(modified) <= since

    def same_file(self, etag, modified):
        """Whether If-Range, if sent, names this file: by its ETag, compared strongly (a
        weak one never matches), or by its exact date (RFC 9110, section 13.1.5)."""
        if_range = self.request.headers.get("If-Range")
        if if_range is None:
            return True
        if if_range.startswith(('"', "W/")):
            return if_range == etag
        return http_date(if_range) == to_the_second(modified)

    async def send_pieces(self, reader):
        """Send what `reader` reads, reading the next pieces while these go out (the
        interleaving pattern of Tornado's guide), until the client goes."""
        reads = collections.deque([asyncio.ensure_future(reader.read())])
        sent = 0
        try:
            while (pieces := await reads.popleft()) and not self.client_gone:
                # Read ahead while these go out: once, or twice when the client has
                # taken enough to show it wants the file, not a byte or two of it.
                while len(reads) < (READS_AHEAD if sent >= READ_AHEAD_FROM else 1):
                    reads.append(asyncio.ensure_future(reader.read()))
                for piece in pieces:
                    self.write(piece)
                    await self.flush()  # until the client has taken it: memory stays flat
                    sent += len(piece)
                await asyncio.sleep(0)  # flush() need not wait on a fast network: let others in
        except StreamClosedError:
            self.client_gone = True
        except Exception:
            if not sent:
                raise  # nothing is sent yet: the client gets an error page
            log.exception("could not read %s after %d bytes: cutting the response short", self.request.path, sent)
            self.request.connection.stream.close()  # fewer bytes than Content-Length: the client knows
        finally:
            for read in reads:  # reads under way end here, not later with no one to see them
                with contextlib.suppress(Exception):
                    await read
        if self.client_gone:
            log.info("client gone: stopped sending %s", self.request.path)


class DownloadHandler(ChunkedDownload):
    """GET /uploads/<id>/orig, an upload's file; /uploads/<id>/thumb, its thumbnail."""

    async def get(self, upload_id, version, include_body=True):
        try:
            upload = await self.db.uploads.find_one({"_id": ObjectId(upload_id)})
        except InvalidId:
            raise tornado.web.HTTPError(404, "There is no file here: that id is not valid.")
        if upload is None:
            raise tornado.web.HTTPError(404, "There is no file with that id.")
        file_id = upload.get("original" if version == "orig" else "thumbnail")
        if version == "thumb" and file_id is None:
            raise tornado.web.HTTPError(404, "That file is not an image: it has no thumbnail.")
        try:
            grid_out = await self.fs.open_download_stream(file_id)
        except NoFile:  # the document outlived its file, or another program wrote it without one
            log.warning("upload %s lists file %r, which does not exist", upload_id, file_id)
            raise tornado.web.HTTPError(404, "That upload's file is missing from the database.")
        claimed = upload.get("contentType")
        if version == "thumb":
            self.set_header("Content-Type", "image/png")
        elif upload.get("thumbnail") is not None and claimed in IMAGE_TYPES.values():
            self.set_header("Content-Type", claimed)  # the type Pillow found
        else:  # not an image: a download, never a page of this site
            # Not served with the type it claims (the listing shows that one), but with
            # one that no browser runs or applies as a style: a page of this site that
            # loads it with <script src> or <link rel=stylesheet> ignores the attachment.
            text = isinstance(claimed, str) and claimed.startswith("text/")
            self.set_header("Content-Type", "text/plain" if text else "application/octet-stream")
            self.set_header("Content-Disposition", attachment(str(upload.get("filename", "download"))))
            self.set_header("Content-Security-Policy", f"{CONTENT_SECURITY_POLICY}; sandbox")
        # This URL names one file forever: browsers and proxies may keep it a year.
        self.set_header("Cache-Control", f"public, max-age={A_YEAR}, immutable")
        await self.send_file(grid_out.length, f'"{file_id}"', grid_out.upload_date,
                             lambda start, end: GridFSRange(self.db.fs.chunks, grid_out, start, end),
                             include_body)

    def head(self, upload_id, version):
        return self.get(upload_id, version, include_body=False)


class FileHandler(ChunkedDownload):
    """GET /files/<path>: a file of --files_dir, sent the same way."""

    async def get(self, path, include_body=True):
        root = Path(self.settings["files_dir"]).resolve()
        try:
            full_path = (root / path).resolve(strict=True)  # no more `..` nor symbolic links; it exists
            inside = full_path.is_relative_to(root) and full_path.is_file()
            file = open(full_path, "rb", buffering=0) if inside else None
        # A NUL byte, a name too long, a loop of links (a RuntimeError before Python
        # 3.13), no permission: nothing to serve.
        except (OSError, RuntimeError, ValueError):
            file = None
        if file is None:
            raise tornado.web.HTTPError(404, "There is no such file here.")
        with file:
            stat = os.fstat(file.fileno())
            self.set_header("Content-Type", mimetypes.guess_type(full_path.name)[0] or "application/octet-stream")
            modified = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC)
            await self.send_file(stat.st_size, f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"', modified,
                                 lambda start, end: FileRange(file, start, end), include_body)

    def head(self, path):
        return self.get(path, include_body=False)


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


class FileRange:
    """Reads bytes start..end of an open file, DISK_READ_SIZE at a time. On the event
    loop, as StaticFileHandler does: from the page cache, a read is quicker than
    handing it to a thread (measured: see the lesson)."""

    def __init__(self, file, start, end):
        self.file, self.left = file, end - start
        file.seek(start)

    async def read(self):
        piece = self.file.read(min(self.left, DISK_READ_SIZE))
        if self.left and not piece:  # cut short since its size was sent: the client must know
            raise OSError(f"{self.file.name} shrank during the download: {self.left} bytes are missing")
        self.left -= len(piece)
        return [piece] if piece else []


# --- The small helpers they use ---

def human_size(size):
    """A size as people read it: 1536 -> '1.5 KiB'."""
    if size < 1024:
        return f"{size} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if round(size, 1) < 1024 or unit == "TiB":  # as shown: 1023.96 KiB is '1.0 MiB'
            return f"{size:.1f} {unit}"


def claimed_type(content_type, filename):
    """The type a client gave a file (or its name suggests), if it looks like one."""
    content_type = parse_options_header(content_type or "")[0]
    if re.fullmatch(r"[\w.+-]+/[\w.+-]+", content_type, re.ASCII):  # \w: ASCII letters only
        return content_type
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def part_filename(part):
    """The file name of a form's part, read as Tornado reads it, as the email package
    does: quotes, backslashes and RFC 2231's `filename*=` included."""
    message = email.message.Message()
    message["Content-Disposition"] = part.header("Content-Disposition", "")
    try:
        return message.get_filename()
    except ValueError:  # a `filename*=` charset Python has no decoder for, as idna: a UnicodeError
        raise tornado.web.HTTPError(400, "That file name cannot be decoded: send it in UTF-8.")


def thumbnail_from_gridfs(bucket, file_id):
    """make_thumbnail() of a file read back from GridFS with PyMongo's blocking API,
    which fits a thread: Motor is PyMongo run on threads, with the same client."""
    with bucket.open_download_stream(file_id) as file:
        return make_thumbnail(file)


def attachment(filename):
    """A Content-Disposition that makes browsers save the file, under its name (RFC 6266):
    printable ASCII in `filename`, and every character, percent-encoded, in `filename*`."""
    fallback = re.sub(r'[^\x20-\x7e]|["\\%]', "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"


def requested_range(header, size):
    """The bytes that a `Range: bytes=...` header asks of `size` bytes, as (start, end),
    end excluded; start >= end if none of them exist (416).

    None if it is not one byte range: the whole file is then sent, as RFC 9110 allows."""
    match = re.fullmatch(r"bytes=([0-9]*)-([0-9]*)", header.strip())  # \d would take "٣" too
    if not match or match.groups() == ("", ""):
        return None
    first, last = (byte_number(digits) if digits else None for digits in match.groups())
    if first is None:  # bytes=-500: the last 500 bytes
        return max(size - last, 0), size
    if last is not None and last < first:
        return None
    return first, min(last + 1, size) if last is not None else size


def byte_number(digits):
    """A number of a Range header. Past 18 digits it is beyond the end of any file,
    whatever its value: int() refuses strings of over 4300 digits."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10**18


def http_date(value):
    """The date an HTTP header gives, in UTC; None if there is none."""
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # no header, or not a date
        return None
    return date if date.tzinfo else date.replace(tzinfo=datetime.UTC)


def to_the_second(date):
    """A date of ours (in UTC, aware or not) as precise as an HTTP date: to the second."""
    return date.replace(microsecond=0, tzinfo=datetime.UTC)


# ==== Carried over from part 2 ====
# What changed: the options --max_upload_size and --files_dir, which main() passes on
# to make_app(), which routes the lesson's handlers; the home page lists any file
# (LISTED), from a handler of its own, HomeHandler, for GET / alone; make_thumbnail()
# reads a file, and returns None for one that is no image.

HERE = Path(__file__).parent

# Our own registry, not tornado.options.options: the tests import every stage into
# one process, and a global registry refuses a second `port`.
options = tornado.options.OptionParser()
options.define("port", default=int(os.environ.get("PORT", "8000")), help="the port to listen on (env PORT)")
options.define("db_uri", default=os.environ.get("MONGODB_URI", "mongodb://localhost:27017"),
               help="the MongoDB to use (env MONGODB_URI)")
# A database of the stage's own: each stage stores its files its own way.
options.define("db_name", default=os.environ.get("MONGODB_DB", HERE.name),
               help="the database to use (env MONGODB_DB)")
options.define("debug", default=False, help="reload when the code or a template changes")
# No default here, or --help would print the secret.
options.define("cookie_secret", type=str,
               help="the key that signs cookies (env COOKIE_SECRET, else a random one at each start)")
options.define("max_upload_size", default=4 * 1024**3, help="the largest upload accepted, in bytes (4 GiB)")
options.define("files_dir", type=str, help="a directory whose files are served at /files/ (none by default)")
options.define("config", type=str, help="a Python file of option values, such as: port = 8001",
               callback=lambda path: options.parse_config_file(path, final=False))

NEWEST = 20  # how many uploads the home page lists
# The formats we accept, as Pillow names them, and the type we serve each as:
# image types that cannot carry scripts (no SVG, no HTML).
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
# What the home page lists: files as this stage stores them. Another stage, a tool or
# a person may have put other documents in the same collection: those are not listed.
LISTED = {"_id": {"$type": "objectId"}, "filename": {"$type": "string"}, "length": {"$type": "number"},
          "contentType": {"$type": "string"},
          "$or": [{"thumbnail": {"$type": "null"}},
                  {"thumbnail": {"$type": "objectId"}, "width": {"$type": "number"}, "height": {"$type": "number"}}]}
THUMBNAIL_SIZE = (128, 128)
QUARTER_TURNS = {5, 6, 7, 8}  # EXIF orientations that show the image on its side
DAMAGED = "That image is truncated or damaged: it cannot be decoded."

# Making a thumbnail is CPU work. It runs on a few threads of our own, which Pillow
# keeps busy without holding Python's lock, while the event loop goes on serving.
# One per core, less one left for the event loop: more would only queue for the
# same cores, and a burst of uploads waits its turn in the pool's queue.
THUMBNAIL_THREADS = max(1, (os.cpu_count() or 1) - 1)
thumbnail_pool = ThreadPoolExecutor(THUMBNAIL_THREADS, thread_name_prefix="thumbnail")

MAX_NAME_LENGTH = 255  # characters in a file name, as most file systems allow
# Characters that make a name show as another: "photo\u202egnp.exe" shows as "photoexe.png".
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Our pages load only our own files and run no inline script: whatever an upload's
# name holds, the browser runs nothing from it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

log = logging.getLogger("part3")


class NotAnImage(ValueError):
    """An upload we refuse: its message says why, for the visitor."""


def check_filename(filename):
    """Refuse a file name that is too long, or holds a control character (a line break
    could forge a header or a log line) or a bidirectional override or isolate, which
    can disguise its extension. Every other character people use is fine: spaces of
    every kind, accents, emoji and their joiners."""
    if len(filename) > MAX_NAME_LENGTH:
        raise tornado.web.HTTPError(400, f"That file name is too long: the limit is {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS for char in filename):
        raise tornado.web.HTTPError(400, "That file name holds control characters or bidirectional overrides.")


def make_thumbnail(file):
    """Read `file` as an image; return its type, width, height, and a PNG thumbnail.

    None if it is no image we know: it is then kept as a plain file. This blocks
    for as long as reading and decoding take: run it on a thread, not on the loop."""
    try:
        image = Image.open(file, formats=list(IMAGE_TYPES))
    except Image.DecompressionBombError:  # not an OSError
        raise NotAnImage("That image has too many pixels to be decoded safely.")
    except Image.UnidentifiedImageError:  # no format we accept
        return None
    except Exception as error:
        # Pillow raises more than OSError on hostile files: ValueError (text chunks
        # past its limits, a truncated header, tiles outside the image), SyntaxError
        # (broken PNG chunk lists), struct.error, EOFError... The image is damaged.
        raise NotAnImage(DAMAGED) from error
    with image:
        # Pillow calls a JPEG holding a second picture, as some cameras write, an MPO.
        image_type = IMAGE_TYPES["JPEG" if image.format == "MPO" else image.format]
        width, height = image.size
        # Pillow refuses only above twice this limit (and only warns between).
        if width * height > Image.MAX_IMAGE_PIXELS:
            raise NotAnImage("That image has too many pixels to be decoded safely.")
        try:
            # The fast path: a JPEG decodes at 1/2, 1/4 or 1/8 of its size for the asking.
            image.draft(None, (2 * THUMBNAIL_SIZE[0], 2 * THUMBNAIL_SIZE[1]))
            image.load()  # decode it all now, so that a damaged file is caught here
            if image.getexif().get(ExifTags.Base.Orientation) in QUARTER_TURNS:
                width, height = height, width  # as a browser shows it
            thumbnail = for_png(image)
            thumbnail.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
            thumbnail = ImageOps.exif_transpose(thumbnail)
            png = io.BytesIO()
            thumbnail.save(png, "PNG")
        except Exception as error:  # whatever Pillow raises, as above
            raise NotAnImage(DAMAGED) from error
        return image_type, width, height, png.getvalue()


def for_png(image):
    """`image` in a mode that resizes smoothly and saves as PNG: L, LA, RGB or RGBA."""
    if image.mode == "I;16":  # 16-bit grey: convert("L") would clip it, not scale it
        return image.point(lambda value: value / 256).convert("L")
    if image.mode in ("L", "LA", "RGB", "RGBA") and "transparency" not in image.info:
        return image
    # P and 1 would be resized without smoothing, PNG cannot hold CMYK, and a
    # transparent colour is best kept as an alpha channel.
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


class HomeHandler(BaseHandler):
    """GET /: the newest uploads, and the form to add one."""

    async def get(self):
        cursor = self.db.uploads.find(LISTED).sort([("uploadDate", -1), ("_id", -1)]).limit(NEWEST)
        uploads = await cursor.to_list(None)
        self.render("index.html", uploads=uploads, human_size=human_size,
                    max_upload_size=self.settings["max_upload_size"])


class NotFoundHandler(BaseHandler):
    def prepare(self):  # for any URL that no route matches, whatever the method
        raise tornado.web.HTTPError(404, "There is no page here.")


def make_app(db, cookie_secret=None, thumbnail_executor=thumbnail_pool, max_upload_size=4 * 1024**3,
             files_dir=None, **settings):
    """The application, storing its files in the Motor database `db`.

    With no `cookie_secret`, a random one. `thumbnail_executor=None` makes the
    thumbnails on the event loop: only the benchmark wants that. With `files_dir`,
    the files of that directory are served at /files/."""
    routes = [
        tornado.web.url(r"/", HomeHandler, name="home"),
        tornado.web.url(r"/upload", FormUploadHandler, name="form_upload"),
        tornado.web.url(r"/upload/([^/]+)", PutUploadHandler, name="put_upload"),
        tornado.web.url(r"/uploads/([^/]+)/(orig|thumb)", DownloadHandler, name="download"),
    ]
    if files_dir:
        routes.append(tornado.web.url(r"/files/(.+)", FileHandler, name="files"))
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        template_path=HERE / "templates",
        static_path=HERE / "static",
        fs=MotorGridFSBucket(db),
        sync_fs=GridFSBucket(db.delegate),  # the same client, through PyMongo's blocking API
        db=db,
        thumbnail_executor=thumbnail_executor,
        max_upload_size=max_upload_size,
        files_dir=files_dir,
        cookie_secret=cookie_secret or secrets.token_hex(32),
        xsrf_cookies=True,  # every POST and PUT repeats the token of the visitor's _xsrf cookie
        cross_origin_protection=True,  # and comes, as the browser tells, from our own pages
        **settings,
    )


def redact(uri):
    """The URI without its user name and password, fit for a log line."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


async def main():
    try:
        options.parse_command_line()
    except (tornado.options.Error, ValueError, OSError) as error:  # e.g. --port=abc, or no such --config
        sys.exit(f"error: {error}")
    tornado.log.enable_pretty_logging()
    client = MotorClient(options.db_uri, serverSelectionTimeoutMS=3000)
    try:
        await client.admin.command("ping")
    except PyMongoError as error:
        sys.exit(f"error: no MongoDB answers at {redact(options.db_uri)} ({type(error).__name__})")
    cookie_secret = options.cookie_secret or os.environ.get("COOKIE_SECRET")
    app = make_app(client[options.db_name], cookie_secret, max_upload_size=options.max_upload_size,
                   files_dir=options.files_dir, debug=options.debug)
    try:
        # A handler that does not stream reads a request's body whole before it runs:
        # none of ours wants more than a little. The uploads raise it for themselves.
        app.listen(options.port, max_body_size=FORM_OVERHEAD)
    except OSError as error:
        sys.exit(f"error: cannot listen on port {options.port}: {error.strerror}")
    log.info("serving on http://localhost:%d, database %r", options.port, options.db_name)
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
