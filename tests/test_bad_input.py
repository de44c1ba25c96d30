"""The bad-input catalogue: each case runs against every stage it applies to.

A case is answered with a specific 4xx and a clear message (or, where the input is
no error, with the answer the table of docs/bad-input.md says); afterwards no GridFS
file, chunk or record (`imgs`, from part 3 `uploads`) has been added and the server
still answers. That table ("Bad input", an appendix of the README) is made from
CASES: a test checks that they agree.

Each case gets a stage and a database of its own: it checks that it left no trace
there, or that its file is the only one listed."""

import dataclasses
import datetime
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from bson import ObjectId
from motor.motor_tornado import MotorGridFSBucket

from coursekit.clients import Client, RawConnection, error_message, multipart
from coursekit.images import (corrupt_png, image_bytes, jpeg_with_scans, png_header, png_with_a_big_colour_profile,
                              png_with_a_broken_chunk_list, png_with_a_text_bomb, png_with_a_truncated_header,
                              truncated_jpeg)
from coursekit.stages import ORIGINAL_PATHS, RECORDS, ROOT, STAGES

RUNS_ON = STAGES  # every stage

STAGE_TITLES = {"part1_basic": "part 1", "part2_thumbnails": "part 2", "part3_streaming": "part 3",
                "part4_production": "part 4", "part5_live": "part 5"}
STREAMING = {"part3_streaming", "part4_production", "part5_live"}  # the stages with --max_upload_size and --files_dir
LIMIT = 100_000  # their --max_upload_size here


@dataclasses.dataclass
class Case:
    input: str  # as the table of docs/bad-input.md says it
    send: Callable[[Client, str], Awaitable[tuple[int, str]]]  # (client, stage) -> (status, page)
    # stage -> (status, words of the message). No words: Tornado itself answers, with a
    # bare status line, before any handler runs. A status under 400 is no error: its
    # words are looked for in what came back, and its note says what it is.
    answers: dict[str, tuple[int, str | None]]
    # stage -> what happens, for the table, where the input is no error there.
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    marks: tuple = ()  # pytest's, for this case's test


@pytest.fixture
async def client(stage, serve, tmp_path):
    """conftest's `client` (it has visited the home page: it holds the XSRF cookie,
    where the stage sets one, and knows where the form posts); parts 3 and 4 with a
    small --max_upload_size and a --files_dir that holds a loop of symbolic links."""
    if stage not in STREAMING:
        return await serve()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return await serve(max_upload_size=LIMIT, files_dir=str(tmp_path))


# --- How each case is sent ---


async def get(client, path, headers=None):
    response = await client.fetch(path, headers=headers)
    return response.code, response.body.decode(errors="replace")


async def get_file(client, path, headers=None):
    """(status, its Content-Type and body): what a browser would make of a file."""
    response = await client.fetch(path, headers=headers)
    return response.code, f"{response.headers.get('Content-Type')}\n{response.body.decode(errors='replace')}"


async def upload(client, data, filename="image.png", content_type="image/png", **kwargs):
    response = await client.upload(data, filename, content_type, **kwargs)
    return response.code, response.body.decode(errors="replace")


async def put(client, data):
    response = await client.put(data, "big.bin")
    return response.code, response.body.decode(errors="replace")


async def put_without_a_token(client):
    """A PUT from a client that never opened a page: no cookie, no token."""
    response = await Client(client.base_url).fetch("/upload/big.bin", "PUT", b"data")
    return response.code, response.body.decode(errors="replace")


def form_path(client):
    """Where the home page's form posts, without the query: from part 3 on, the form's
    action carries the client's XSRF token, and the XSRF cases send their own."""
    return urlsplit(client.form_action).path


async def post_form(client, content_type, body, headers=None, sender=None):
    """POST `body` where the home page's form posts, by `client` or by `sender`, another
    client (one that has not seen the home page, say)."""
    response = await (sender or client).fetch(form_path(client), "POST", body,
                                              {"Content-Type": content_type, **(headers or {})})
    return response.code, response.body.decode(errors="replace")


async def anothers_xsrf_token(client):
    """The token of another visitor's _xsrf cookie: of the right form, but not this client's."""
    other = Client(client.base_url)
    await other.visit()
    return other.cookies["_xsrf"]


async def post_with_anothers_xsrf_token(client):
    """A token of the right form, but not the one in this client's cookie."""
    return await post_form(client, *A_FORM, headers={"X-XSRFToken": await anothers_xsrf_token(client)})


