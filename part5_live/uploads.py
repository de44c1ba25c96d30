"""Uploads streamed into GridFS as they arrive (StreamedUpload), then a handler for
the form and one for PUT. From part 4: shed under load, kept to a pace, abandon()."""

import asyncio
import re

import tornado.web
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from pymongo.errors import PyMongoError
from tornado.ioloop import IOLoop

from base import BaseHandler, check_filename, log
from gridfs_chunks import GridFSUpload
from thumbnails import NotAnImage, thumbnail_from_gridfs
from upload_checks import claimed_type, declared_size, human_size, malformed, part_filename
from upload_pace import UploadPace

# How the files of the formats we accept (IMAGE_TYPES) begin: only those are read back
# to be thumbnailed.
IMAGE_START = re.compile(rb"\x89PNG\r\n\x1a\n|\xff\xd8\xff|GIF8[79]a|RIFF....WEBP", re.DOTALL)
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
    pace = None  # an UploadPace while the body is coming: it closes a connection too slow or silent
    storing = False  # whether a piece of the body is being stored
    overhead = 0  # bytes a body may hold besides its file: a subclass sets its own

    async def data_received(self, chunk):
        # Awaited by Tornado: it reads no more of the body, and the client's sending
        # slows down, until the database has taken all but the chunk it is storing.
        self.received += len(chunk)
        self.storing = True
        try:
            await self.receive(chunk)
        except tornado.web.HTTPError as error:
            await self.refuse(error)
        except PyMongoError as error:  # one line: the driver's traceback tells no more
            log.error("could not store an upload: %s", error)
            await self.refuse(tornado.web.HTTPError(503, DATABASE_FAILED))
        finally:
            self.storing = False

    async def receive(self, chunk):
        """Take this piece of the body: what a subclass must provide, as only it knows
        where the file's bytes are. It writes them with write_file(), once start_file()
        has begun the file; an HTTPError it raises refuses the upload."""
        raise NotImplementedError

    def start_file(self, filename, content_type):
        """Begin the GridFS file the upload goes to: nothing is stored until bytes come."""
        check_filename(filename)
        self.upload = GridFSUpload(self.db, filename, claimed_type(content_type, filename),
                                   self.settings["abandoned_after"])

    async def write_file(self, data):
        """Add `data` to the file, within the size limit, whichever way the file comes."""
        if self.upload.size + len(data) > self.settings["max_upload_size"]:
            raise self.too_big()
        await self.upload.write(data)

    async def store(self):
        """The whole body is in: close the file, make its thumbnail if it is an image,
        then the document that lists them. If any of it fails, nothing is kept."""
        self.stop_pace()  # the body is all in
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
                image = await self.run_blocking(thumbnail_from_gridfs, self.settings["sync_fs"], file["_id"],
                                                self.settings["decode_budget"])
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
                log.error("could not store %r: %s", file["filename"], error)
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

    def prepare(self):
        self.received = 0
        # The limit is the file's: a body may hold a little more than its file (a form's does).
        limit = self.settings["max_upload_size"] + self.overhead
        declared = declared_size(self.request.headers)
        if declared is not None and declared > limit:
            self.request.connection.set_max_body_size(declared)  # else Tornado adds a 400 to our 413
            raise self.too_big()
        # Shed the load before a byte of the body is read: each upload under way
        # holds up to two chunks in memory, one going in and the next arriving.
        if len(self.in_flight.uploads) >= self.settings["max_uploads"]:
            raise tornado.web.HTTPError(503, "The server is busy with other uploads. Please try again in a moment.")
        self.in_flight.uploads.add(self)
        # Tornado's body timeout bounds the whole body, and a big file on a slow line
        # takes hours: ours bounds the pace instead, over each --idle_timeout.
        self.request.connection.set_body_timeout(None)
        self.pace = UploadPace(self, self.settings["idle_timeout"])
        # A chunked body has no Content-Length: Tornado cuts it off (a bare 400) when
        # the sizes of its chunks add up to more than this.
        self.request.connection.set_max_body_size(limit)

    def too_big(self):
        limit = human_size(self.settings["max_upload_size"])
        return tornado.web.HTTPError(413, f"That file is too big: the limit is {limit}.")

    async def refuse(self, error):
        """Answer `error` before the body has all arrived. Tornado then reads no more
        of it, and closes the connection once the answer is sent: the answer says so."""
        await self.discard()
        self.log_exception(type(error), error, None)
        self.send_error(error.status_code, exc_info=(type(error), error, None), closing=True)

    async def cut_short(self):
        """The server stops, and this upload has not ended in time: while its body is
        still coming, answer 503 before its connection is closed under it."""
        if self.pace is not None:
            await self.refuse(tornado.web.HTTPError(503, "The server is restarting: send the file again in a moment."))

    async def discard(self):
        """Delete the chunks an unfinished upload has stored."""
        self.stop_pace()
        upload, self.upload = self.upload, None
        if upload is not None:
            try:
                await upload.abort()
            except PyMongoError as error:
                log.error("could not delete the partial upload %s, left behind: %s", upload.file["_id"], error)

    def on_connection_close(self):
        super().on_connection_close()  # tells Tornado not to call post() or put()
        if self.pace is None:  # the body was all in, or refused: the request ends as usual
            return
        if self.upload is not None:
            log.info("client gone after %d bytes of %r: deleting them", self.received, self.upload.file["filename"])
        IOLoop.current().add_callback(self.abandon)

    async def abandon(self):
        """The end of a request cut short mid-body: Tornado calls no on_finish() for it."""
        await self.discard()
        self.in_flight.end(self)

    def stop_pace(self):
        if self.pace is not None:
            self.pace.stop()
            self.pace = None

    def on_finish(self):
        self.stop_pace()
        super().on_finish()


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
            raise malformed(error)

    async def post(self):
        try:
            self.form.close()  # checks that the form ended as a form should
        except MultipartError as error:
            await self.discard()
            raise malformed(error)
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
