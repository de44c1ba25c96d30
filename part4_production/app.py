"""Part 4: part 3 run for real: processes, a proxy, timeouts, a graceful stop.

This file reads as its lesson, README.md: first what part 4 adds (processes on one
port, running out of file descriptors, a graceful stop, the sweep of abandoned
uploads, the decode budget, process-wide settings, the health check), then, under
one banner, what is carried over from part 3. BaseHandler alone comes before the
lesson: the handlers subclass it, and Python needs a class defined before its
subclasses.

Run it with `python part4_production/app.py`; `--help` lists its options. Their
defaults come from the environment variables PORT (8000), MONGODB_URI
(mongodb://localhost:27017), MONGODB_DB (part4_production, the stage's name) and
COOKIE_SECRET. Its lesson tells how to run it for real: processes, a proxy, a
MongoDB cluster.
"""

import asyncio
import collections
import contextlib
import ctypes
import datetime
import email.message
import email.utils
import gc
import io
import logging
import mimetypes
import os
import re
import resource
import secrets
import signal
import sys
import threading
import time
import unicodedata
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tornado.gen
import tornado.httpserver
import tornado.log
import tornado.netutil
import tornado.options
import tornado.process
import tornado.web
from bson import Int64, ObjectId
from bson.errors import InvalidId
from gridfs import GridFSBucket
from gridfs.errors import CorruptGridFile, NoFile
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from PIL import ExifTags, Image, ImageOps
from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, PyMongoError
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError


# Part 3's BaseHandler, with part 4's additions (the requests in flight; a 503 with
# Retry-After when the database hangs), comes before the lesson: its handlers subclass it.

RETRY_AFTER = 10  # seconds, in the Retry-After of a 503: the database or the uploads are busy


class BaseHandler(tornado.web.RequestHandler):
    def initialize(self):  # as the handler is made, for each request
        self.in_flight.requests.add(self)

    def on_finish(self):  # not called for an upload cut short: see StreamedUpload.abandon()
        self.in_flight.end(self)

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
    def in_flight(self):
        return self.settings["in_flight"]

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
        # The database is down, out of reach, or slower than --db_timeout.
        if isinstance(error, PyMongoError) and (isinstance(error, ConnectionFailure) or error.timeout):
            self.set_status(503)
            message = "The database is not answering. Please try again in a moment."
        else:
            message = getattr(error, "log_message", None) or self._reason
        if self.get_status() == 503:  # busy or down, for now: when to try again
            self.set_header("Retry-After", RETRY_AFTER)
        self.render("error.html", status_code=self.get_status(), message=message)


# ==== What part 4 adds ====

# --- Processes on one port ---

def main():
    """Check the options and the database, listen, fork if asked to, then serve."""
    try:
        options.parse_command_line()
    except (tornado.options.Error, ValueError, OSError) as error:  # e.g. --port=abc, or no such --config
        sys.exit(f"error: {error}")
    if options.debug and options.processes != 1:
        sys.exit("error: --debug reloads the code when it changes: it works with one process only")
    tornado.log.enable_pretty_logging(options)
    # Asked once, here, with PyMongo's blocking client, closed before any fork: a
    # client must not cross a fork, and a child that exits in error is restarted.
    with MongoClient(options.db_uri, serverSelectionTimeoutMS=3000) as client:
        try:
            client.admin.command("ping")
        except PyMongoError as error:
            sys.exit(f"error: no MongoDB answers at {redact(options.db_uri)} ({type(error).__name__})")
    # One secret for every process: what one signs, the others must accept.
    cookie_secret = options.cookie_secret or os.environ.get("COOKIE_SECRET") or secrets.token_hex(32)
    try:
        sockets = tornado.netutil.bind_sockets(options.port)
    except OSError as error:
        sys.exit(f"error: cannot listen on port {options.port}: {error.strerror}")
    log.info("serving on http://localhost:%d, database %r, up to %d open files a process",
             options.port, options.db_name, raise_descriptor_limit())
    parent_pipe = start_processes(options.processes, sockets) if options.processes != 1 else None
    asyncio.run(serve(sockets, cookie_secret, parent_pipe))