async def post_with_a_planted_token(client):
    """As a sibling subdomain can: it sets our _xsrf cookie for the parent domain (no
    SameSite stops that: it is the same site), then posts the same token from its page."""
    planted = await anothers_xsrf_token(client)
    return await post_form(client, *A_FORM, sender=Client(client.base_url), headers={
        "Cookie": f"_xsrf={planted}", "X-XSRFToken": planted,
        "Sec-Fetch-Site": "same-site", "Origin": "http://sibling.example.com"})


async def raw_post(client, headers, body=b""):
    """POST `headers` and `body` as they are, where the form posts, as a misbehaving
    client would; (status, page). The client's XSRF cookie and token go with them,
    where the stage has them."""
    async with RawConnection(client) as connection:
        await connection.send_headers("POST", form_path(client), headers, body)
        status, _, page = await connection.response()
    return status, page.decode(errors="replace")


async def forget_everything(client):
    for name in client.collections:
        await client.db[name].delete_many({})


async def with_a_stored_file(client, headers):
    """GET a stored file of ten digits with `headers`, then delete it: (status, page)."""
    response = await client.put(b"0123456789", "digits.txt")
    assert response.code == 201
    try:
        return await get(client, response.headers["Location"], headers)
    finally:
        await forget_everything(client)


async def upload_then_fetch(client, data, filename, content_type):
    """Upload a file through the form, then fetch it as a page of the site would load it
    (a <script src>, a style sheet); delete it. (status, Content-Type and body), or the
    upload's refusal."""
    status, page = await upload(client, data, filename, content_type)
    if status != 302:
        return status, page
    try:
        [(href, _)] = await client.listed()
        return await get_file(client, href)
    finally:
        await forget_everything(client)


async def home_page_with(client, stage, files=(), records=()):
    """The home page while GridFS's `fs.files` and the stage's records (`imgs`, from part
    3 `uploads`) hold these documents, written by another stage, a tool or a person;
    deleted afterwards."""
    for collection, documents in (("fs.files", files), (RECORDS[stage], records)):
        if documents:
            await client.db[collection].insert_many([dict(document) for document in documents])
    try:
        return await get(client, "/")
    finally:
        await forget_everything(client)


NOW = datetime.datetime.now(datetime.UTC)
# Part 3 keeps any file: a 300 MB video, say. Parts 1 and 2 read the same collections
# when they share its database.
A_VIDEO = {"filename": "film.mp4", "length": 300_000_000, "chunkSize": 261120, "uploadDate": NOW,
           "metadata": {"contentType": "video/mp4"}}
A_VIDEOS_RECORD = {"filename": "film.mp4", "contentType": "video/mp4", "length": 300_000_000, "uploadDate": NOW,
                   "original": ObjectId(), "thumbnail": None}
# Fields missing or of the wrong type, as a person or another tool may write them.
ODD_FILES = [{"filename": 42, "length": 1, "chunkSize": 261120, "uploadDate": NOW,
              "metadata": {"contentType": "image/png"}},
             {"length": 1, "chunkSize": 261120, "uploadDate": NOW, "metadata": {"contentType": "image/png"}},
             {"_id": "by-hand", "filename": "a.png", "length": 1, "chunkSize": 261120, "uploadDate": NOW,
              "metadata": {"contentType": "image/png"}},
             {"filename": "b.png", "length": 1, "chunkSize": 261120, "uploadDate": NOW, "metadata": "PNG"}]
ODD_RECORDS = [{}, {"filename": 42, "thumbnail": ObjectId(), "width": 1, "height": 1},
            {"filename": "a.png", "thumbnail": "none", "width": "wide", "height": 1, "length": 1,
             "contentType": "image/png"},
            {"filename": "b.png", "thumbnail": None, "length": "big", "contentType": "image/png"},
            {"filename": "c.png", "length": 1, "contentType": "image/png"}]


async def an_html_file_another_program_stored(client, stage):
    """GET the address of an HTML file that another program stored in GridFS, with a
    record where the stage keeps them (`imgs`, from part 3 `uploads`) that lists it (and
    no thumbnail); then delete both."""
    file_id = await MotorGridFSBucket(client.db).upload_from_stream(
        "page.html", b"<script>alert(1)</script>", metadata={"contentType": "text/html"})
    record = await client.db[RECORDS[stage]].insert_one(
        {"filename": "page.html", "contentType": "text/html", "original": file_id})
    try:
        path_id = file_id if stage == "part1_basic" else record.inserted_id
        return await get_file(client, ORIGINAL_PATHS[stage].format(path_id))
    finally:
        await forget_everything(client)


