"""Downloads sent a piece at a time, each awaited until the socket has taken it
(ChunkedDownload): an upload's file from GridFS here, a file of --files_dir from the
disk in disk_files.py."""

import asyncio
import collections
import contextlib
import datetime
import re
import urllib.parse

import tornado.gen
import tornado.web
from bson import ObjectId
from bson.errors import InvalidId
from gridfs.errors import CorruptGridFile, NoFile
from tornado.iostream import StreamClosedError

from base import CONTENT_SECURITY_POLICY, BaseHandler, log
from gridfs_chunks import GridFSRange, well_formed
from http_ranges import http_date, requested_range, to_the_second
from thumbnails import IMAGE_TYPES

# How many reads run ahead of what is sent: one, then two once the client has taken
# 4 MiB. bench/big_downloads.py measures one read ahead; bench/partial_reads.py, two
# ahead from the first byte.
READS_AHEAD = 2
READ_AHEAD_FROM = 4 * 1024 * 1024
A_YEAR = 365 * 24 * 3600
DAMAGED = "That upload's file is damaged in the database: it cannot be sent."


class ChunkedDownload(BaseHandler):
    """What the GridFS and the disk downloads share: validators, one Range, HEAD, and
    the body sent a piece at a time, each awaited until the socket has taken it."""

    client_gone = False
    # Whether a date (to the second) names one version of the file: a GridFS file never
    # changes. A date that cannot is weak, and a weak If-Range never matches (RFC 9110).
    dates_name_one_version = True

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
                    await self.flush_or_cut()  # until the socket has it: as fast as the client reads, memory flat
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
            # For the request's log line, which would say 200: 499 is nginx's "client closed
            # the connection", never sent (the headers went long ago).
            self.set_status(499, "Client Closed Request")

    async def flush_or_cut(self):
        """flush(), unless the client takes nothing for --idle_timeout: a client that
        stops reading would hold what is read ahead for it, and a descriptor, for ever.
        Then the connection is closed, and StreamClosedError raised."""
        idle_timeout = self.settings["idle_timeout"]
        try:
            await tornado.gen.with_timeout(datetime.timedelta(seconds=idle_timeout), self.flush(),
                                           quiet_exceptions=StreamClosedError)
        except TimeoutError:
            log.info("%s took nothing for %s s: closing the connection", self.request.remote_ip, idle_timeout)
            self.request.connection.stream.close()
            raise StreamClosedError()

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
        weak one never matches), or by its exact date if dates tell versions apart."""
        if_range = self.request.headers.get("If-Range")
        if if_range is None:
            return True
        if if_range.startswith(('"', "W/")):
            return if_range == etag
        return self.dates_name_one_version and http_date(if_range) == to_the_second(modified)

    def on_connection_close(self):
        super().on_connection_close()
        self.client_gone = True  # read no more for it


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
        if not well_formed(grid_out):  # written by hand, or damaged: its figures cannot be trusted
            log.warning("upload %s: file %r has a length of %r, chunks of %r, an upload date of %r", upload_id,
                        file_id, grid_out.length, grid_out.chunk_size, grid_out.upload_date)
            raise tornado.web.HTTPError(404, DAMAGED)
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
        try:
            await self.send_file(grid_out.length, f'"{file_id}"', grid_out.upload_date,
                                 lambda start, end: GridFSRange(self.db.fs.chunks, grid_out, start, end),
                                 include_body)
        except CorruptGridFile as error:  # a chunk missing or of the wrong size, before a byte went out
            log.warning("upload %s: %s", upload_id, error)
            raise tornado.web.HTTPError(404, DAMAGED)

    def head(self, upload_id, version):
        return self.get(upload_id, version, include_body=False)


def attachment(filename):
    """A Content-Disposition that makes browsers save the file, under its name (RFC 6266):
    printable ASCII in `filename`, and every character, percent-encoded, in `filename*`."""
    fallback = re.sub(r'[^\x20-\x7e]|["\\%]', "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