def start_processes(count, sockets):
    """Fork `count` processes (0: one per core) to serve the same sockets, and return
    in each of them the end of a pipe to watch.

    The parent stays in fork_processes(), which restarts a child that crashes and
    exits once all have stopped. It holds the pipe's other end, and closes it on
    SIGINT or SIGTERM (the system closes it if the parent dies): then they all stop."""
    watched, held = os.pipe()

    def stop_children(*signal_args):
        # The parent's copies of the sockets too: while one is open, the port takes
        # connections, and no process accepts them.
        for sock in sockets:
            sock.close()
        with contextlib.suppress(OSError):  # closed already
            os.close(held)

    signal.signal(signal.SIGINT, stop_children)
    signal.signal(signal.SIGTERM, stop_children)
    tornado.process.fork_processes(count)
    # In a child from here on. One started again after a crash, as all were stopping,
    # finds the sockets closed: it has nothing to do.
    if any(sock.fileno() == -1 for sock in sockets):
        sys.exit(0)
    # It must not hold the pipe's other end itself, and the signals stop it as they
    # stop a single process.
    os.close(held)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return watched


async def serve(sockets, cookie_secret, parent_pipe=None):
    """Serve on `sockets` until Ctrl+C (SIGINT) or SIGTERM, or until the parent
    process closes its end of `parent_pipe`; then stop gracefully."""
    # After the fork: one per process. Every operation gives up after --db_timeout,
    # whether the database refuses, is out of reach, or hangs.
    client = MotorClient(options.db_uri, timeoutMS=1000 * options.db_timeout)
    app = make_app(client[options.db_name], cookie_secret, max_upload_size=options.max_upload_size,
                   files_dir=options.files_dir, debug=options.debug, idle_timeout=options.idle_timeout,
                   max_uploads=options.max_uploads, abandoned_after=options.abandoned_after,
                   decode_budget=options.decode_budget)
    server = tornado.httpserver.HTTPServer(
        app,
        # A handler that does not stream reads a request's body whole before it runs:
        # none of ours wants more than a little. The uploads raise it for themselves.
        max_body_size=FORM_OVERHEAD,
        # Behind a proxy, the client's address is the one the proxy passes on in
        # X-Real-IP or X-Forwarded-For: this makes it request.remote_ip, and the log's.
        xheaders=options.xheaders,
        # How long a request's headers may take, from the end of the one before
        # (or from the connection's start): Tornado's default is an hour.
        idle_connection_timeout=options.idle_timeout,
        # How long a whole body may take: for the pages that take none. Uploads
        # lift it, and bound the silences instead.
        body_timeout=options.idle_timeout,
    )
    listener = Listener(server, sockets)
    tune_the_process()
    sweeping = asyncio.create_task(sweep_abandoned_uploads_forever(app.settings["db"], options.abandoned_after))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if parent_pipe is not None:
        loop.add_reader(parent_pipe, stop.set)  # readable once the parent's end is closed
    await stop.wait()
    # Stopping. A Ctrl+C reaches every process of the terminal's group, so one may
    # still be on its way here: it must not interrupt the shutdown with a traceback.
    loop.remove_signal_handler(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sweeping.cancel()  # before the client closes under it
    await shut_down(listener, server, app.settings["in_flight"])
    client.close()


# --- Out of file descriptors ---

ACCEPT_PAUSE = 0.5  # seconds without accepting when accept() fails, as nginx does


def raise_descriptor_limit():
    """Raise this process's limit of open files, every connection being one, from
    its soft value (often 1024) to its hard one (often far higher); return it."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with contextlib.suppress(ValueError, OSError):  # macOS refuses an unlimited one: keep the soft
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Listener:
    """Accepts connections on the listening `sockets` for `server`, as HTTPServer's
    own add_sockets() does, but for one thing. Out of file descriptors, accept()
    fails: Tornado's loop then logs a traceback and tries again at once, for ever;
    this one stops accepting for ACCEPT_PAUSE seconds, says so in one line, and
    serves the connections it has meanwhile."""

    def __init__(self, server, sockets):
        self.server, self.sockets = server, sockets
        self.loop = asyncio.get_running_loop()
        self.resume = None
        self.listen()

    def listen(self):
        for sock in self.sockets:
            self.loop.add_reader(sock, self.accept, sock)

    def accept(self, sock):
        for _ in range(128):  # at most at a time: the loop has other work too
            try:
                connection, address = sock.accept()
            except BlockingIOError:  # no more waiting
                return
            except ConnectionAbortedError:  # gone before we took it
                continue
            except OSError as error:  # EMFILE: out of file descriptors (or the system is)
                self.pause(error)
                return
            self.server.handle_stream(IOStream(connection), address)

    def pause(self, error):
        for sock in self.sockets:
            self.loop.remove_reader(sock)
        self.resume = self.loop.call_later(ACCEPT_PAUSE, self.listen)
        log.warning("cannot accept connections (%s, the limit is %d): pausing %s s", error.strerror,
                    resource.getrlimit(resource.RLIMIT_NOFILE)[0], ACCEPT_PAUSE)

    def close(self):
        """Accept no more: from now on the port refuses connections."""
        if self.resume is not None:
            self.resume.cancel()
        for sock in self.sockets:
            self.loop.remove_reader(sock)
            sock.close()


# --- The requests under way, and a graceful stop ---

class InFlight:
    """What a process is doing: the requests under way, and the uploads among them.
    --max_uploads counts the uploads; a stop waits for the requests to end, and
    the uploads it cuts short delete their chunks before they end."""

    def __init__(self):
        self.requests = set()  # handlers, from their start to their end
        self.uploads = set()  # those receiving or storing a file

    def end(self, handler):
        self.requests.discard(handler)
        self.uploads.discard(handler)

    async def ended(self, timeout):
        """Wait up to `timeout` seconds for every request to end: whether they all did."""
        deadline = time.monotonic() + timeout
        while self.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return not self.requests


async def shut_down(listener, server, in_flight):
    """Refuse new connections at once, give the requests under way up to
    --shutdown_timeout seconds to finish, then cut the rest short, and wait (up to
    --db_timeout) for the uploads cut to delete their chunks."""
    listener.close()
    server.conn_params.no_keep_alive = True  # a request read from now on is its connection's last
    log.info("stopping: %d requests under way, %d of them uploads", len(in_flight.requests), len(in_flight.uploads))
    if not await in_flight.ended(options.shutdown_timeout):
        log.warning("stopping: cutting %d requests short after %s s, %d of them uploads",
                    len(in_flight.requests), options.shutdown_timeout, len(in_flight.uploads))
    await server.close_all_connections()
    if not await in_flight.ended(options.db_timeout):
        log.error("stopping: %d requests did not end, %d of them uploads: their chunks may stay behind",
                  len(in_flight.requests), len(in_flight.uploads))


# --- Sweeping away what abandoned uploads left ---

SWEEP_EVERY = 300  # seconds between two sweeps, at most


class UploadSwept(tornado.web.HTTPError):
    """What an upload gets when a sweep has taken it (it received nothing for too long)."""

    def __init__(self):
        super().__init__(408, "That upload paused for too long and was given up: please send it again.")


async def sweep_abandoned_uploads(db, abandoned_after):
    """Delete what the uploads that have received nothing for `abandoned_after`
    seconds wrote (their process died, or could not clean up); return how many.

    It reads `uploads_in_progress` alone, by its index on `updated`: its cost grows
    with the uploads under way, never with fs.chunks. Any number of processes, on
    any number of machines, may sweep at once: each claims an upload before deleting
    anything, and only one claim can succeed."""
    uploads = db.uploads_in_progress
    await uploads.create_index("updated")  # does nothing if it exists
    # The database's clock: it stamped `updated`, so the machines' clocks do not matter.
    stale = (await db.command("hello"))["localTime"] - datetime.timedelta(seconds=abandoned_after)
    swept = 0
    async for upload in uploads.find({"updated": {"$lt": stale}}):
        # The claim: only if `updated` is still what we read. An upload that came back
        # to life, or another sweeper, changed it. Stamped anew, the document is not
        # stale again for abandoned_after; and the upload, if it lives, meets `swept`.
        claim = await uploads.update_one({"_id": upload["_id"], "updated": upload["updated"]},
                                         {"$set": {"swept": True}, "$currentDate": {"updated": True}})
        if not claim.matched_count:
            continue
        chunks = await db.fs.chunks.delete_many({"files_id": upload["_id"]})
        await db.fs.files.delete_one({"_id": upload["_id"]})  # if it died in the middle of close()
        await uploads.delete_one({"_id": upload["_id"]})  # last: a sweeper that dies before is followed by another
        log.info("swept upload %s, silent since %s UTC: %d chunks deleted", upload["_id"],
                 upload["updated"].strftime("%Y-%m-%d %H:%M:%S"), chunks.deleted_count)
        swept += 1
    return swept


async def sweep_abandoned_uploads_forever(db, abandoned_after):
    """Sweep now, then every min(abandoned_after, SWEEP_EVERY) seconds: a background
    loop as Tornado's guide writes them. Every process runs one."""
    period = min(abandoned_after, SWEEP_EVERY)
    while True:
        next_round = tornado.gen.sleep(period)  # the clock starts now: the sweep's own time is part of it
        try:
            await sweep_abandoned_uploads(db, abandoned_after)
        except Exception:  # the database is down, say: the next round tries again
            log.exception("could not sweep abandoned uploads")
        await next_round


# --- Decoding within a memory budget ---

# Decoding takes memory in proportion to an image's pixels, whatever the size of its
# file: a 400 KB PNG of 89 megapixels takes 716 MB (measured: see the lesson).
# How many bytes Pillow stores a pixel in, by mode; 4 for the others (RGB too).
PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2}
DECODER_OVERHEAD = 8 * 1024**2  # the decoders' own buffers, at most (WebP's are the largest)


