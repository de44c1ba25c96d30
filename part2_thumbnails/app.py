"""Part 2: thumbnails made off the event loop, configuration, and XSRF protection.

This file reads as its lesson, README.md: first what part 2 adds or changes (its
options, thumbnails on a thread pool, the handlers that make and serve them, the
application and main()), then, under one banner, what part 1 had that it keeps
as it was.

Run it with `python part2_thumbnails/app.py`; `--help` lists its options. Their
defaults come from the environment variables PORT (8000), MONGODB_URI
(mongodb://localhost:27017), MONGODB_DB (part2_thumbnails, the stage's name) and
COOKIE_SECRET.
"""

import asyncio
import datetime
import io
import logging
import os
import re
import secrets
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tornado.log
import tornado.options
import tornado.web
from bson import ObjectId
from bson.errors import InvalidId
from gridfs.errors import NoFile
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from PIL import ExifTags, Image, ImageOps
from pymongo.errors import ConnectionFailure, PyMongoError
from tornado.ioloop import IOLoop

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
options.define("config", type=str, help="a Python file of option values, such as: port = 8001",
               callback=lambda path: options.parse_config_file(path, final=False))

NEWEST = 20  # how many uploads the home page lists
# The formats we accept, as Pillow names them, and the type we serve each as:
# image types that cannot carry scripts (no SVG, no HTML).
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
# What the home page lists: images as this stage stores them. Another stage, a tool or
# a person may have put other documents in the same collection: those are not listed.
LISTED = {"_id": {"$type": "objectId"}, "filename": {"$type": "string"}, "thumbnail": {"$type": "objectId"},
          "width": {"$type": "number"}, "height": {"$type": "number"}}
THUMBNAIL_SIZE = (128, 128)
QUARTER_TURNS = {5, 6, 7, 8}  # EXIF orientations that show the image on its side
DAMAGED = "That image is truncated or damaged: it cannot be decoded."

# Making a thumbnail is CPU work. It runs on a few threads of our own, which Pillow
# keeps busy without holding Python's lock, while the event loop goes on serving.
# One per core, less one left for the event loop: more would only queue for the
# same cores, and a burst of uploads waits its turn in the pool's queue.
THUMBNAIL_THREADS = max(1, (os.cpu_count() or 1) - 1)
thumbnail_pool = ThreadPoolExecutor(THUMBNAIL_THREADS, thread_name_prefix="thumbnail")

log = logging.getLogger("part2")


class NotAnImage(ValueError):
    """An upload we refuse: its message says why, for the visitor."""


