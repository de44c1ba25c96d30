"""Damaged images, made by Hypothesis from valid ones, sent to the stages that decode
uploads: never a 5xx, and a refused upload leaves nothing stored.

The seeds are valid images of every format and mode the stages accept; Hypothesis
flips, deletes, inserts and cuts bytes of them, and in a PNG retypes, drops,
repeats, splits and adds whole chunks, their checksums right, so that Pillow reads
on into the damage (and it shrinks what fails to the smallest change that does).
Each stage runs as a program, so that its log can be read too: no traceback in it,
ever. The accepted seeds themselves are checked first: a rule that refused valid
images would pass the rest."""

import http.client
import io
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pymongo import MongoClient

from coursekit.stages import FORM_PATHS, RECORDS
from support import STAGES, multipart, png_chunks, png_file, stage_program

RUNS_ON = ["part2_thumbnails", "part3_streaming", "part4_production"]  # the stages that decode images

DECODING_STAGES = [stage for stage in ("part2_thumbnails", "part3_streaming", "part4_production") if stage in STAGES]
EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COLORS = {"1": 1, "L": 120, "LA": (100, 128), "P": 7, "RGB": (0, 128, 128), "RGBA": (0, 128, 128, 100),
          "I;16": 40000, "CMYK": (0, 200, 200, 0)}
# Every format and mode the stages take, as cameras, editors and browsers write them.
SEEDS = [("PNG", "1"), ("PNG", "L"), ("PNG", "LA"), ("PNG", "P"), ("PNG", "RGB"), ("PNG", "RGBA"),
         ("PNG", "I;16"), ("JPEG", "L"), ("JPEG", "RGB"), ("JPEG", "CMYK"), ("GIF", "P"), ("GIF", "L"),
         ("WEBP", "RGB"), ("WEBP", "RGBA")]


def seed(format, mode):
    """A small image, half noise, so that a change anywhere matters."""
    image = Image.new(mode, (48, 32), COLORS[mode])
    image.paste(Image.effect_noise((24, 32), 60).convert(mode), (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


SEED_BYTES = {(format, mode): seed(format, mode) for format, mode in SEEDS}


class Stage:
    """A stage served as a program, a client that keeps its XSRF cookie, and its database."""

    def __init__(self, program, db, stage):
        self.program, self.db = program, db
        self.form_path, self.records = FORM_PATHS[stage], RECORDS[stage]
        address = urlsplit(program.url)
        self.host, self.port = address.hostname, address.port
        status, headers, _ = self.request("GET", "/")
        self.token = SimpleCookie(headers["Set-Cookie"])["_xsrf"].value

    def request(self, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    def upload(self, data, filename="mutant.png"):
        body, form_type = multipart({"file": (filename, data, "image/png")})
        return self.request("POST", self.form_path, body, {"Content-Type": form_type, "Cookie": f"_xsrf={self.token}",
                                                           "X-XSRFToken": self.token})

    def stored(self):
        return {name: self.db[name].count_documents({}) for name in ("fs.files", "fs.chunks", self.records)}


@pytest.fixture(scope="module")
def served_stage(stage, mongodb_uri):
    db_name = f"test_{uuid.uuid4().hex[:12]}"
    with MongoClient(mongodb_uri) as client, stage_program(stage, mongodb_uri, db_name) as program:
        yield Stage(program, client[db_name], stage)
        client.drop_database(db_name)


@pytest.mark.parametrize("format, mode", SEEDS)
def test_every_kind_of_image_the_stages_accept_gets_its_thumbnail(served_stage, format, mode):
    before = served_stage.stored()[served_stage.records]
    status, _, body = served_stage.upload(SEED_BYTES[format, mode], f"seed.{format.lower()}")
    assert status == 302, body
    assert served_stage.stored()[served_stage.records] == before + 1
    newest = served_stage.db[served_stage.records].find_one(sort=[("uploadDate", -1), ("_id", -1)])
    assert newest["thumbnail"] is not None


def mutate_chunks(data, edits):
    """A PNG with each edit applied to its chunks: (kind, where, what), `where` a
    fraction of the number of chunks."""
    chunks = png_chunks(data)
    for kind, where, what in edits:
        position = int(where * len(chunks))
        chunk_type, body = chunks[position]
        new_type = what[:4].ljust(4, b"\0")
        if kind == "retype":
            chunks[position] = (new_type, body)
        elif kind == "drop" and len(chunks) > 1:
            del chunks[position]
        elif kind == "repeat":
            chunks.insert(position, chunks[position])
        elif kind == "split":  # the second half under another type
            chunks[position : position + 1] = [(chunk_type, body[: len(body) // 2]), (new_type, body[len(body) // 2 :])]
        elif kind == "add":
            chunks.insert(max(position, 1), (new_type, what[4:]))
    return png_file(chunks)


def mutate(data, edits):
    """`data` with each edit applied: (kind, where, what), `where` a fraction of the length."""
    data = bytearray(data)
    for kind, where, what in edits:
        position = int(where * len(data))
        if kind == "set" and data:
            data[min(position, len(data) - 1)] = what[0]
        elif kind == "delete":
            del data[position : position + len(what)]
        elif kind == "insert":
            data[position:position] = what
        elif kind == "cut":
            del data[position:]
    return bytes(data)


def edits(kinds, max_size):
    return st.lists(st.tuples(st.sampled_from(kinds), st.floats(min_value=0, max_value=1, exclude_max=True),
                              st.binary(min_size=1, max_size=24)), max_size=max_size)


@EXAMPLES
@given(kind=st.sampled_from(SEEDS), chunk_edits=edits(["retype", "drop", "repeat", "split", "add"], 3),
       byte_edits=edits(["set", "delete", "insert", "cut"], 4))
def test_a_damaged_image_never_gets_a_5xx_and_a_refused_one_leaves_nothing(served_stage, kind, chunk_edits, byte_edits):
    data = SEED_BYTES[kind]
    if kind[0] == "PNG":
        data = mutate_chunks(data, chunk_edits)
    data = mutate(data, byte_edits)
    before, logged = served_stage.stored(), len(served_stage.program.output())
    status, _, body = served_stage.upload(data)
    assert status < 500, body
    after = served_stage.stored()
    if status >= 400:
        assert after == before, body
    else:  # still an image (or, for part 3, a file): stored whole, and listed
        assert status == 302
        assert after[served_stage.records] == before[served_stage.records] + 1
    assert "Traceback" not in served_stage.program.output()[logged:]
