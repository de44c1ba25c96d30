"""Part 1: image hosting on MongoDB GridFS, with Tornado and Motor.

Run it with `python part1_basic/app.py`. It reads three environment variables:
PORT (default 8000), MONGODB_URI (default mongodb://localhost:27017) and
MONGODB_DB (default part1_basic, the stage's name).
"""

import asyncio
import logging
import os
import re
import sys
import unicodedata
from pathlib import Path

import tornado.log
import tornado.web
from bson import ObjectId
from bson.errors import InvalidId
from gridfs.errors import NoFile
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from pymongo.errors import ConnectionFailure, PyMongoError

HERE = Path(__file__).parent
PORT = int(os.environ.get("PORT", "8000"))
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://localhost:27017")
# A database of the stage's own: each stage stores its files its own way.
MONGODB_DB = os.environ.get("MONGODB_DB", HERE.name)

NEWEST = 20  # how many uploads the home page lists
# The browser trusts the type we send, so we only accept (and serve) image types
# that cannot carry scripts: no SVG, no HTML.
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
# What the home page lists: the images this stage stores. Another stage, a tool or a
# person may have put other files in the same bucket: those are not listed.
LISTED = {"_id": {"$type": "objectId"}, "filename": {"$type": "string"},
          "metadata.contentType": {"$in": sorted(IMAGE_TYPES)}}

MAX_NAME_LENGTH = 255  # characters in a file name: as many as most file systems allow in bytes
# Controls (Cc: line feed, carriage return, NUL, U+0085...), and the line and paragraph
# separators (Zl U+2028, Zp U+2029), which break a line in many a log viewer and editor.
LINE_BREAKING = {"Cc", "Zl", "Zp"}
# Characters that make a name show as another: "photo\u202egnp.exe" shows as "photoexe.png".
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Our pages load only our own files and run no inline script: whatever an upload's
# name holds, the browser runs nothing from it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

log = logging.getLogger("part1")


def check_filename(filename):
    """Refuse a file name that is too long, or holds a control character (a line break
    could forge a header or a log line) or a bidirectional override or isolate, which
    can disguise its extension. Every other character people use is fine: spaces of
    every kind, accents, emoji and their joiners."""
    if len(filename) > MAX_NAME_LENGTH:
        raise tornado.web.HTTPError(400, f"That file name is too long: the limit is {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(char) in LINE_BREAKING or char in BIDI_CONTROLS for char in filename):
        raise tornado.web.HTTPError(400, "That file name holds control characters or bidirectional overrides.")


class BaseHandler(tornado.web.RequestHandler):
    def set_default_headers(self):
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")  # believe our Content-Type

    @property
    def fs(self):
        return self.settings["fs"]

    def write_error(self, status_code, **kwargs):
        """An error page that says what went wrong, never a traceback."""
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, ConnectionFailure):  # the database is down or out of reach
            self.set_status(503)
            message = "The database is not answering. Please try again in a moment."
        else:
            message = getattr(error, "log_message", None) or self._reason
        self.render("error.html", status_code=self.get_status(), message=message)

    def log_exception(self, typ, value, tb):
        """A database that does not answer is one line a request, not a traceback:
        while it is down, every visitor meets it."""
        if isinstance(value, ConnectionFailure):
            log.warning("%s %s: the database is not answering (%s)", self.request.method, self.request.path,
                        typ.__name__)
        else:
            super().log_exception(typ, value, tb)


class MainHandler(BaseHandler):
    async def get(self):
        cursor = self.fs.find(LISTED).sort([("uploadDate", -1), ("_id", -1)]).limit(NEWEST)
        uploads = await cursor.to_list(None)
        self.render("index.html", uploads=uploads)

    def head(self):  # what GET sends, without the body: monitors and `curl -I` ask so
        return self.get()

    async def post(self):
        files = self.request.files.get("file")
        if not files or not files[0].body:
            raise tornado.web.HTTPError(400, "Choose an image to upload: the file is missing or empty.")
        upload = files[0]
        check_filename(upload.filename)
        if upload.content_type not in IMAGE_TYPES:
            raise tornado.web.HTTPError(415, "Only PNG, JPEG, GIF and WebP images can be uploaded.")
        file_id = await self.fs.upload_from_stream(
            upload.filename, upload.body, metadata={"contentType": upload.content_type}
        )
        log.info("stored %r as %s (%d bytes)", upload.filename, file_id, len(upload.body))
        self.redirect(self.reverse_url("main"))


class ShowImageHandler(BaseHandler):
    async def get(self, image_id, include_body=True):
        try:
            grid_out = await self.fs.open_download_stream(ObjectId(image_id))
        except InvalidId:
            raise tornado.web.HTTPError(404, "There is no image here: that id is not valid.")
        except NoFile:
            raise tornado.web.HTTPError(404, "There is no image with that id.")
        # Files stored by other tools may have no metadata, or claim any type (text/html):
        # only the image types we accept are served as such, anything else as a download.
        metadata = grid_out.metadata if isinstance(grid_out.metadata, dict) else {}
        content_type = metadata.get("contentType")
        if content_type not in IMAGE_TYPES:
            content_type = "application/octet-stream"
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Length", grid_out.length)
        if include_body:
            await grid_out.stream_to_handler(self)

    def head(self, image_id):  # the headers alone, without reading the file
        return self.get(image_id, include_body=False)


class NotFoundHandler(BaseHandler):
    def prepare(self):  # for any URL that no route matches, whatever the method
        raise tornado.web.HTTPError(404, "There is no page here.")


def make_app(db, **settings):
    """The application, storing its files in the Motor database `db`."""
    return tornado.web.Application(
        [
            tornado.web.url(r"/", MainHandler, name="main"),
            tornado.web.url(r"/imgs/([^/]+)", ShowImageHandler, name="show_image"),
        ],
        default_handler_class=NotFoundHandler,
        template_path=HERE / "templates",
        static_path=HERE / "static",
        fs=MotorGridFSBucket(db),
        **settings,
    )


def redact(uri):
    """The URI without its user name and password, fit for a log line."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


async def main():
    tornado.log.enable_pretty_logging()
    client = MotorClient(MONGODB_URI, serverSelectionTimeoutMS=3000)
    try:
        await client.admin.command("ping")
    except PyMongoError as error:
        sys.exit(f"error: no MongoDB answers at {redact(MONGODB_URI)} ({type(error).__name__})")
    app = make_app(client[MONGODB_DB])
    try:
        app.listen(PORT)
    except OSError as error:
        sys.exit(f"error: cannot listen on port {PORT}: {error.strerror}")
    log.info("serving on http://localhost:%d, database %r", PORT, MONGODB_DB)
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