def make_thumbnail(data):
    """Read `data` as an image; return its type, width, height, and a PNG thumbnail.

    This blocks for as long as decoding takes: run it on a thread, not on the loop."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(IMAGE_TYPES))
    except Image.DecompressionBombError:  # not an OSError
        raise NotAnImage("That image has too many pixels to be decoded safely.")
    except Image.UnidentifiedImageError:  # no format we accept
        raise NotAnImage("That is not a PNG, JPEG, GIF or WebP image.")
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


class MainHandler(BaseHandler):
    async def get(self):
        cursor = self.db.imgs.find(LISTED).sort([("uploadDate", -1), ("_id", -1)]).limit(NEWEST)
        uploads = await cursor.to_list(None)
        self.render("index.html", uploads=uploads)

    async def post(self):
        files = self.request.files.get("file")
        if not files or not files[0].body:
            raise tornado.web.HTTPError(400, "Choose an image to upload: the file is missing or empty.")
        upload = files[0]
        check_filename(upload.filename)
        try:
            image_type, width, height, thumbnail = await self.run_blocking(make_thumbnail, upload.body)
        except NotAnImage as error:
            raise tornado.web.HTTPError(400, str(error))
        try:
            image_id = await self.store(upload, image_type, width, height, thumbnail)
        except PyMongoError:
            log.exception("could not store %r", upload.filename)
            raise tornado.web.HTTPError(503, "The database failed: the image was not stored. Please try again.")
        log.info("stored %r as %s (%d bytes, %dx%d)", upload.filename, image_id, len(upload.body), width, height)
        self.redirect(self.reverse_url("main"))

    async def store(self, upload, image_type, width, height, thumbnail):
        """The original and its thumbnail in GridFS, side by side, then the document
        that lists them. If any of it fails, what was stored is deleted."""
        results = await asyncio.gather(
            self.fs.upload_from_stream(upload.filename, upload.body, metadata={"contentType": image_type}),
            self.fs.upload_from_stream(f"{upload.filename}.thumbnail.png", thumbnail,
                                       metadata={"contentType": "image/png"}),
            # Wait for both, even if one fails: then we know what there is to delete.
            return_exceptions=True,
        )
        stored = [result for result in results if isinstance(result, ObjectId)]
        try:
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            original_id, thumbnail_id = results
            document = await self.db.imgs.insert_one({
                "filename": upload.filename,
                "contentType": image_type,
                "length": len(upload.body),
                "width": width,
                "height": height,
                "uploadDate": datetime.datetime.now(datetime.UTC),
                "original": original_id,
                "thumbnail": thumbnail_id,
            })
        except Exception:
            await self.delete_files(stored)
            raise
        return document.inserted_id

    async def delete_files(self, file_ids):
        """Delete GridFS files, logging what cannot be: we are already handling an error."""
        results = await asyncio.gather(*(self.fs.delete(file_id) for file_id in file_ids), return_exceptions=True)
        for file_id, result in zip(file_ids, results):
            if isinstance(result, Exception):
                log.error("could not delete file %s, left behind: %r", file_id, result)


class ShowImageHandler(BaseHandler):
    async def get(self, image_id, version):
        try:
            image = await self.db.imgs.find_one({"_id": ObjectId(image_id)})
        except InvalidId:
            raise tornado.web.HTTPError(404, "There is no image here: that id is not valid.")
        if image is None:
            raise tornado.web.HTTPError(404, "There is no image with that id.")
        file_id = image.get("original" if version == "orig" else "thumbnail")
        try:
            grid_out = await self.fs.open_download_stream(file_id)
        except NoFile:  # the document outlived its file, or another program wrote it without one
            log.warning("image %s lists file %r, which does not exist", image_id, file_id)
            raise tornado.web.HTTPError(404, "That image's file is missing from the database.")
        # Files stored by other tools may have no metadata, or claim any type (text/html):
        # only our image types are served as such, anything else as a download.
        metadata = grid_out.metadata if isinstance(grid_out.metadata, dict) else {}
        content_type = metadata.get("contentType")
        if content_type not in IMAGE_TYPES.values():
            content_type = "application/octet-stream"
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Length", grid_out.length)
        await grid_out.stream_to_handler(self)


def make_app(db, cookie_secret=None, thumbnail_executor=thumbnail_pool, **settings):
    """The application, storing its files in the Motor database `db`.

    With no `cookie_secret`, a random one. `thumbnail_executor=None` makes the
    thumbnails on the event loop: only the benchmark wants that."""
    return tornado.web.Application(
        [
            tornado.web.url(r"/", MainHandler, name="main"),
            tornado.web.url(r"/imgs/([^/]+)/(orig|thumb)", ShowImageHandler, name="show_image"),
        ],
        default_handler_class=NotFoundHandler,
        template_path=HERE / "templates",
        static_path=HERE / "static",
        fs=MotorGridFSBucket(db),
        db=db,
        thumbnail_executor=thumbnail_executor,
        cookie_secret=cookie_secret or secrets.token_hex(32),
        xsrf_cookies=True,  # every POST repeats the token of the visitor's _xsrf cookie
        cross_origin_protection=True,  # and comes, as the browser tells, from our own pages
        **settings,
    )


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
    app = make_app(client[options.db_name], cookie_secret, debug=options.debug)
    try:
        app.listen(options.port)
    except OSError as error:
        sys.exit(f"error: cannot listen on port {options.port}: {error.strerror}")
    log.info("serving on http://localhost:%d, database %r", options.port, options.db_name)
    await asyncio.Event().wait()  # serve until Ctrl+C


# ==== Carried over from part 1, unchanged ====

MAX_NAME_LENGTH = 255  # characters in a file name, as most file systems allow
# Characters that make a name show as another: "photo\u202egnp.exe" shows as "photoexe.png".
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Our pages load only our own files and run no inline script: whatever an upload's
# name holds, the browser runs nothing from it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def check_filename(filename):
    """Refuse a file name that is too long, or holds a control character (a line break
    could forge a header or a log line) or a bidirectional override or isolate, which
    can disguise its extension. Every other character people use is fine: spaces of
    every kind, accents, emoji and their joiners."""
    if len(filename) > MAX_NAME_LENGTH:
        raise tornado.web.HTTPError(400, f"That file name is too long: the limit is {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS for char in filename):
        raise tornado.web.HTTPError(400, "That file name holds control characters or bidirectional overrides.")


class NotFoundHandler(BaseHandler):
    def prepare(self):  # for any URL that no route matches, whatever the method
        raise tornado.web.HTTPError(404, "There is no page here.")


def redact(uri):
    """The URI without its user name and password, fit for a log line."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
