"""One change stream per process on `uploads`, told to every socket the process holds
(Feed): the database is the bus, whichever process or host stored the upload."""

import asyncio
import contextlib

import tornado.escape
from pymongo.errors import PyMongoError

from base import log
from home import LISTED, NEWEST
from upload_checks import human_size

# What the page is told: the inserts of uploads it would list (the home page's own
# query, asked of the inserted document), every delete (the page ignores an id it does
# not show), and the end of the stream when the collection is dropped or renamed.
PIPELINE = [{"$match": {"$or": [
    {"operationType": {"$in": ["delete", "invalidate"]}},
    {"operationType": "insert", **{f"fullDocument.{key}": value for key, value in LISTED.items() if key != "$or"},
     "$or": [{f"fullDocument.{key}": value for key, value in case.items()} for case in LISTED["$or"]]},
]}}]
NO_CHANGE_STREAMS = {40573}  # "The $changeStream stage is only supported on replica sets": a standalone mongod
HISTORY_LOST = {286, 280}  # ChangeStreamHistoryLost (the oplog has moved past our token), ChangeStreamFatalError
WAIT_FOR_STREAM = 10  # seconds a new socket waits for the stream to watch, before 1013
RETRY_DELAYS = (0.5, 1, 2, 5)  # seconds between tries while the database is away; then 5 s each


def describe(upload, url_of):
    """What a page needs to show an upload, as JSON can carry it (never its bytes).
    `url_of(id, "orig" or "thumb")` is where the stage serves it."""
    upload_id = str(upload["_id"])
    return {
        "id": upload_id,
        "filename": upload["filename"],
        "size": human_size(upload["length"]),
        "contentType": upload["contentType"],
        "width": upload.get("width"),
        "height": upload.get("height"),
        "uploaded": upload["uploadDate"].isoformat(timespec="milliseconds"),
        "original": url_of(upload_id, "orig"),
        "thumbnail": url_of(upload_id, "thumb") if upload["thumbnail"] else None,
    }


class Feed:
    """The process's change stream on `uploads`, and the sockets it tells.

    A socket subscribes, then asks for newest(): the list it starts from, read from the
    database after the last change it could have missed (see newest()). Each change is
    encoded once and handed to every socket's send()."""

    def __init__(self, db, url_of):
        self.db, self.url_of = db, url_of
        self.sockets = set()  # the sockets told of each change
        self.closing = set()  # those closed by the server, until their client has answered
        self.told = 0  # how many messages have gone out: a read of the list is as fresh as this
        self.reading = None  # (self.told when it began, the task reading the newest uploads)
        self.token = None  # where the stream is: it resumes from here after an error
        self.off = False  # the database has no change streams: no live updates
        # Set while every change from now on will be told: a stream is open, or one will
        # resume from its token. A list read before that could miss a change for good.
        self.covered = asyncio.Event()
        self.lost = False  # changes were missed: the pages must reload their lists

    def subscribe(self, socket):
        self.sockets.add(socket)
        return self.told

    def unsubscribe(self, socket, closed=True):
        self.sockets.discard(socket)
        (self.closing.discard if closed else self.closing.add)(socket)

    async def newest(self, told):
        """The newest uploads, described, as the database has them: from a read that
        began once `told` messages had gone out. A socket that subscribed then gets
        every change the read may not see; one read serves every socket that opens
        meanwhile (10,000 pages reconnecting after a restart make one query)."""
        async with asyncio.timeout(WAIT_FOR_STREAM):
            await self.covered.wait()
        if self.reading is None or self.reading[0] < told:
            self.reading = (self.told, asyncio.ensure_future(self.read_newest()))
        reading = self.reading[1]
        try:
            return await asyncio.shield(reading)
        except PyMongoError:  # the next socket tries again
            if self.reading and self.reading[1] is reading:
                self.reading = None
            raise

    async def read_newest(self):
        cursor = self.db.uploads.find(LISTED).sort([("uploadDate", -1), ("_id", -1)]).limit(NEWEST)
        return [describe(upload, self.url_of) async for upload in cursor]

    def tell(self, message):
        """Send `message` to every socket, encoded once."""
        self.told += 1
        data = tornado.escape.utf8(tornado.escape.json_encode(message))
        for socket in list(self.sockets):  # a socket may close, and leave, as it is told
            socket.send(data)

    async def run(self):
        """Watch `uploads` until cancelled, resuming after an error from where it was."""
        tries = 0
        while True:
            try:
                async with self.db.uploads.watch(PIPELINE, resume_after=self.token) as stream:
                    if tries:
                        log.info("live updates: the change stream is back")
                    tries = 0
                    if self.lost:  # every page reads its list anew, now that changes are told again
                        self.lost = False
                        self.tell({"type": "reload"})
                    self.covered.set()
                    async for change in stream:
                        self.token = stream.resume_token
                        try:
                            self.on_change(change)
                        except Exception:  # a bug of ours: logged, and the stream goes on
                            log.exception("live updates: could not tell %s", change.get("documentKey"))
                # The loop ends after an `invalidate`: the collection was dropped or renamed.
                self.history_lost("the uploads collection was dropped or renamed")
            except PyMongoError as error:
                code = getattr(error, "code", None)  # an OperationFailure's: the server refused
                if code in NO_CHANGE_STREAMS:
                    self.off = True
                    self.covered.set()  # there is nothing to wait for
                    log.warning("live updates are off: this MongoDB has no change streams (a standalone "
                                "server?); the pages work, and show new uploads when reloaded")
                    return
                if code in HISTORY_LOST:
                    self.history_lost(f"the change stream cannot resume ({error})")
                    continue
                # The database is away, or slower than --db_timeout: from where we were, soon.
                if not tries:
                    log.warning("live updates: the change stream failed (%s), trying again", error)
                await asyncio.sleep(RETRY_DELAYS[min(tries, len(RETRY_DELAYS) - 1)])
                tries += 1

    def on_change(self, change):
        kind = change["operationType"]
        if kind == "insert":
            self.tell({"type": "upload", "upload": describe(change["fullDocument"], self.url_of)})
        elif kind == "delete":
            self.tell({"type": "delete", "id": str(change["documentKey"]["_id"])})

    def history_lost(self, why):
        """The changes since the last one seen cannot be had: every page will be told
        to read its list afresh once a new stream watches (run()), rather than miss
        uploads in silence."""
        log.warning("live updates: %s; every page reloads its list", why)
        self.token, self.lost = None, True
        self.covered.clear()

    def close_all(self, code, reason):
        """Close every socket (the graceful stop: 1001, going away)."""
        for socket in list(self.sockets):
            socket.leave(code, reason)

    async def closed(self, timeout):
        """Wait up to `timeout` seconds for the clients of the sockets closed to answer
        (Tornado itself gives them 5 s), so that the process exits after the goodbyes."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.closing:
                    await asyncio.sleep(0.05)