def decoding_cost(image, pixels):
    """The most memory make_thumbnail() takes for `image`, in bytes, told from its
    header alone: it is opened (and a JPEG drafted), not decoded. `pixels` is its
    full size. bench/decode_budget.py prints this against what decoding really took."""
    width, height = image.size  # a drafted JPEG's: what it will be decoded to
    cost = DECODER_OVERHEAD + width * height * PIXEL_BYTES.get(image.mode, 4)
    if image.mode not in ("L", "LA", "RGB", "RGBA") or "transparency" in image.info:
        cost += width * height * 4  # for_png() converts it: a second image
    if image.has_transparency_data:
        cost += width * height * 4  # resizing with alpha works on a premultiplied copy
    if image.format == "WEBP":
        cost += width * height * 12  # libwebp decodes into buffers of its own, then copies
    if image.info.get("progressive"):
        # libjpeg holds a progressive JPEG's coefficients at full size, 2 bytes each
        # per channel, however small it is drafted (less with chroma subsampling).
        cost += pixels * len(image.getbands()) * 2
    return cost


class DecodeBudget:
    """Lends the thumbnail threads memory to decode images into: `limit` bytes at most
    at once, however many threads there are.

    A thread asks for what its image will take before it decodes it, and waits until
    that is free. First come, first served, so that small images cannot keep a big one
    waiting forever; and an image that needs more than the whole budget is decoded
    alone. The threads wait here, not the event loop: only a thread that has opened
    the image knows what it will take, and one that waits holds no pixels yet."""

    def __init__(self, limit):
        self.limit = limit
        self.lent = 0
        self.waiting = collections.deque()  # the threads' turns, first come first
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def lend(self, size):
        """`size` bytes of the budget for the time of the `with` block."""
        turn = object()
        with self.changed:
            self.waiting.append(turn)
            self.changed.wait_for(lambda: self.waiting[0] is turn and (
                self.lent == 0 or self.lent + size <= self.limit))
            self.waiting.popleft()
            self.lent += size
            self.changed.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self.changed:
                self.lent -= size
                self.changed.notify_all()


