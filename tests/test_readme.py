"""The README is a learning path, and its appendix pages hold the reference.

README.md opens with what the course is and its two commands, links the first
lesson within its first screen, and takes the stages in order, each with its
lesson, its run command and a screenshot (docs/images/<stage>.png, made by
tools/screenshots.py: these tests check that each is there, and never make them).
docs/setup.md's table of versions is the pinned and installed packages'. (That their
links lead somewhere, test_lessons.py checks, for every document.)"""

import re
from importlib import metadata

from coursekit.links import page_text
from coursekit.stages import ROOT, STAGES

RUNS_ON = []  # about the README and its pages, not a stage

README = ROOT / "README.md"
FIRST_SCREEN = 15  # lines: what a browser shows of a README before any scrolling
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_readme_is_short_and_links_the_first_lesson_on_its_first_screen():
    text = README.read_text()
    assert len(text.encode()) < 8 * 1024, "the README is a path: reference goes to docs/"
    first_screen = "\n".join(text.splitlines()[:FIRST_SCREEN])
    assert f"]({STAGES[0]}/README.md)" in first_screen


def test_the_readme_gives_the_two_commands_that_ci_runs():
    commands = re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.M | re.S)
    assert commands[:2] == ["python3 course.py run\n", "python3 course.py test\n"]
    assert "\npython3 course.py test\n" in (ROOT / ".ci" / "run").read_text()


def test_every_stage_is_on_the_path_in_order_with_its_lesson_command_and_screenshot():
    text = page_text(README)
    places = []
    for stage in STAGES:
        section = re.search(rf"^### .*\n\n\[The lesson\]\({stage}/README\.md\) · "
                            rf"`python3 course\.py run( {stage})?`(.*?)(?=^##)", text, re.M | re.S)
        assert section, f"the README's path has no section for {stage} with its lesson and run command"
        assert bool(section.group(1)) == (stage != STAGES[0]), "the first stage is the one `run` serves"
        assert re.match(r"### .*\(about [\d.½]+ hours?", section.group(0)), f"{stage}: the time it takes"
        assert "You will have:" in section.group(0)
        assert f"](docs/images/{stage}.png)" in section.group(0), f"{stage}: its screenshot"
        screenshot = ROOT / "docs" / "images" / f"{stage}.png"
        assert screenshot.is_file() and screenshot.read_bytes()[:8] == PNG_SIGNATURE, (
            f"no screenshot of {stage}: .venv/bin/python tools/screenshots.py {stage} makes it")
        places.append(section.start())
    assert places == sorted(places), "the stages in order"


def test_the_glossary_defines_the_lessons_terms_in_alphabetical_order():
    terms = re.findall(r"^## (.+)$", (ROOT / "docs" / "glossary.md").read_text(), re.M)
    for term in ["Event loop", "Coroutine", "Future", "Backpressure", "GridFS, GridFS chunk", "XSRF", "Change stream",
                 "Replica set", "WebSocket", "Range request", "ETag", "SO_REUSEPORT", "File descriptor"]:
        assert any(defined.startswith(term) for defined in terms), f"the glossary does not define {term}"
    assert terms == sorted(terms, key=lambda term: re.sub(r"[^a-z0-9]", "", term.casefold()))


# The packages of the table, by the name it gives them.
DISTRIBUTIONS = {"Tornado": "tornado", "PyMongo": "pymongo", "Pillow": "pillow", "Motor": "motor",
                 "SecantusDB": "secantusdb"}


