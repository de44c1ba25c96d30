"""An upload's pace: one that brings less than MIN_UPLOAD_RATE a second, over each
--idle_timeout, is closed, silence included. An upload slot (--max_uploads) is for an
upload that makes progress, not for a client that sends a byte now and then to keep
it: five such held every slot of --max_uploads=5 for as long as they liked."""

from tornado.ioloop import IOLoop

from base import log
from upload_checks import human_size

MIN_UPLOAD_RATE = 1024  # bytes a second: a poor mobile line brings a hundred times more


class UploadPace:
    """Looks at `upload`'s body coming in every `period` seconds, from now to stop(),
    and closes its connection if fewer than MIN_UPLOAD_RATE * period bytes came since
    the last look. A look that finds the upload storing a piece judges nothing: then
    the database is the slow one, not the client."""

    def __init__(self, upload, period):
        self.upload, self.period = upload, period
        self.seen = 0  # upload.received at the last look
        self.timer = IOLoop.current().call_later(period, self.look)

    def look(self):
        came, self.seen = self.upload.received - self.seen, self.upload.received
        if came >= MIN_UPLOAD_RATE * self.period or self.upload.storing:
            self.timer = IOLoop.current().call_later(self.period, self.look)
            return
        self.timer = None
        request = self.upload.request
        if came:
            log.info("only %s from %s in %s s: too slow, closing the connection", human_size(came),
                     request.remote_ip, self.period)
        else:
            log.info("nothing from %s for %s s: closing the connection", request.remote_ip, self.period)
        request.connection.close()  # then on_connection_close() deletes what was stored

    def stop(self):
        if self.timer is not None:
            IOLoop.current().remove_timeout(self.timer)
            self.timer = None