# --- Process-wide settings, for many connections and big images ---

# Python's cycle collector walks every young object (made since its last walk) each
# time the objects made outnumber those freed by 700. With thousands of kept-alive
# connections, each waiting for its next request with some 40 young objects, and
# asyncio keeping what each request's cancelled header timeout holds for a while,
# that comes every few hundred requests: with 10,000 connections, 2 s of walks a
# minute, up to 0.4 s each. After 100,000, next to none (measured: see the lesson).
GC_THRESHOLD = 100_000
# glibc's malloc (Linux) keeps what a thread frees for that thread to use again:
# after 20 big images decoded one at a time on 16 threads, the process held 9 GB,
# 13 images' worth (measured: see the lesson). Blocks of this size or more get
# their own mapping instead, given back to the system as soon as they are freed.
MMAP_THRESHOLD = 1024 * 1024
M_MMAP_THRESHOLD = -3  # mallopt()'s name for it, in glibc's malloc.h


def tune_the_process():
    """Process-wide settings for thousands of connections and big images."""
    gc.set_threshold(GC_THRESHOLD)
    if sys.platform == "linux":
        with contextlib.suppress(AttributeError):  # a C library other than glibc: no mallopt()
            ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


# --- Health checks ---

class HealthHandler(BaseHandler):
    """GET /healthz, for a load balancer or an orchestrator: 200 "ok" while the
    database answers, else 503, and they send visitors elsewhere."""

    async def get(self):
        self.set_header("Content-Type", "text/plain")
        self.set_header("Cache-Control", "no-store")
        try:
            await self.db.command("ping")
        except PyMongoError:
            raise tornado.web.HTTPError(503, "The database does not answer.")
        self.write("ok")

    def head(self):  # as many load balancers ask
        return self.get()


