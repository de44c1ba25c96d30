"""The HTTP server, run for real: its processes on one port, each with its change
stream, the signals that stop them, a graceful stop that says goodbye to the live
sockets and lets the requests under way finish, and the settings that suit a
process of thousands of connections and big images."""

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import sys

import tornado.httpserver
import tornado.process
from motor.motor_tornado import MotorClient
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from base import log, redact
from gridfs_chunks import create_indexes
from listener import Listener
from live import GOING_AWAY
from sweeper import sweep_abandoned_uploads_forever
from uploads import FORM_OVERHEAD


async def serve(options, make_app, sockets, cookie_secret, parent_pipe=None):
    """Serve make_app()'s application, as the command line's `options` say, on
    `sockets` until Ctrl+C (SIGINT) or SIGTERM, or until the parent process closes
    its end of `parent_pipe`; then stop gracefully."""
    # After the fork: one per process. Every operation gives up after --db_timeout,
    # whether the database refuses, is out of reach, or hangs.
    client = MotorClient(options.db_uri, timeoutMS=1000 * options.db_timeout)
    app = make_app(client[options.db_name], cookie_secret, max_upload_size=options.max_upload_size,
                   files_dir=options.files_dir, debug=options.debug, idle_timeout=options.idle_timeout,
                   max_uploads=options.max_uploads, abandoned_after=options.abandoned_after,
                   decode_budget=options.decode_budget, max_sockets=options.max_sockets,
                   live_backlog=options.live_backlog, ping_interval=options.ping_interval)
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
    try:
        await create_indexes(app.settings["db"])  # once, here: not at each upload, nor at each sweep
    except PyMongoError:  # the database hangs, say: serve on, the sweep works without them
        log.exception("could not create the indexes: reads of big files are slow until a restart makes them")
    listener = Listener(server, sockets)
    tune_the_process()
    sweeping = asyncio.create_task(sweep_abandoned_uploads_forever(app.settings["db"], options.abandoned_after))
    feed = app.settings["feed"]
    watching = asyncio.create_task(feed.run())  # the process's one change stream
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
    watching.cancel()
    await shut_down(listener, server, app.settings["in_flight"], options, feed)
    client.close()


async def shut_down(listener, server, in_flight, options, feed):
    """Refuse new connections at once, close the live sockets (1001: going away, so
    that their pages reconnect to another process), give the requests under way up to
    --shutdown_timeout seconds to finish, then cut the rest short, and wait (up to
    --db_timeout) for the uploads cut to delete their chunks."""
    listener.close()
    log.info("stopping: closing %d live sockets", len(feed.sockets))
    feed.close_all(GOING_AWAY, "The server is stopping: reconnect.")
    # A request read from now on is its connection's last: Tornado answers it with
    # Connection: close, and closes once the answer is sent. conn_params is what every
    # connection consults at each request; Tornado has no documented switch for a
    # running server, and a handler's own Connection: close header is sent, but the
    # connection left open, to serve more.
    server.conn_params.no_keep_alive = True
    log.info("stopping: %d requests under way, %d of them uploads", len(in_flight.requests), len(in_flight.uploads))
    if not await in_flight.ended(options.shutdown_timeout):
        log.warning("stopping: cutting %d requests short after %s s, %d of them uploads",
                    len(in_flight.requests), options.shutdown_timeout, len(in_flight.uploads))
        # Uploads still receiving are answered while their connection is open: a 503,
        # and when to come back. The rest are closed, as they are.
        await asyncio.gather(*(upload.cut_short() for upload in list(in_flight.uploads)))
    await server.close_all_connections()
    if not await in_flight.ended(options.db_timeout):
        log.error("stopping: %d requests did not end, %d of them uploads: their chunks may stay behind",
                  len(in_flight.requests), len(in_flight.uploads))
    await feed.closed(5)  # the clients' goodbyes: Tornado waits as long for each


class InFlight:
    """What a process is doing: the requests under way, and the uploads among them.
    --max_uploads counts the uploads; a stop waits for the requests to end, and
    the uploads it cuts short delete their chunks before they end."""

    def __init__(self):
        self.requests = set()  # handlers, from their start to their end
        self.uploads = set()  # those receiving or storing a file
        self.none_left = asyncio.Event()  # set while self.requests is empty
        self.none_left.set()

    def start(self, handler):
        self.requests.add(handler)
        self.none_left.clear()

    def end(self, handler):
        self.requests.discard(handler)
        self.uploads.discard(handler)
        if not self.requests:
            self.none_left.set()

    async def ended(self, timeout):
        """Wait up to `timeout` seconds for every request to end: whether they all did."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                # Again if one started between the set() that woke us and now.
                while self.requests:
                    await self.none_left.wait()
        return not self.requests


def check_database(uri):
    """Exit with a clear message unless a MongoDB answers at `uri`. Asked once, with
    PyMongo's blocking client, closed before any fork: a client must not cross a fork,
    and a child that exits in error is restarted."""
    with MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
        try:
            client.admin.command("ping")
        except PyMongoError as error:
            sys.exit(f"error: no MongoDB answers at {redact(uri)} ({type(error).__name__})")


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


# Python's cycle collector walks every young object (made since its last walk) each
# time the objects made outnumber those freed by 700 (Python 3.11's and 3.12's
# default, where this was measured). With thousands of kept-alive
# connections, each waiting for its next request with some 40 young objects, and
# asyncio keeping what each request's cancelled header timeout holds for a while,
# that comes every few hundred requests: with 10,000 connections, 2 s of walks a
# minute, up to 0.4 s each. After 100,000, next to none (measured: bench/c10k.py
# --idle 1, part 3 at 700 against part 4 at this).
GC_THRESHOLD = 100_000
# glibc's malloc (Linux) gives a big block a mapping of its own, returned to the
# system when freed; but once such a block is freed, it raises that size threshold
# to the block's (up to 32 MiB), and the next ones come from its heaps, which keep
# what is freed. With 20 big images decoded one at a time on 16 threads, the process
# grew by 9.3 GB, 13 images' worth (measured: bench/decode_budget.py --untuned).
# Setting the threshold fixes it: blocks of this size or more always get a mapping.
MMAP_THRESHOLD = 1024 * 1024
M_MMAP_THRESHOLD = -3  # mallopt()'s name for it, in glibc's malloc.h


def tune_the_process():
    """Process-wide settings for thousands of connections and big images."""
    gc.set_threshold(GC_THRESHOLD)
    if sys.platform == "linux":
        with contextlib.suppress(AttributeError):  # a C library other than glibc: no mallopt()
            ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
