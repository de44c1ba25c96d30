"""Talking to a stage as browsers and scripts do: a client that keeps cookies and
sends the XSRF token back, a raw connection for clients that misbehave, the
multipart form a browser sends, and what a page says."""

import asyncio
import hashlib
import io
import json
import re
import uuid
from html import unescape
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import quote, urlsplit

from tornado.httpclient import AsyncHTTPClient

from .stages import RECORDS

UPLOAD_COLLECTIONS = ("fs.files", "fs.chunks", "imgs")  # where an upload leaves documents (parts 1 and 2)


def upload_collections(stage):
    """Where an upload to `stage` leaves documents: GridFS's two collections, and the
    stage's records (imgs, or from part 3, which keeps any file, uploads)."""
    return ("fs.files", "fs.chunks", RECORDS[stage])


def multipart(fields):
    """A multipart/form-data body and its Content-Type, from {name: value} or from a
    list of (name, value) when a name comes more than once. A value is bytes or str
    (a field), or (filename, data, content_type) (a file).

    Names are written as they are, unescaped: as an attacker's client may send them."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, value in fields.items() if isinstance(fields, dict) else fields:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode())
        if isinstance(value, tuple):
            filename, data, content_type = value
            body.write(f'; filename="{filename}"\r\nContent-Type: {content_type}'.encode())
        else:
            data = value.encode() if isinstance(value, str) else value
        body.write(b"\r\n\r\n" + data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


def multipart_around(field, filename, content_type):
    """A form of one file, for a file too big to hold in memory: (before, after,
    Content-Type), to send as `before`, the file's bytes as they are read, `after`.
    before + data + after is multipart({field: (filename, data, content_type)})."""
    marker = uuid.uuid4().hex.encode()
    body, form_type = multipart({field: (filename, marker, content_type)})
    before, after = body.split(marker)
    return before, after, form_type


class GalleryParser(HTMLParser):
    """Collects (href, alt) for each `<a class="original"><img alt=...>` on a page, and
    the action of its upload form."""

    def __init__(self):
        super().__init__()
        self.items, self.form_action, self._href = [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "original" in (attrs.get("class") or "").split():
            self._href = attrs["href"]
        elif tag == "img" and self._href:
            self.items.append((self._href, attrs.get("alt")))
            self._href = None
        elif tag == "form" and attrs.get("enctype") == "multipart/form-data":
            self.form_action = attrs.get("action")


def parsed(html):
    parser = GalleryParser()
    parser.feed(html)
    return parser


def error_message(html):
    """The sentence an error page gives."""
    match = re.search(r'<p class="error">(.*?)</p>', html, re.S)
    return match and unescape(match.group(1).strip())


def answer(response):
    """A response in words, for a learner: its status, where it redirects, what its
    error page says."""
    message = error_message(response.body.decode(errors="replace"))
    if 300 <= response.code < 400:
        return f"{response.code}, to {response.headers.get('Location')}"
    return f'{response.code}, "{message}"' if message else str(response.code)


async def health_counting(client, counted):
    """GET /healthz as the exercises that make it count something ask it to answer, or
    say how it does not: a 200, not cached, of JSON {"status": "ok", `counted`: N}.
    Its body, a dict."""
    response = await client.fetch("/healthz")
    assert response.code == 200, (
        f"GET /healthz should answer 200 while the database answers; it answered {answer(response)}")
    content_type = response.headers.get("Content-Type", "")
    assert content_type.split(";")[0].strip() == "application/json", (
        f"GET /healthz should answer with Content-Type: application/json; it sent {content_type!r}")
    assert response.headers.get("Cache-Control") == "no-store", "GET /healthz is never cached, as before"
    try:
        body = json.loads(response.body)
    except ValueError:
        raise AssertionError(f"GET /healthz should answer JSON; it answered {response.body[:100]!r}") from None
    assert isinstance(body, dict) and body.get("status") == "ok", (
        f'GET /healthz should answer {{"status": "ok", "{counted}": N}}; it answered {body!r}')
    return body


def cookie_values(set_cookie_headers):
    """{name: value} of the cookies that Set-Cookie headers set."""
    return {name: morsel.value for header in set_cookie_headers for name, morsel in SimpleCookie(header).items()}


class Client:
    """Talks to a served stage over real HTTP, keeping cookies like a browser.

    Like a script that has read Tornado's docs, it sends the `_xsrf` cookie back as
    the X-XSRFToken header, so the same tests run on stages with XSRF protection.
    `db`, if given, is the stage's database (a Motor one), for stored(), which counts
    the documents of `collections` (upload_collections(stage) gives a stage's). Other
    keyword arguments go to each fetch (request_timeout=, network_interface=...)."""

    def __init__(self, base_url, db=None, *, collections=UPLOAD_COLLECTIONS, **fetch_options):
        self.base_url, self.db, self.cookies = base_url, db, {}
        self.collections, self.fetch_options = collections, fetch_options
        self.form_action = None  # where the home page's upload form posts, once seen

    async def fetch(self, path, method="GET", body=None, headers=None, **kwargs):
        """Tornado's AsyncHTTPClient.fetch of `path`, with the cookies; redirects not
        followed, errors returned (not raised)."""
        headers = dict(headers or {})
        if self.cookies:
            headers.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if method not in ("GET", "HEAD") and "_xsrf" in self.cookies:
            headers.setdefault("X-XSRFToken", self.cookies["_xsrf"])
        response = await AsyncHTTPClient().fetch(
            self.base_url + path, method=method, body=body, headers=headers,
            follow_redirects=False, raise_error=False, **{**self.fetch_options, **kwargs},
        )
        self.cookies.update(cookie_values(response.headers.get_list("Set-Cookie")))
        if path == "/" and method == "GET" and response.code == 200:
            self.form_action = unescape(parsed(response.body.decode()).form_action or "") or None
        return response

    async def visit(self):
        """Open the home page, as a visitor arrives: the XSRF cookie, where the stage
        sets one. Returns the page's response."""
        return await self.fetch("/")

    def xsrf_headers(self):
        """The Cookie and X-XSRFToken headers a request of this client's carries."""
        token = self.cookies.get("_xsrf")
        return {"Cookie": f"_xsrf={token}", "X-XSRFToken": token} if token else {}

    async def upload(self, data, filename="image.png", content_type="image/png", field="file", headers=None):
        """Post a file through the home page's upload form, as a browser does: to where
        the form says (the page is opened first, if this client has not seen it)."""
        if self.form_action is None:
            response = await self.visit()
            assert self.form_action, f"the home page has no upload form ({response.code})"
        body, form_type = multipart({field: (filename, data, content_type)})
        return await self.fetch(self.form_action, "POST", body, {"Content-Type": form_type, **(headers or {})})

    async def put(self, data, filename="file.bin", headers=None):
        """PUT `data` to /upload/<filename>, as `curl -T` sends a file (parts 3 and 4);
        the home page is opened first, for the XSRF cookie, if this client has not seen it."""
        if self.form_action is None:
            await self.visit()
        return await self.fetch(f"/upload/{quote(filename, safe='')}", "PUT", data, headers)

    async def digest(self, path):
        """(status, SHA-256 of the body, in hex) of a GET of `path`: the body is hashed
        as it comes, never all in memory, however big."""
        sha256 = hashlib.sha256()
        response = await self.fetch(path, streaming_callback=sha256.update, request_timeout=300)
        return response.code, sha256.hexdigest()

    async def listed(self, path="/"):
        """(href, name) of each upload on the home page (or the page at `path`), in the page's order."""
        response = await self.fetch(path)
        assert response.code == 200, f"GET {path} should show a page of uploads (200); it answered {response.code}"
        return parsed(response.body.decode()).items

    async def stored(self, *also):
        """How many documents the upload collections hold (and the collections `also` names)."""
        return {name: await self.db[name].count_documents({}) for name in (*self.collections, *also)}

    @property
    def nothing_stored(self):
        """What stored() says when no upload has left a document: 0 in each collection."""
        return dict.fromkeys(self.collections, 0)


class RawConnection:
    """One connection to a served stage, speaking HTTP by hand: for clients that stop
    halfway, lie about sizes, trickle, or go silent. With a Client, its XSRF cookie and
    token go with each request (the client visits the home page first if need be)."""

    def __init__(self, base_url_or_client):
        self.client = base_url_or_client if isinstance(base_url_or_client, Client) else None
        address = urlsplit(self.client.base_url if self.client else base_url_or_client)
        self.host, self.port = address.hostname, address.port

    async def __aenter__(self):
        if self.client and not self.client.cookies:
            await self.client.visit()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc):
        self.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    def close(self):
        self.writer.close()

    async def send_headers(self, method, path, headers=(), body=b""):
        """The request line and headers, then the blank line that ends them; then `body`,
        if given, in the same write: a server that answers from the headers alone and
        closes finds no bytes unread, so the answer is not lost to a reset."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", *headers]
        if self.client:
            lines += [f"{name}: {value}" for name, value in self.client.xsrf_headers().items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout=20):
        """(status, headers as a dict with lower-case names, body) of the answer."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines if line)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", 0))), timeout)
        return int(status_line.split()[1]), headers, body

    async def rest(self, timeout=20):
        """Whatever the server sends until it closes the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return b""

    async def closed_by_server(self, timeout=20):
        """Wait for the server to close the connection: True if it did, with no answer."""
        return await self.rest(timeout) == b""

    async def request(self, method, path, body=b"", headers=(), timeout=20):
        """A whole request, `body` with its Content-Length: its response()."""
        await self.send_headers(method, path, [f"Content-Length: {len(body)}", *headers], body)
        return await self.response(timeout)

    @property
    def address(self):
        """(host, port) of this end: how the server names the connection's client."""
        return self.writer.get_extra_info("sockname")[:2]
