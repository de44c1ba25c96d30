"""What the stage's code shares: the base of its handlers (safety headers, cookies,
blocking work off the loop, error pages; from part 4, the requests in flight, and
when to retry after a 503), a file name's check, the logger, and redact()."""

import logging
import re
import unicodedata

import tornado.web
from pymongo.errors import ConnectionFailure, PyMongoError
from tornado.ioloop import IOLoop

log = logging.getLogger("part4")

# What a request without the token of the visitor's _xsrf cookie is told.
NO_XSRF_TOKEN = ("That request carries no XSRF token: reload the page and try again. (Outside a browser, "
                 "send the value of the _xsrf cookie in an X-XSRFToken header.)")
WRONG_XSRF_TOKEN = "That request's XSRF token does not match its _xsrf cookie: reload the page and try again."
RETRY_AFTER = 10  # seconds, in the Retry-After of a 503: the database or the uploads are busy


class BaseHandler(tornado.web.RequestHandler):
    def initialize(self):  # as the handler is made, for each request
        self.in_flight.start(self)

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

    def check_xsrf_cookie(self):
        """Tornado's check, in words a visitor can act on: its own say "POST" whatever
        the method, and name its internals."""
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError as error:
            missing = "missing" in error.log_message  # else the token is not the cookie's
            raise tornado.web.HTTPError(403, NO_XSRF_TOKEN if missing else WRONG_XSRF_TOKEN) from None

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
        return await IOLoop.current().run_in_executor(self.settings["thumbnail_executor"], function, *args)

    def write_error(self, status_code, **kwargs):
        """An error page that says what went wrong, never a traceback."""
        error = kwargs.get("exc_info", (None, None))[1]
        if database_unavailable(error):
            self.set_status(503)
            message = "The database is not answering. Please try again in a moment."
        else:
            message = getattr(error, "log_message", None) or self._reason
        if self.get_status() == 503:  # busy or down, for now: when to try again
            self.set_header("Retry-After", RETRY_AFTER)
        if kwargs.get("closing"):  # answered before the body was read: the connection ends here
            self.set_header("Connection", "close")
        self.render("error.html", status_code=self.get_status(), message=message)

    def log_exception(self, typ, value, tb):
        """A database that does not answer is one line a request, not a traceback:
        while it is down, every visitor meets it."""
        if database_unavailable(value):
            log.warning("%s %s: the database is not answering (%s)", self.request.method, self.request.path,
                        typ.__name__)
        else:
            super().log_exception(typ, value, tb)


def database_unavailable(error):
    """Whether `error` says the database is down, out of reach, or slower than --db_timeout."""
    return isinstance(error, PyMongoError) and (isinstance(error, ConnectionFailure) or error.timeout)


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


def check_filename(filename):
    """Refuse a file name that is too long, or holds a control character (a line break
    could forge a header or a log line) or a bidirectional override or isolate, which
    can disguise its extension. Every other character people use is fine: spaces of
    every kind, accents, emoji and their joiners."""
    if len(filename) > MAX_NAME_LENGTH:
        raise tornado.web.HTTPError(400, f"That file name is too long: the limit is {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(char) in LINE_BREAKING or char in BIDI_CONTROLS for char in filename):
        raise tornado.web.HTTPError(400, "That file name holds control characters or bidirectional overrides.")


class NotFoundHandler(BaseHandler):
    def prepare(self):  # for any URL that no route matches, whatever the method
        raise tornado.web.HTTPError(404, "There is no page here.")


def redact(uri):
    """The URI without its user name and password, fit for a log line."""
    return re.sub(r"//[^@/]*@", "//***@", uri)
