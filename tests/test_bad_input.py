"""The bad-input catalogue: each case runs against every stage it applies to.

A case is answered with a specific 4xx and a clear message; afterwards no GridFS
file, chunk or `imgs` document has been added and the server still answers. The
README's "Bad input" table is made from CASES: a test checks that they agree."""

import asyncio
import dataclasses
import re
import struct
import zlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from bson import ObjectId

from support import ORIGINAL_PATHS, ROOT, STAGES, Client, error_message, image_bytes, multipart

STAGE_TITLES = {"part1_basic": "part 1", "part2_thumbnails": "part 2", "part3_streaming": "part 3",
                "part4_production": "part 4"}


@dataclasses.dataclass
class Case:
    input: str  # as the README's table says it
    send: Callable[[Client, str], Awaitable[tuple[int, str]]]  # (client, stage) -> (status, page)
    # stage -> (status, words of the message). No words: Tornado itself answers, with a
    # bare status line, before any handler runs.
    answers: dict[str, tuple[int, str | None]]
    # stage -> what happens instead, for the README, where the input is no error there.
    notes: dict[str, str] = dataclasses.field(default_factory=dict)


# --- How each case is sent ---


async def get(client, path):
    response = await client.fetch(path)
    return response.code, response.body.decode(errors="replace")


async def upload(client, data, filename="image.png", content_type="image/png", **kwargs):
    response = await client.upload(data, filename, content_type, **kwargs)
    return response.code, response.body.decode(errors="replace")


async def post_form(client, content_type, body, headers=None, form_page=True):
    if form_page:
        await client.fetch("/")  # the XSRF cookie, where there is one
    response = await client.fetch("/", "POST", body, {"Content-Type": content_type, **(headers or {})})
    return response.code, response.body.decode(errors="replace")


async def post_with_anothers_xsrf_token(client):
    """A token of the right form, but not the one in this client's cookie."""
    other = Client(client.base_url)
    await other.fetch("/")
    return await post_form(client, *A_FORM, headers={"X-XSRFToken": other.cookies["_xsrf"]})