def test_the_versions_table_is_the_pinned_and_installed_packages():
    page = (ROOT / "docs" / "setup.md").read_text()
    rows = re.findall(r"^\| (\w+) \| ([\w.]+) \| (3\.\d+) or newer \|$", page, re.M)
    assert {name for name, _, _ in rows} == set(DISTRIBUTIONS)
    pins = "".join(path.read_text() for path in ROOT.glob("requirements*.txt"))
    for name, version, python in rows:
        distribution = DISTRIBUTIONS[name]
        assert f"\n{distribution}=={version}\n" in pins, f"{name} {version} is not what the requirements pin"
        assert metadata.version(distribution) == version
        requires = metadata.metadata(distribution)["Requires-Python"].replace(" ", "")
        assert requires == f">={python}", f"{name} declares {requires}"
    oldest = max((tuple(map(int, python.split("."))) for _, _, python in rows))
    assert f"So the course needs Python {oldest[0]}.{oldest[1]} or newer." in " ".join(page.split())


def glossary_says(words):
    """Whether the glossary says `words` (line breaks and spacing aside)."""
    return " ".join(words.split()) in " ".join((ROOT / "docs" / "glossary.md").read_text().split())


def test_the_glossarys_library_facts_hold():
    """Each fact about a library the glossary states, beside the installed library's word for it."""
    import asyncio
    import inspect

    import bson.objectid
    import gridfs.grid_file_shared
    import tornado.concurrent
    import tornado.ioloop
    import tornado.netutil
    import tornado.template
    import tornado.web
    from PIL import Image

    assert glossary_says("PyMongo and Motor cut 255 KiB chunks unless told otherwise")
    assert gridfs.grid_file_shared.DEFAULT_CHUNK_SIZE == 255 * 1024

    assert glossary_says("`Image.MAX_IMAGE_PIXELS` pixels (89,478,485 by default), and refuses one of more than "
                         "double that with a `DecompressionBombError`")
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    assert "pixels > 2 * MAX_IMAGE_PIXELS" in inspect.getsource(Image._decompression_bomb_check)

    assert glossary_says("Since Tornado 6.0 its `IOLoop` is a wrapper around asyncio's event loop")
    assert "As of Tornado 6.0, `IOLoop` is a wrapper around the `asyncio` event loop" in tornado.ioloop.IOLoop.__doc__

    assert glossary_says("asyncio's `Future` is what Tornado's functions return")
    assert tornado.concurrent.Future is asyncio.Future

    assert glossary_says("Tornado sets it with `bind_sockets(port, reuse_port=True)`")
    assert inspect.signature(tornado.netutil.bind_sockets).parameters["reuse_port"].default is False
    assert "SO_REUSEPORT" in inspect.getsource(tornado.netutil.bind_sockets)

    assert glossary_says("cookie is not older than 31 days, by default")
    assert inspect.signature(tornado.web.RequestHandler.get_signed_cookie).parameters["max_age_days"].default == 31

    assert glossary_says("escape every `{{ expression }}` for HTML by default (`xhtml_escape`)")
    assert tornado.template._DEFAULT_AUTOESCAPE == "xhtml_escape"

    assert glossary_says("4 bytes of seconds since 1970, 5 random bytes, 3 bytes of a counter")
    assert "a 5-byte random value" in bson.objectid.ObjectId.__init__.__doc__

    assert glossary_says("announces its deprecation on 14 May 2026")
    assert "Motor will be deprecated on May 14th, 2026" in metadata.metadata("motor").get_payload()

    assert glossary_says("Tornado 6.6's `cross_origin_protection`")
    assert "sec-fetch-site" in inspect.getsource(tornado.web.RequestHandler._check_cross_origin)


def test_the_bad_input_pages_library_facts_hold():
    import inspect

    import tornado.http1connection
    import tornado.iostream

    page = " ".join((ROOT / "docs" / "bad-input.md").read_text().split())
    assert "`max_body_size` (100 MiB by default: the stream's `max_buffer_size`)" in page
    assert "else self.stream.max_buffer_size" in inspect.getsource(tornado.http1connection.HTTP1Connection.__init__)
    assert "max_buffer_size or 104857600" in inspect.getsource(tornado.iostream.BaseIOStream.__init__)
    assert 104857600 == 100 * 2**20