# ==== Carried over from part 3 ====
# What changed: StreamedUpload counts the uploads under way (--max_uploads), closes
# one gone silent (its idle timer) and ends one cut short in abandon(); GridFSUpload
# keeps a record of each in uploads_in_progress for the sweep (heartbeat());
# make_thumbnail() decodes within the DecodeBudget that thumbnail_from_gridfs() passes
# on; part 4's options; make_app() takes their settings and routes /healthz; main()
# is the lesson's.

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
    idle_timer = None  # set while the body is coming: it closes a connection gone silent
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
        # Shed the load before a byte of the body is read: each upload under way
        # holds up to a chunk in memory while it waits for the rest.
        if len(self.in_flight.uploads) >= self.settings["max_uploads"]:
            raise tornado.web.HTTPError(503, "The server is busy with other uploads. Please try again in a moment.")
        self.in_flight.uploads.add(self)
        # Tornado's body timeout bounds the whole body, and a big file on a slow line
        # takes hours: ours bounds the silences instead, restarted by each piece.
        self.request.connection.set_body_timeout(None)
        self.restart_idle_timer()
        # A chunked body has no Content-Length: Tornado cuts it off (a bare 400) when
        # the sizes of its chunks add up to more than this.
        self.request.connection.set_max_body_size(limit)

    def restart_idle_timer(self):
        self.stop_idle_timer()
        self.idle_timer = IOLoop.current().call_later(self.settings["idle_timeout"], self.gone_silent)

    def stop_idle_timer(self):
        if self.idle_timer is not None:
            IOLoop.current().remove_timeout(self.idle_timer)
            self.idle_timer = None

    def gone_silent(self):
        log.info("nothing from %s for %s s: closing the connection", self.request.remote_ip,
                 self.settings["idle_timeout"])
        self.request.connection.close()  # then on_connection_close() deletes what was stored

    def too_big(self):
        limit = human_size(self.settings["max_upload_size"])
        return tornado.web.HTTPError(413, f"That file is too big: the limit is {limit}.")

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

    async def receive(self, chunk):
        """Take this piece of the body: what a subclass must provide, as only it knows
        where the file's bytes are. It writes them with write_file(), once start_file()
        has begun the file; an HTTPError it raises refuses the upload."""
        raise NotImplementedError

    async def data_received(self, chunk):
        # Awaited by Tornado: it reads no more of the body, and the client's sending
        # slows down, until the database has taken this piece.
        self.restart_idle_timer()
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
        self.stop_idle_timer()
        upload, self.upload = self.upload, None
        if upload is not None:
            try:
                await upload.abort()
            except PyMongoError:
                log.exception("could not delete the partial upload %s, left behind", upload.file["_id"])

    def on_connection_close(self):
        super().on_connection_close()  # tells Tornado not to call post() or put()
        if self.idle_timer is None:  # the body was all in, or refused: the request ends as usual
            return
        if self.upload is not None:
            log.info("client gone after %d bytes of %r: deleting them", self.received, self.upload.file["filename"])
        IOLoop.current().add_callback(self.abandon)

    async def abandon(self):
        """The end of a request cut short mid-body: Tornado calls no on_finish() for it."""
        await self.discard()
        self.in_flight.end(self)

    def on_finish(self):
        self.stop_idle_timer()
        super().on_finish()

    async def store(self):
        """The whole body is in: close the file, make its thumbnail if it is an image,
        then the document that lists them. If any of it fails, nothing is kept."""
        self.stop_idle_timer()  # the body is all in
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


