"""The live socket: the home page's script opens a WebSocket to /live, and is told of
every upload stored and deleted, by any process, as it happens.

The protocol. The page's script opens ws://HOST/live (wss:// over HTTPS). The server
sends JSON text messages; the script sends none (one that does is closed, 1008).

    {"type": "list", "uploads": [UPLOAD, ...]}  first, on every (re)connection: the
        newest uploads (20, newest first), read from the database after the socket
        joined: the page shows these, keeps what it has of them, drops the others
    {"type": "upload", "upload": UPLOAD}        stored: the page adds it, in order by
        "uploaded" (then "id"), unless it shows that id already
    {"type": "delete", "id": "..."}             deleted: the page drops it, if shown
    {"type": "reload"}                          changes were missed (the database's
        history ran out): the page reconnects at once, and gets a new "list"

    UPLOAD = {"id", "filename", "size" ("1.5 KiB"), "contentType", "width" and
        "height" (null for a file that is not an image), "uploaded" (ISO 8601, UTC, ms),
        "original" (its URL), "thumbnail" (its URL, or null)}

Reconnecting. When the socket closes, the script opens it again after 1, 2, 4 ... s
(at most 30 s, each with a random part), at once after a "reload". The "list" it gets
then is what happened since, from the database: nothing is lost, whatever it missed.
(Not an id it saw last: uploads reach the `uploads` collection out of their list
order, as a thumbnail takes its time, so an id cannot say what came after it.)

Close codes: 1001 the server is stopping (reconnect: another process answers);
1008 the client sent a message; 1009 a message over --websocket_max_message_size;
1013 the database did not answer (try again later); 4000 the client fell more than
--live_backlog bytes behind (reconnect: the "list" catches up). A process that holds
--max_sockets sockets refuses more with a 503 before the handshake; a page of another
site gets a 403.
"""

import functools
import socket

import tornado.escape
import tornado.web
import tornado.websocket
from pymongo.errors import PyMongoError

from base import RETRY_AFTER, log
from changes import Feed

GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
TOO_FAR_BEHIND = 4000  # 4000-4999: for applications to define (RFC 6455, 7.4.2)
# What the system may hold for a socket that its client does not read, besides the
# --live_backlog this process holds: Linux grows a socket's buffer up to 4 MiB on its
# own (net.ipv4.tcp_wmem), 40 GB of kernel memory for 10,000 stalled clients. Set, it
# stays at twice this. Our messages are small: a client that reads never fills it.
SEND_BUFFER = 64 * 1024


def live_settings(db, url_of, max_sockets, live_backlog, ping_interval):
    """The application's settings for its live sockets (the options of the same names)."""
    return dict(
        feed=Feed(db, url_of),  # the process's change stream: server.py runs it
        max_sockets=max_sockets,
        live_backlog=live_backlog,
        # A peer gone without a word (a laptop closed, a network cut) leaves its socket
        # open; a ping each interval, and no pong within as long, closes it.
        websocket_ping_interval=ping_interval,
        websocket_ping_timeout=ping_interval,
        # The page sends nothing: a few bytes are plenty (Tornado's default is 10 MiB).
        websocket_max_message_size=1024,
    )


class LiveHandler(tornado.websocket.WebSocketHandler):
    """GET /live: a WebSocket told of the uploads (see the protocol above)."""

    backlog = 0  # bytes of messages queued or being written, not yet taken by the system
    queue = None  # the messages waiting for the one being written (a list)
    writing = False  # whether a message is being written: one at a time
    listed = False  # whether the first "list" is in the queue: nothing goes out before it
    gone = False  # on_close() has come

    @property
    def feed(self):
        return self.settings["feed"]

    def prepare(self):  # before the handshake: a refusal costs a short answer
        self.request.connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        if self.feed.off:
            raise tornado.web.HTTPError(404, "Live updates are off: this database has no change streams.")
        if len(self.feed.sockets) >= self.settings["max_sockets"]:
            raise tornado.web.HTTPError(
                503, f"This process holds its {self.settings['max_sockets']} live sockets already: try again later.")

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        if status_code == 503:
            self.set_header("Retry-After", RETRY_AFTER)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(getattr(error, "log_message", None) or self._reason)

    def check_origin(self, origin):
        """Tornado asks only when the Origin (or Sec-Fetch-Site) says another site's
        page opens the socket. It would carry our visitor's cookies: refuse (403)."""
        return False

    def get_compression_options(self):
        # None: no permessage-deflate. Its compressor and decompressor keep about
        # 300 KiB of zlib state for each socket at Tornado's defaults (a 32 KiB window,
        # memLevel 8; measured with tracemalloc), to shrink messages of a few hundred bytes.
        return None

    async def open(self):
        self.queue = []  # not a deque: an empty one takes 760 bytes (Python 3.11), a list 56
        told = self.feed.subscribe(self)  # changes from now on are queued: the list may or may not hold them
        try:
            uploads = await self.feed.newest(told)
        except (PyMongoError, TimeoutError) as error:  # the database is away
            log.warning("live: could not read the newest uploads (%s)", type(error).__name__)
            self.leave(TRY_AGAIN_LATER, "The database is not answering: try again in a moment.")
            return
        data = tornado.escape.utf8(tornado.escape.json_encode({"type": "list", "uploads": uploads}))
        self.backlog += len(data)
        self.queue.insert(0, data)
        self.listed = True
        self.write_next()

    def send(self, data):
        """Queue `data` (a message, encoded: the same bytes for every socket), unless
        the socket is --live_backlog bytes behind: then close it, rather than grow."""
        if self.backlog + len(data) > self.settings["live_backlog"]:
            log.info("live: closing a socket of %s, %d bytes behind", self.request.remote_ip, self.backlog)
            self.leave(TOO_FAR_BEHIND, "Too far behind: reconnect to catch up.")
            return
        self.backlog += len(data)
        self.queue.append(data)
        self.write_next()

    def write_next(self):
        """Write the next message, unless one is being written. One at a time: a socket
        that is behind holds its queue, the messages themselves shared with every other
        socket, where each write would hold a copy, a Future and a Task of its own."""
        if self.writing or not self.listed or not self.queue:
            return
        data = self.queue.pop(0)  # a short list: --live_backlog bounds it
        try:
            writing = self.write_message(data)
        except tornado.websocket.WebSocketClosedError:  # closing: on_close() comes
            return
        self.writing = True
        writing.add_done_callback(functools.partial(self.written, len(data)))

    def written(self, size, writing):
        """The system has taken the message's bytes (or the socket has closed)."""
        self.writing = False
        self.backlog -= size
        if not writing.cancelled() and writing.exception() is None:  # else it closed, or the process ends
            self.write_next()

    def on_message(self, message):
        self.leave(POLICY_VIOLATION, "This socket takes no messages.")

    def leave(self, code, reason):
        if not self.gone:
            self.feed.unsubscribe(self, closed=False)  # at once: the close may wait 5 s for the client's answer
            self.close(code, reason)

    def on_close(self):
        self.gone = True
        self.feed.unsubscribe(self)
