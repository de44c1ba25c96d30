"""Damaged images, made by Hypothesis from valid ones, sent to the stages that decode
uploads: never a 5xx, and a refused upload leaves nothing stored.

The seeds are valid images of every format and mode the stages accept; Hypothesis
flips, deletes, inserts and cuts bytes of them, and in a PNG retypes, drops,
repeats, splits and adds whole chunks, their checksums right, so that Pillow reads
on into the damage (and it shrinks what fails to the smallest change that does).
The damaged images go to the stage run as a program, so that its log can be read
too: no traceback in it, ever. The accepted seeds themselves are checked first (on
the stage served in process, a fresh one for each seed, as each counts what it stored):
a rule that refused valid images would pass the rest."""


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from coursekit.clients import Client, upload_collections
from coursekit.images import encoded, png_chunks, png_file
from coursekit.stages import RECORDS

RUNS_ON = ["part2_thumbnails", "part3_streaming", "part4_production", "part5_live"]  # the stages that decode images

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
    return encoded(image, format)


SEED_BYTES = {(format, mode): seed(format, mode) for format, mode in SEEDS}


@pytest.mark.parametrize("format, mode", SEEDS)
async def test_every_kind_of_image_the_stages_accept_gets_its_thumbnail(client, stage, format, mode):
    response = await client.upload(SEED_BYTES[format, mode], f"seed.{format.lower()}")
    assert response.code == 302, response.body
    assert (await client.stored())[RECORDS[stage]] == 1
    newest = await client.db[RECORDS[stage]].find_one(sort=[("uploadDate", -1), ("_id", -1)])
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


@pytest.fixture
async def running(program, db, stage):
    """(program, client): the stage run as a program, whose log can be read, and a
    client of it that has its XSRF cookie."""
    started = program()
    client = Client(started.url, db, collections=upload_collections(stage))
    await client.visit()
    return started, client


@EXAMPLES
@given(kind=st.sampled_from(SEEDS), chunk_edits=edits(["retype", "drop", "repeat", "split", "add"], 3),
       byte_edits=edits(["set", "delete", "insert", "cut"], 4))
async def test_a_damaged_image_never_gets_a_5xx_and_a_refused_one_leaves_nothing(running, stage, kind, chunk_edits,
                                                                                 byte_edits):
    program, client = running
    data = SEED_BYTES[kind]
    if kind[0] == "PNG":
        data = mutate_chunks(data, chunk_edits)
    data = mutate(data, byte_edits)
    before, logged = await client.stored(), len(program.output())
    response = await client.upload(data, "mutant.png")
    assert response.code < 500, response.body
    after = await client.stored()
    if response.code >= 400:
        assert after == before, response.body
    else:  # still an image (or, for part 3, a file): stored whole, and listed
        assert response.code == 302
        assert after[RECORDS[stage]] == before[RECORDS[stage]] + 1
    assert "Traceback" not in program.output()[logged:]