async def raw_request(client, head, body=b""):
    """Send bytes as they are, as a misbehaving client would; (status, page).

    `head` is the request line and headers without the blank line that ends them; the
    client's XSRF cookie and token are added, where the stage has them."""
    await client.fetch("/")
    if token := client.cookies.get("_xsrf"):
        head += f"Cookie: _xsrf={token}\r\nX-XSRFToken: {token}\r\n"
    head += "\r\n"
    address = urlsplit(client.base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        status_line = await reader.readline()
        rest = await reader.read()
    finally:
        writer.close()
    return int(status_line.split()[1]), rest.decode(errors="replace")


def png_header(width, height):
    """A valid PNG of the given size, tiny whatever the size: one compressed row."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\0" * (width // 8 + 2) * 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def truncated_jpeg():
    data = image_bytes("JPEG", size=(400, 300), color="orange")
    return data[: len(data) // 2]


def corrupt_png():
    data = bytearray(image_bytes("PNG", size=(64, 64), mode="RGB", color="purple"))
    data[60:90] = b"\xff" * 30  # inside the image data: the header still reads well
    return bytes(data)


FILE_PART = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
TOO_BIG = 5 * 1024**3  # over Tornado's default max_body_size (100 MB), and part 3's 4 GiB
IMAGES_ONLY = "not a PNG, JPEG, GIF or WebP"
A_FORM = tuple(reversed(multipart({"file": ("a.png", image_bytes(), "image/png")})))  # (type, body)


def answers(part1=None, part2=None, part3=None):
    """{stage: answer} for the stages that have the case. Part 4 is part 3 run for
    real: it answers as part 3 does."""
    given = {"part1_basic": part1, "part2_thumbnails": part2, "part3_streaming": part3, "part4_production": part3}
    return {stage: answer for stage, answer in given.items() if answer}


def every_stage(status, words):
    return answers(*[(status, words)] * 3)


def from_part2(status, words):
    return answers(None, (status, words), (status, words))


ACCEPTED_AS_A_FILE = dict.fromkeys(["part3_streaming", "part4_production"], "stored as a file, served as an attachment")
TORNADO_400 = (400, None)


CASES = [
    Case("an id that is not an ObjectId", lambda c, s: get(c, ORIGINAL_PATHS[s].format("not-an-id")),
         every_stage(404, "not valid")),
    Case("an unknown id", lambda c, s: get(c, ORIGINAL_PATHS[s].format(ObjectId())),
         every_stage(404, "no image with that id")),
    Case("no `file` field in the form",
         lambda c, s: post_form(c, *reversed(multipart({"picture": ("a.png", image_bytes(), "image/png")}))),
         every_stage(400, "missing")),
    Case("an empty file", lambda c, s: upload(c, b""), every_stage(400, "empty")),
    Case("a text file sent as image/png", lambda c, s: upload(c, b"just some words\n"),
         answers(part2=(400, IMAGES_ONLY)),
         {"part1_basic": "stored: part 1 trusts the claimed type", **ACCEPTED_AS_A_FILE}),
    Case("an HTML page", lambda c, s: upload(c, b"<script>alert(1)</script>", "page.html", "text/html"),
         answers((415, "Only PNG, JPEG, GIF and WebP"), (400, IMAGES_ONLY)), ACCEPTED_AS_A_FILE),
    Case("an SVG image",
         lambda c, s: upload(c, b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "a.svg",
                             "image/svg+xml"),
         answers((415, "Only PNG, JPEG, GIF and WebP"), (400, IMAGES_ONLY)), ACCEPTED_AS_A_FILE),
    Case("a truncated JPEG", lambda c, s: upload(c, truncated_jpeg(), "cut.jpg", "image/jpeg"),
         from_part2(400, "truncated or damaged")),
    Case("a PNG with damaged image data", lambda c, s: upload(c, corrupt_png(), "bad.png"),
         from_part2(400, "truncated or damaged")),
    Case("a decompression bomb (over twice Pillow's pixel limit)",
         lambda c, s: upload(c, png_header(20_000, 20_000), "bomb.png"), from_part2(400, "too many pixels")),
    Case("enormous dimensions in a tiny file (over Pillow's pixel limit)",
         lambda c, s: upload(c, png_header(10_000, 10_000), "huge.png"), from_part2(400, "too many pixels")),
    Case("a declared body over the size limit",
         lambda c, s: raw_request(c, f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {TOO_BIG}\r\n"
                                     "Content-Type: multipart/form-data; boundary=x\r\n"),
         answers(TORNADO_400, TORNADO_400, (413, "too big"))),
    # No Content-Length: the body is sent in chunks, and the first one is too big.
    Case("an undeclared (chunked) body over the size limit",
         lambda c, s: raw_request(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                     "Content-Type: multipart/form-data; boundary=x\r\n", f"{TOO_BIG:x}\r\n".encode()),
         answers(TORNADO_400, TORNADO_400, TORNADO_400)),
    Case("multipart with no boundary",
         lambda c, s: post_form(c, "multipart/form-data", FILE_PART + b"abc\r\n--x--\r\n"),
         answers((400, "boundary not found"), (400, "boundary not found"), (400, "multipart/form-data form"))),
    Case("multipart with the wrong boundary",
         lambda c, s: post_form(c, "multipart/form-data; boundary=y", FILE_PART + b"abc\r\n--x--\r\n"),
         answers((400, "no final boundary"), (400, "no final boundary"), (400, "malformed"))),
    Case("multipart with an unterminated part",
         lambda c, s: post_form(c, "multipart/form-data; boundary=x", FILE_PART + image_bytes()),
         answers((400, "no final boundary"), (400, "no final boundary"), (400, "malformed"))),
    Case("no XSRF token", lambda c, s: post_form(c, *A_FORM, form_page=False),
         from_part2(403, "'_xsrf' argument missing"), {"part1_basic": "no XSRF protection yet"}),
    Case("a wrong XSRF token", lambda c, s: post_with_anothers_xsrf_token(c),
         from_part2(403, "XSRF cookie does not match"), {"part1_basic": "no XSRF protection yet"}),
    Case("a file name with CR/LF in it (RFC 2231 encoded)",
         lambda c, s: post_form(c, "multipart/form-data; boundary=x", FILE_PART.replace(
             b'filename="a.png"', b"filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x.png") + image_bytes()
             + b"\r\n--x--\r\n"),
         every_stage(400, "control characters")),
    Case("a file name of 1000 characters", lambda c, s: upload(c, image_bytes(), "n" * 996 + ".png"),
         every_stage(400, "too long")),
]


def applicable():
    return [pytest.param(stage, case, id=f"{stage}-{case.input}")
            for stage in STAGES for case in CASES if stage in case.answers]


@pytest.mark.parametrize("stage, case", applicable())
async def test_bad_input_gets_a_clear_4xx_and_leaves_no_trace(stage, case, client):
    status, page = await case.send(client, stage)
    expected_status, words = case.answers[stage]
    assert status == expected_status
    if words:
        assert words in (error_message(page) or ""), page
    assert set((await client.stored()).values()) == {0}
    assert (await client.fetch("/")).code == 200, "the server still answers"


@pytest.mark.parametrize("name", ["../../etc/passwd.png", 'say "cheese".png', "日本語 – café.png",
                                  "<script>alert(1)</script>.png", "C:\\Users\\me\\photo.png"])
async def test_unusual_but_valid_file_names_are_kept_and_shown_escaped(client, name):
    assert (await client.upload(image_bytes(), name)).code == 302
    assert [listed for _, listed in await client.listed()] == [name]
    page = (await client.fetch("/")).body.decode()
    assert "<script>alert" not in page


def readme_table():
    """The README's bad-input table as CASES says it should be."""
    stages = list(STAGE_TITLES)
    rows = ["| input | " + " | ".join(STAGE_TITLES[stage] for stage in stages) + " |",
            "| --- |" + " --- |" * len(stages)]
    for case in CASES:
        cells = []
        for stage in stages:
            if stage in case.answers:
                status, words = case.answers[stage]
                cells.append(f'{status} "…{words}…"' if words else f"{status} (Tornado, no page)")
            else:
                cells.append(case.notes.get(stage, "–"))
        rows.append(f"| {case.input} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_the_readme_table_lists_the_catalogue():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bad input", 1)[1]
    table = "\n".join(re.findall(r"^\|.*\|$", section.split("\n## ", 1)[0], re.M))
    assert table == readme_table(), "README.md's Bad input table differs from CASES:\n" + readme_table()
