"""What the tests share: the stages, a cookie-keeping HTTP client, sample images,
and a stage started as a program, the way a learner starts it."""

import asyncio
import contextlib
import dataclasses
import io
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import typing
import uuid
import zlib
from html import unescape
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path

from PIL import Image
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import course  # noqa: E402  (the repository root is not a package)

STAGES = course.STAGES
free_port = course.free_port
load_stage = course.load_stage
# Where each stage serves an uploaded file, by its id.
ORIGINAL_PATHS = {
    "part1_basic": "/imgs/{}",
    "part2_thumbnails": "/imgs/{}/orig",
    "part3_streaming": "/imgs/{}/orig",
    "part4_production": "/imgs/{}/orig",
}




@contextlib.asynccontextmanager
async def served(app):
    """`app` served over HTTP on a free port of 127.0.0.1; yields its base URL."""
    [sock] = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()
        await server.close_all_connections()


async def eventually(check, timeout=20):
    """Wait until check() (a coroutine function) returns something true; return that.
    Fails after `timeout` seconds: a bound, not a delay (it returns at once if it can)."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"{check.__name__} was still false after {timeout} s"
        await asyncio.sleep(0.05)
    return result


def image_bytes(format="PNG", size=(40, 30), color="red", mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format)
    return buffer.getvalue()


# --- Damaged and crafted images, as an attacker (or a broken disk) makes them ---


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data):
    """[(kind, data)] of each chunk of a PNG file."""
    chunks, position = [], len(PNG_SIGNATURE)
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def png_file(chunks):
    return PNG_SIGNATURE + b"".join(png_chunk(kind, data) for kind, data in chunks)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(width, height):
    """A valid PNG header of the given size, tiny whatever the size: one compressed row."""
    rows = zlib.compress(b"\0" * (width // 8 + 2))
    return png_file([(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)), (b"IDAT", rows),
                     (b"IEND", b"")])


def truncated_jpeg():
    data = image_bytes("JPEG", size=(400, 300), color="orange")
    return data[: len(data) // 2]


def corrupt_png():
    data = bytearray(image_bytes("PNG", size=(64, 64), mode="RGB", color="purple"))
    data[60:90] = b"\xff" * 30  # inside the image data: the header still reads well
    return bytes(data)


def png_with_a_text_bomb():
    """A sound PNG but for a compressed text chunk that inflates to 2 MB, past the 1 MB
    Pillow allows: Image.open() raises ValueError."""
    ihdr, *rest = png_chunks(image_bytes("PNG", size=(32, 32)))
    return png_file([ihdr, (b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * 2_000_000, 9)), *rest])


def png_with_a_broken_chunk_list():
    """A PNG whose image data is split in two chunks, the second of no valid type:
    the header reads well, and decoding raises SyntaxError."""
    ihdr, *rest, iend = png_chunks(image_bytes("PNG", size=(64, 64), color="navy"))
    data = b"".join(chunk for kind, chunk in rest if kind == b"IDAT")
    return png_file([ihdr, (b"IDAT", data[: len(data) // 2]), (b"\x82\x00\xff\x01", data[len(data) // 2 :]), iend])


def png_with_a_truncated_header():
    """A PNG whose IHDR chunk holds 5 bytes of its 13: Image.open() raises ValueError."""
    ihdr, *rest = png_chunks(image_bytes("PNG"))
    return png_file([(b"IHDR", ihdr[1][:5]), *rest])


def multipart(fields):
    """A multipart/form-data body from {name: (filename, data, content_type)}, or from a
    list of (name, (filename, data, content_type)) when a name comes more than once."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, (filename, data, content_type) in (fields.items() if isinstance(fields, dict) else fields):
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        )
        body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


class GalleryParser(HTMLParser):
    """Collects (href, alt) for each `<a class="original"><img alt=...>` on a page."""

    def __init__(self):
        super().__init__()
        self.items, self._href = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "original" in (attrs.get("class") or "").split():
            self._href = attrs["href"]
        elif tag == "img" and self._href:
            self.items.append((self._href, attrs.get("alt")))
            self._href = None


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


class Client:
    """Talks to a served stage over real HTTP, keeping cookies like a browser.

    Like a script that has read Tornado's docs, it sends the `_xsrf` cookie back as
    the X-XSRFToken header, so the same tests run on stages with XSRF protection."""

    def __init__(self, base_url, db=None):
        self.base_url, self.db, self.cookies = base_url, db, {}

    async def fetch(self, path, method="GET", body=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method not in ("GET", "HEAD") and "_xsrf" in self.cookies:
            headers.setdefault("X-XSRFToken", self.cookies["_xsrf"])
        response = await AsyncHTTPClient().fetch(
            self.base_url + path, method=method, body=body, headers=headers,
            follow_redirects=False, raise_error=False, **kwargs,
        )
        for header in response.headers.get_list("Set-Cookie"):
            self.cookies.update({k: m.value for k, m in SimpleCookie(header).items()})
        return response

    async def upload(self, data, filename="image.png", content_type="image/png", field="file", headers=None):
        if not self.cookies:
            await self.fetch("/")  # as a browser would: the form page first
        body, form_type = multipart({field: (filename, data, content_type)})
        return await self.fetch("/", "POST", body, {"Content-Type": form_type, **(headers or {})})

    async def listed(self, path="/"):
        """(href, name) of each upload on the home page (or the page at `path`), in the page's order."""
        response = await self.fetch(path)
        assert response.code == 200, f"GET {path} should show a page of uploads (200); it answered {response.code}"
        parser = GalleryParser()
        parser.feed(response.body.decode())
        return parser.items

    async def stored(self):
        """How many documents the upload collections hold."""
        names = ("fs.files", "fs.chunks", "imgs")
        return {name: await self.db[name].count_documents({}) for name in names}


@dataclasses.dataclass
class Program:
    process: subprocess.Popen
    url: str
    log: typing.IO

    def output(self):
        """What the program has printed so far (its logs go to stderr)."""
        self.log.seek(0)
        return self.log.read()


@contextlib.contextmanager
def stage_program(stage, mongodb_uri, db_name, port=None, args=(), preexec_fn=None):
    """`python <stage>/app.py` as a child process, yielded as a Program once it
    answers (or has exited); `stage` may be the absolute path of a copy of a stage.
    Stopped with SIGINT, as Ctrl+C would. With no `db_name`,
    MONGODB_DB is not set: the stage uses its default database. `preexec_fn` runs in
    the child before the program starts (to lower its limits, say)."""
    port = port or free_port()
    env = {**os.environ, "PORT": str(port), "MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name}
    if db_name is None:
        del env["MONGODB_DB"]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, ROOT / stage / "app.py", *args], env=env, stdout=log, stderr=log, text=True,
            preexec_fn=preexec_fn,
        )
        try:
            listening = course.listening(process, port, timeout=20)
            assert listening or process.poll() is not None, f"{stage} did not start listening on {port}"
            yield Program(process, f"http://127.0.0.1:{port}", log)
        finally:
            course.stop(process, timeout=20)