FORM_HEADER = "Content-Type: multipart/form-data; boundary=x"  # the boundary of FILE_PART
FILE_PART = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
TOO_BIG = 5 * 1024**3  # over Tornado's default max_body_size (100 MB), and part 3's 4 GiB
IMAGES_ONLY = "not a PNG, JPEG, GIF or WebP"
A_FORM = tuple(reversed(multipart({"file": ("a.png", image_bytes(), "image/png")})))  # (type, body)
A_SCRIPT = b"fetch('/upload/x', {method: 'PUT', body: document.cookie})"


def with_filename(header):
    """A form whose file part has this in place of `filename="a.png"`."""
    return FILE_PART.replace(b'filename="a.png"', header) + image_bytes() + b"\r\n--x--\r\n"


def answers(part1=None, part2=None, part3=None):
    """{stage: answer} for the stages that have the case. Part 4 is part 3 run for
    real, and part 5 is part 4 made live: they answer as part 3 does."""
    given = {"part1_basic": part1, "part2_thumbnails": part2, "part3_streaming": part3, "part4_production": part3,
             "part5_live": part3}
    return {stage: answer for stage, answer in given.items() if answer}


def every_stage(status, words):
    return answers(*[(status, words)] * 3)


def from_part2(status, words):
    return answers(None, (status, words), (status, words))


def part3(note):
    """Notes for part 3, and parts 4 and 5 as ever."""
    return dict.fromkeys(["part3_streaming", "part4_production", "part5_live"], note)


DOWNLOAD = "a download of a type no browser runs: "
STORED_BY_PART1 = {"part1_basic": "stored: part 1 does not decode images"}
NO_XSRF = {"part1_basic": "no XSRF protection yet"}
TORNADO_400 = (400, None)