def thumbnail_from_gridfs(bucket, file_id, budget):
    """make_thumbnail() of a file read back from GridFS with PyMongo's blocking API,
    which fits a thread: Motor is PyMongo run on threads, with the same client."""
    with bucket.open_download_stream(file_id) as file:
        return make_thumbnail(file, budget)


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


# --- Options, thumbnails, the home page, the application ---

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
options.define("processes", default=1, help="how many processes serve, on one port (0: one per core)")
options.define("xheaders", default=False,
               help="take the client's address from X-Real-IP or X-Forwarded-For: only behind a proxy that sets them")
options.define("idle_timeout", default=60, type=float,
               help="close a connection that sends nothing for this long, in seconds: between requests, "
                    "in its headers or in its body")
options.define("shutdown_timeout", default=25, type=float,
               help="on SIGTERM or Ctrl+C, how long the requests under way may take to finish, in seconds")
options.define("db_timeout", default=5, type=float,
               help="how long a database operation may take, in seconds, before the visitor gets a 503")
options.define("max_uploads", default=100, help="uploads at once in each process; more get a 503 and Retry-After")
options.define("config", type=str, help="a Python file of option values, such as: port = 8001",
               callback=lambda path: options.parse_config_file(path, final=False))
# Under load: what unfinished uploads leave behind, and the memory thumbnails take.
options.define("abandoned_after", default=3600,
               help="delete the chunks of an upload that has received nothing for this many seconds")
options.define("decode_budget", default=256 * 1024**2,
               help="the memory the thumbnail threads may decode images into at once, in bytes (256 MiB)")
tornado.log.define_logging_options(options)  # --logging=warning, --log_file_prefix=...

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

log = logging.getLogger("part4")


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


def make_thumbnail(file, budget):
    """Read `file` as an image; return its type, width, height, and a PNG thumbnail.

    None if it is no image we know: it is then kept as a plain file. This blocks
    for as long as reading and decoding take: run it on a thread, not on the loop.
    Before decoding, it waits for the memory that takes from `budget`, a DecodeBudget."""
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
            with budget.lend(decoding_cost(image, width * height)):
                image.load()  # decode it all now, so that a damaged file is caught here
                if image.getexif().get(ExifTags.Base.Orientation) in QUARTER_TURNS:
                    width, height = height, width  # as a browser shows it
                thumbnail = for_png(image)
                thumbnail.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
                thumbnail = ImageOps.exif_transpose(thumbnail)  # a new image, always
                image.close()  # its pixels are freed before the budget takes their memory back
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
             files_dir=None, idle_timeout=60, max_uploads=100, abandoned_after=3600,
             decode_budget=256 * 1024**2, **settings):
    """The application, storing its files in the Motor database `db`.

    With no `cookie_secret`, a random one. `thumbnail_executor=None` makes the
    thumbnails on the event loop: only the benchmark wants that. With `files_dir`,
    the files of that directory are served at /files/. An upload whose client
    sends nothing for `idle_timeout` seconds is cut; past `max_uploads` at once,
    uploads get a 503. An upload that receives nothing for `abandoned_after`
    seconds may be swept away; the thumbnail threads decode `decode_budget` bytes
    of images at most at once."""
    routes = [
        tornado.web.url(r"/", HomeHandler, name="home"),
        tornado.web.url(r"/upload", FormUploadHandler, name="form_upload"),
        tornado.web.url(r"/upload/([^/]+)", PutUploadHandler, name="put_upload"),
        tornado.web.url(r"/uploads/([^/]+)/(orig|thumb)", DownloadHandler, name="download"),
        tornado.web.url(r"/healthz", HealthHandler, name="healthz"),
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
        idle_timeout=idle_timeout,
        max_uploads=max_uploads,
        in_flight=InFlight(),
        abandoned_after=abandoned_after,
        decode_budget=DecodeBudget(decode_budget),
        cookie_secret=cookie_secret or secrets.token_hex(32),
        xsrf_cookies=True,  # every POST and PUT repeats the token of the visitor's _xsrf cookie
        cross_origin_protection=True,  # and comes, as the browser tells, from our own pages
        **settings,
    )


def redact(uri):
    """The URI without its user name and password, fit for a log line."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl+C while starting
        pass