CASES = [
    Case("an id that is not an ObjectId", lambda c, s: get(c, ORIGINAL_PATHS[s].format("not-an-id")),
         every_stage(404, "not valid")),
    Case("an unknown id", lambda c, s: get(c, ORIGINAL_PATHS[s].format(ObjectId())),
         answers((404, "no image with that id"), (404, "no image with that id"), (404, "no file with that id"))),
    Case("no `file` field in the form",
         lambda c, s: post_form(c, *reversed(multipart({"picture": ("a.png", image_bytes(), "image/png")}))),
         every_stage(400, "missing")),
    Case("an empty file", lambda c, s: upload(c, b""), every_stage(400, "empty")),
    Case("a text file sent as image/png", lambda c, s: upload_then_fetch(c, b"just some words\n", "a.png", "image/png"),
         answers((200, "image/png"), (400, IMAGES_ONLY), (200, "application/octet-stream")),
         {"part1_basic": "stored, served as image/png: part 1 trusts the claimed type",
          **part3(DOWNLOAD + "application/octet-stream")}),
    Case("an HTML page",
         lambda c, s: upload_then_fetch(c, b"<script>alert(1)</script>", "page.html", "text/html"),
         answers((415, "Only PNG, JPEG, GIF and WebP"), (400, IMAGES_ONLY), (200, "text/plain")),
         part3(DOWNLOAD + "text/plain")),
    Case("an SVG image",
         lambda c, s: upload_then_fetch(c, b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "a.svg",
                                        "image/svg+xml"),
         answers((415, "Only PNG, JPEG, GIF and WebP"), (400, IMAGES_ONLY), (200, "application/octet-stream")),
         part3(DOWNLOAD + "application/octet-stream")),
    Case("a script, loaded by another page of the site (`<script src>` ignores an attachment)",
         lambda c, s: upload_then_fetch(c, A_SCRIPT, "steal.js", "text/javascript"),
         answers((415, "Only PNG, JPEG, GIF and WebP"), (400, IMAGES_ONLY), (200, "text/plain")),
         part3(DOWNLOAD + "text/plain")),
    Case("a style sheet", lambda c, s: upload_then_fetch(c, b"body { display: none }", "site.css", "text/css"),
         answers((415, "Only PNG, JPEG, GIF and WebP"), (400, IMAGES_ONLY), (200, "text/plain")),
         part3(DOWNLOAD + "text/plain")),
    Case("a truncated JPEG", lambda c, s: upload(c, truncated_jpeg(), "cut.jpg", "image/jpeg"),
         from_part2(400, "truncated or damaged"), STORED_BY_PART1),
    Case("a PNG with damaged image data", lambda c, s: upload(c, corrupt_png(), "bad.png"),
         from_part2(400, "truncated or damaged"), STORED_BY_PART1),
    Case("a PNG whose text chunk inflates past Pillow's limit (ValueError)",
         lambda c, s: upload(c, png_with_a_text_bomb(), "text.png"), from_part2(400, "text or colour profile"),
         STORED_BY_PART1),
    Case("a PNG whose colour profile inflates to 5 MB, past Pillow's limit (ValueError)",
         lambda c, s: upload(c, png_with_a_big_colour_profile(), "profile.png"),
         from_part2(400, "text or colour profile"), STORED_BY_PART1),
    Case("a progressive JPEG drawn in 1,300 scans (22 KB, each scan a pass over every pixel)",
         lambda c, s: upload(c, jpeg_with_scans((1000, 1000), 1300), "scans.jpg", "image/jpeg"),
         from_part2(400, "passes"), STORED_BY_PART1),
    Case("a PNG with a broken chunk list (SyntaxError)",
         lambda c, s: upload(c, png_with_a_broken_chunk_list(), "chunks.png"), from_part2(400, "truncated or damaged"),
         STORED_BY_PART1),
    Case("a PNG with a truncated header (ValueError)",
         lambda c, s: upload(c, png_with_a_truncated_header(), "header.png"), from_part2(400, "truncated or damaged"),
         STORED_BY_PART1),
    Case("a decompression bomb (over twice Pillow's pixel limit)",
         lambda c, s: upload(c, png_header(20_000, 20_000), "bomb.png"), from_part2(400, "too many pixels")),
    Case("enormous dimensions in a tiny file (over Pillow's pixel limit)",
         lambda c, s: upload(c, png_header(10_000, 10_000), "huge.png"), from_part2(400, "too many pixels"),
         # Pillow warns as it opens the image, as it should; the stage then refuses it.
         marks=[pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")]),
    Case("a declared body over the size limit",
         lambda c, s: raw_post(c, [f"Content-Length: {TOO_BIG}", FORM_HEADER]),
         answers(TORNADO_400, TORNADO_400, (413, "too big"))),
    # No Content-Length: the body is sent in chunks, and the first one is too big.
    Case("an undeclared (chunked) body over the size limit",
         lambda c, s: raw_post(c, ["Transfer-Encoding: chunked", FORM_HEADER], f"{TOO_BIG:x}\r\n".encode()),
         answers(TORNADO_400, TORNADO_400, TORNADO_400)),
    Case(f"a file one byte over `--max_upload_size` ({LIMIT} here), through the form",
         lambda c, s: upload(c, b"x" * (LIMIT + 1), "big.bin", "application/octet-stream"),
         answers(part3=(413, "too big"))),
    Case(f"a file one byte over `--max_upload_size` ({LIMIT} here), by PUT",
         lambda c, s: put(c, b"x" * (LIMIT + 1)), answers(part3=(413, "too big"))),
    Case("a Content-Length of non-ASCII digits (`²`)",
         lambda c, s: raw_post(c, ["Content-Length: \u00b2", FORM_HEADER], b"xx"),
         every_stage(*TORNADO_400)),
    Case("a declared body over the size limit, its Content-Length repeated (`5368709120, 5368709120`)",
         lambda c, s: raw_post(c, [f"Content-Length: {TOO_BIG}, {TOO_BIG}", FORM_HEADER]),
         answers(TORNADO_400, TORNADO_400, (413, "too big"))),
    Case("a Content-Length of 5000 digits",
         lambda c, s: raw_post(c, [f"Content-Length: {'9' * 5000}", FORM_HEADER]),
         every_stage(*TORNADO_400)),
    Case("multipart with no boundary",
         lambda c, s: post_form(c, "multipart/form-data", FILE_PART + b"abc\r\n--x--\r\n"),
         answers((400, "boundary not found"), (400, "boundary not found"), (400, "multipart/form-data form"))),
    Case("multipart with the wrong boundary",
         lambda c, s: post_form(c, "multipart/form-data; boundary=y", FILE_PART + b"abc\r\n--x--\r\n"),
         answers((400, "no final boundary"), (400, "no final boundary"), (400, "malformed"))),
    Case("multipart with an unterminated part",
         lambda c, s: post_form(c, "multipart/form-data; boundary=x", FILE_PART + image_bytes()),
         answers((400, "no final boundary"), (400, "no final boundary"), (400, "malformed"))),
    Case("no XSRF token", lambda c, s: post_form(c, *A_FORM, sender=Client(c.base_url)),  # no cookie either
         from_part2(403, "no XSRF token"), NO_XSRF),
    Case("a PUT without an XSRF token", lambda c, s: put_without_a_token(c),
         answers(part3=(403, "no XSRF token"))),
    Case("a wrong XSRF token", lambda c, s: post_with_anothers_xsrf_token(c),
         from_part2(403, "does not match its _xsrf cookie"), NO_XSRF),
    Case("a POST that another site starts (`Sec-Fetch-Site: cross-site`), valid token and all",
         lambda c, s: post_form(c, *A_FORM, headers={"Sec-Fetch-Site": "cross-site",
                                                     "Origin": "https://elsewhere.example"}),
         from_part2(403, "not allowed"), NO_XSRF),
    Case("an XSRF token planted by a sibling subdomain (`Sec-Fetch-Site: same-site`)",
         lambda c, s: post_with_a_planted_token(c), from_part2(403, "not allowed"), NO_XSRF),
    Case("a POST from another origin, by a browser without Fetch Metadata (`Origin` only)",
         lambda c, s: post_form(c, *A_FORM, headers={"Origin": "http://elsewhere.example"}),
         from_part2(403, "not allowed"), NO_XSRF),
    Case("a file name with CR/LF in it (RFC 2231 encoded)",
         lambda c, s: post_form(c, "multipart/form-data; boundary=x",
                                with_filename(b"filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x.png")),
         every_stage(400, "control characters")),
    Case("a file name with a C1 control character (U+0085, a line break to some)",
         lambda c, s: upload(c, image_bytes(), "next\u0085line.png"), every_stage(400, "control characters")),
    Case("a file name with a line separator (U+2028, category Zl: no control, a line break all the same)",
         lambda c, s: upload(c, image_bytes(), "two\u2028lines.png"), every_stage(400, "control characters")),
    Case("a file name with a right-to-left override (U+202E: `photo<U+202E>gnp.exe` shows as photoexe.png)",
         lambda c, s: upload(c, image_bytes(), "photo\u202egnp.exe"), every_stage(400, "bidirectional")),
    Case("a file name with a bidirectional isolate (U+2067)",
         lambda c, s: upload(c, image_bytes(), "a\u2067b.png"), every_stage(400, "bidirectional")),
    Case("a file name of 1000 characters", lambda c, s: upload(c, image_bytes(), "n" * 996 + ".png"),
         every_stage(400, "too long")),
    Case("a `filename*=` in a charset Python has no decoder for (`idna`)",
         lambda c, s: post_form(c, "multipart/form-data; boundary=x", with_filename(b"filename*=idna''%ff.png")),
         answers((400, "Invalid multipart/form-data"), (400, "Invalid multipart/form-data"),
                 (400, "cannot be decoded"))),
    Case("a file name in Latin-1, not UTF-8 (`filename=\"caf\\xe9.png\"`)",
         lambda c, s: post_form(c, "multipart/form-data; boundary=x", with_filename(b'filename="caf\xe9.png"')),
         answers((400, "Invalid multipart/form-data"), (400, "Invalid multipart/form-data"),
                 (400, "cannot be decoded"))),
    Case("a Range of non-ASCII digits (`bytes=\u00b2-\u00b3`)",
         lambda c, s: with_a_stored_file(c, {"Range": "bytes=\u00b2-\u00b3"}),
         answers(part3=(200, "0123456789")), part3("the whole file, as RFC 9110 allows")),
    Case("a Range that starts 5000 digits into the file",
         lambda c, s: with_a_stored_file(c, {"Range": f"bytes={'9' * 5000}-"}),
         answers(part3=(416, "outside the file"))),
    Case("a Range that ends 5000 digits into the file",
         lambda c, s: with_a_stored_file(c, {"Range": f"bytes=5-{'9' * 5000}"}),
         answers(part3=(206, "56789")), part3("the rest of the file")),
    Case("a Range past the end of the file", lambda c, s: with_a_stored_file(c, {"Range": "bytes=10-"}),
         answers(part3=(416, "outside the file"))),
    Case("a Range with the If-Range of another version of the file",
         lambda c, s: with_a_stored_file(c, {"Range": "bytes=5-", "If-Range": '"an-older-version"'}),
         answers(part3=(200, "0123456789")), part3("the whole file, not a piece of another version")),
    Case("a `/files/` path longer than a file name may be", lambda c, s: get(c, "/files/" + "a" * 5000),
         answers(part3=(404, "no such file"))),
    Case("a `/files/` path through a loop of symbolic links", lambda c, s: get(c, "/files/loop/x"),
         answers(part3=(404, "no such file"))),
    Case("the home page, with another stage's records where it looks (part 3's 300 MB video)",
         lambda c, s: home_page_with(c, s, [A_VIDEO], [A_VIDEOS_RECORD]),
         answers((200, "Nothing uploaded yet"), (200, "Nothing uploaded yet")),
         {"part1_basic": "not listed", "part2_thumbnails": "not listed", **part3("its own kind: listed, a download")}),
    Case("the home page, with records written by hand: fields missing or of the wrong type",
         lambda c, s: home_page_with(c, s, ODD_FILES, ODD_RECORDS), every_stage(200, "Nothing uploaded yet"),
         dict.fromkeys(STAGE_TITLES, "none listed")),
    Case("the address of an HTML file that another program stored",
         lambda c, s: an_html_file_another_program_stored(c, s),
         answers((200, "application/octet-stream"), (200, "application/octet-stream"), (200, "text/plain")),
         {**dict.fromkeys(["part1_basic", "part2_thumbnails"], DOWNLOAD + "application/octet-stream"),
          **part3(DOWNLOAD + "text/plain")}),
]


def applicable():
    return [pytest.param(stage, case, id=f"{stage}-{case.input}", marks=case.marks)
            for stage in STAGES for case in CASES if stage in case.answers]


# In module scope, as conftest parametrizes `stage`: the stage's fixtures are per module.
@pytest.mark.parametrize("stage, case", applicable(), scope="module")
async def test_bad_input_gets_a_clear_4xx_and_leaves_no_trace(stage, case, client):
    status, page = await case.send(client, stage)
    expected_status, words = case.answers[stage]
    assert status == expected_status, page
    if words and status < 400:
        assert words in page
    elif words:
        assert words in (error_message(page) or ""), page
    assert set((await client.stored()).values()) == {0}
    assert (await client.fetch("/")).code == 200, "the server still answers"


@pytest.mark.parametrize("name", [
    "../../etc/passwd.png", 'say "cheese".png', "日本語 – café.png", "<script>alert(1)</script>.png",
    "C:\\Users\\me\\photo.png",
    "Screenshot 2026-11-25 at 10.00.00\u202fAM.png",  # macOS puts a narrow no-break space there
    "\U0001f469\u200d\U0001f4bb at work.png",  # an emoji sequence, with a zero-width joiner
    "co\u00adoperation.png", "\u0635\u0648\u0631\u0629.png", "tab\u00a0and\u3000spaces.png",
])
async def test_unusual_but_valid_file_names_are_kept_and_shown_escaped(client, name):
    assert (await client.upload(image_bytes(), name)).code == 302
    assert [listed for _, listed in await client.listed()] == [name]
    page = (await client.fetch("/")).body.decode()
    assert "<script>alert" not in page


def bad_input_table():
    """The bad-input table of docs/bad-input.md as CASES says it should be."""
    stages = list(STAGE_TITLES)
    rows = ["| input | " + " | ".join(STAGE_TITLES[stage] for stage in stages) + " |",
            "| --- |" + " --- |" * len(stages)]
    for case in CASES:
        cells = []
        for stage in stages:
            if stage in case.answers:
                status, words = case.answers[stage]
                if status < 400:
                    cells.append(f"{status}, {case.notes[stage]}")
                else:
                    cells.append(f'{status} "…{words}…"' if words else f"{status} (Tornado, no page)")
            else:
                cells.append(case.notes.get(stage, "–"))
        rows.append(f"| {case.input} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_the_bad_input_table_lists_the_catalogue():
    page = (ROOT / "docs" / "bad-input.md").read_text()
    section = page.split("\n## Bad input\n", 1)[1]
    table = "\n".join(re.findall(r"^\|.*\|$", section.split("\n## ", 1)[0], re.M))
    assert table == bad_input_table(), "docs/bad-input.md's Bad input table differs from CASES:\n" + bad_input_table()
