"""What the lessons say about the libraries, checked against the installed ones.

Every row of a lesson's "What changed" table has a check here, under its stage and
the text of the row's first cell: a row without one fails, so a new row comes with
its check. A check tests what can be tested today (an API exists or not, a default,
a message, a docstring's version note); what the 2014 articles said cannot be, as
they are not in the repository. CLAIMS checks what the lessons' prose says about
the libraries; FIXED lists statements the lessons once made that were false: none
may come back."""

import asyncio
import gc
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import unicodedata

import gridfs.grid_file
import gridfs.grid_file_shared
import motor
import motor.motor_gridfs
import motor.motor_tornado
import motor.web
import pymongo.common
import pytest
import tornado.concurrent
import tornado.gen
import tornado.httputil
import tornado.ioloop
import tornado.options
import tornado.template
import tornado.web
from bson import ObjectId
from bson.errors import InvalidId
from PIL import Image, UnidentifiedImageError
from pymongo.collection import Collection

from coursekit.stages import ROOT, STAGES, StageCode, load_stage

RUNS_ON = STAGES  # every stage


def what_changed_rows(stage):
    """The first cells of the rows of the lesson's "What changed" tables."""
    markdown = (ROOT / stage / "README.md").read_text()
    cells = []
    for section in re.split(r"^## ", markdown, flags=re.M):
        if section.startswith("What changed"):
            for line in section.splitlines():
                if line.startswith("|") and not re.match(r"\| *-", line):
                    cells.append(line.split("|")[1].strip())
    return cells[1:] if cells else []  # less the header


def stage_source(stage, name):
    return inspect.getsource(getattr(StageCode(load_stage(stage)), name))


# --- The rows of the "What changed" tables ---


def motor_gridfs_is_gone():
    assert not hasattr(motor, "MotorGridFS") and not hasattr(motor.motor_tornado, "MotorGridFS")
    for method in ("upload_from_stream", "open_upload_stream", "open_download_stream"):
        assert hasattr(motor.motor_tornado.MotorGridFSBucket, method)


def nofile_is_pymongos():
    assert importlib.util.find_spec("motor.gridfs") is None
    assert issubclass(gridfs.errors.NoFile, Exception)


def content_type_is_deprecated():
    assert "DEPRECATED, will be removed in PyMongo 5.0" in gridfs.grid_file.GridOut.content_type.__doc__


def gen_coroutine_stays_the_rest_went():
    assert hasattr(tornado.gen, "coroutine")  # still there in 6.6
    assert "versionchanged:: 6.6" in tornado.gen.coroutine.__doc__
    assert not hasattr(tornado.web, "asynchronous")
    assert not hasattr(tornado.gen, "engine") and not hasattr(tornado.gen, "Task")


def ioloop_instance_is_a_deprecated_alias():
    assert tornado.ioloop.IOLoop.instance.__doc__.strip().startswith("Deprecated alias for `IOLoop.current()`")


def save_is_gone():
    assert not hasattr(Collection, "save") and hasattr(Collection, "insert_one")


def a_missing_file_field_is_a_key_error():
    start_line = tornado.httputil.RequestStartLine("POST", "/", "HTTP/1.1")
    headers = tornado.httputil.HTTPHeaders({"Host": "localhost"})
    files = tornado.httputil.HTTPServerRequest(start_line=start_line, headers=headers).files
    assert files == {} and files.get("file") is None
    with pytest.raises(KeyError):
        files["file"]


def antialias_is_gone():
    assert not hasattr(Image, "ANTIALIAS") and Image.Resampling.LANCZOS


def run_on_executor_is_discouraged():
    assert "discouraged in new code" in tornado.concurrent.run_on_executor.__doc__


def gather_waits_for_both_only_when_asked():
    async def saves(return_exceptions):
        finished = []

        async def fails():
            raise OSError("the thumbnail's save failed")

        async def succeeds():
            await asyncio.sleep(0.01)
            finished.append("original")
            return "original id"

        try:
            results = await asyncio.gather(fails(), succeeds(), return_exceptions=return_exceptions)
        except OSError:
            results = None
        return results, list(finished)

    # Without return_exceptions, gather raises at once: the other save ends later, unseen.
    assert asyncio.run(saves(False)) == (None, [])
    results, finished = asyncio.run(saves(True))
    assert isinstance(results[0], OSError) and results[1] == "original id" and finished == ["original"]
    assert hasattr(tornado.gen, "multi")  # what a yielded list became in gen.coroutine


def options_are_one_registry_each():
    parser = tornado.options.OptionParser()
    parser.define("port", default=8000)
    with pytest.raises(tornado.options.Error, match="Option 'port' already defined"):
        parser.define("port", default=8001)


def convert_returns_a_new_image():
    image = Image.new("P", (2, 2))
    converted = image.convert("RGB")
    assert converted is not image and image.mode == "P" and converted.mode == "RGB"


def a_bomb_is_not_an_oserror():
    assert not issubclass(Image.DecompressionBombError, OSError)
    assert issubclass(UnidentifiedImageError, OSError)
    assert "except Image.DecompressionBombError" in stage_source("part2_thumbnails", "make_thumbnail")


def part2_catches_a_missing_file():
    assert "except NoFile" in stage_source("part2_thumbnails", "ShowImageHandler")


def static_file_handler_streams():
    source = inspect.getsource(tornado.web.StaticFileHandler)
    assert "chunk_size = 64 * 1024" in source and "await self.flush()" in source


def flush_takes_no_callback():
    assert not hasattr(tornado.web, "asynchronous")
    assert "callback" not in inspect.signature(tornado.web.RequestHandler.flush).parameters


def streamed_bodies_exist():
    assert hasattr(tornado.web, "stream_request_body")
    assert "May be a coroutine for flow control" in tornado.web.RequestHandler.data_received.__doc__


def grid_in_gathers_48_mb():
    assert gridfs.grid_file_shared._UPLOAD_BUFFER_SIZE == 48 * 1000 * 1000
    # Gone from Motor, kept by PyMongo's blocking GridFS.
    assert not hasattr(motor.motor_tornado, "MotorGridFS")
    assert callable(gridfs.GridFS.new_file) and callable(gridfs.GridFS.put)


def stream_to_handler_never_waits():
    source = inspect.getsource(motor.motor_gridfs.AgnosticGridOut.stream_to_handler)
    assert "request_handler.flush()" in source and "await request_handler.flush()" not in source


def gridfs_handler_has_no_range():
    source = inspect.getsource(motor.web)
    assert "Range" not in source
    assert 'etag = self.request.headers.get("If-None-Match")' in source  # compared as it comes


def xsrf_is_checked_before_prepare():
    execute = inspect.getsource(tornado.web.RequestHandler._execute)
    assert execute.index("self._cross_origin_protection()") < execute.index("self.prepare()")
    assert "X-Xsrftoken" in inspect.getsource(tornado.web.RequestHandler.check_xsrf_cookie)


def motor_is_deprecated_with_critical_fixes_until_2027():
    readme = importlib.metadata.metadata("motor").get_payload()
    assert "Motor will be deprecated on May 14th, 2026" in readme
    assert "Critical bug fixes will be made until May 14th, 2027" in readme


FACTS = {
    ("part1_basic", "`motor.MotorGridFS(db)`, `fs.new_file()`, `fs.put()`"): motor_gridfs_is_gone,
    ("part1_basic", "`motor.gridfs.NoFile`"): nofile_is_pymongos,
    ("part1_basic", "`grid_out.content_type`"): content_type_is_deprecated,
    ("part1_basic", "`@gen.coroutine` and `yield`"): gen_coroutine_stays_the_rest_went,
    ("part1_basic", "`IOLoop.instance().start()`"): ioloop_instance_is_a_deprecated_alias,
    ("part1_basic", "`self.request.files['file']`: a missing `file` field raised `KeyError`, a 500"):
        a_missing_file_field_is_a_key_error,
    ("part2_thumbnails", "`Image.ANTIALIAS`"): antialias_is_gone,
    ("part2_thumbnails", "`@run_on_executor` on a method, `self.executor`"): run_on_executor_is_discouraged,
    ("part2_thumbnails", "two saves yielded as a list in a `gen.coroutine`"): gather_waits_for_both_only_when_asked,
    ("part2_thumbnails", "`define()` on the global `tornado.options.options`"): options_are_one_registry_each,
    ("part2_thumbnails", "`im.convert('RGB')` on a line of its own"): convert_returns_a_new_image,
    ("part2_thumbnails", "`self.request.files['file']`"): a_missing_file_field_is_a_key_error,
    ("part2_thumbnails", "catching `IOError` (`OSError`) around Pillow"): a_bomb_is_not_an_oserror,
    ("part2_thumbnails", "no `except NoFile` when serving an image whose document is found"):
        part2_catches_a_missing_file,
    ("part3_streaming", "`StaticFileHandler` read the whole file into memory"): static_file_handler_streams,
    ("part3_streaming", "`@tornado.web.asynchronous`, `flush(callback=...)`"): flush_takes_no_callback,
    ("part3_streaming", "every body read whole into memory (Tornado 3)"): streamed_bodies_exist,
    ("part3_streaming", "`motor.MotorGridFS`, `gridfs.new_file()`"): grid_in_gathers_48_mb,
    ("part3_streaming", "`grid_out.stream_to_handler(self)`"): stream_to_handler_never_waits,
    ("part3_streaming", "`motor.web.GridFSHandler`"): gridfs_handler_has_no_range,
    ("part3_streaming", "the `_xsrf` form field"): xsrf_is_checked_before_prepare,
    ("part3_streaming", "Motor"): motor_is_deprecated_with_critical_fixes_until_2027,
}


def test_every_row_of_what_changed_has_a_check(stage):
    missing = [row for row in what_changed_rows(stage) if (stage, row) not in FACTS]
    assert not missing, f"{stage}/README.md: rows of 'What changed' without a check in FACTS: {missing}"


@pytest.mark.parametrize("stage, row", list(FACTS))
def test_the_row_holds_against_the_installed_libraries(stage, row):
    assert row in what_changed_rows(stage), f"{stage}/README.md no longer has the row {row!r}: drop its check"
    FACTS[stage, row]()


# --- What the prose says about the libraries ---


def test_templates_escape_and_have_raw_and_set():
    assert tornado.template.Template("{{ x }}").generate(x="<b>") == b"&lt;b&gt;"
    assert tornado.template.Template("{% raw x %}").generate(x="<b>") == b"<b>"
    assert tornado.template.Template("{% set n = 2 %}{{ n }}").generate() == b"2"


def test_static_path_is_a_route_to_static_file_handler_with_initialize_arguments(tmp_path):
    app = tornado.web.Application([], static_path=str(tmp_path))
    rules = [rule for rule in app.wildcard_router.rules if rule.target is tornado.web.StaticFileHandler]
    assert rules and all(rule.target_kwargs == {"path": str(tmp_path)} for rule in rules)
    assert "path" in inspect.signature(tornado.web.StaticFileHandler.initialize).parameters
    assert "database" in inspect.signature(motor.web.GridFSHandler.initialize).parameters


def test_a_versioned_static_url_is_kept_ten_years_and_the_version_hashes_the_contents():
    assert tornado.web.StaticFileHandler.CACHE_MAX_AGE == 315360000 == 10 * 365 * 86400
    assert "hashlib.sha512()" in inspect.getsource(tornado.web.StaticFileHandler.get_content_version)


def test_redirect_is_a_302_by_default():
    source = inspect.getsource(tornado.web.RequestHandler.redirect)
    assert inspect.signature(tornado.web.RequestHandler.redirect).parameters["permanent"].default is False
    assert "status = 301 if permanent else 302" in source


def test_finish_answers_304_only_without_an_etag_of_the_handlers_own():
    source = inspect.getsource(tornado.web.RequestHandler.finish)
    assert '"Etag" not in self._headers' in source
    assert "if not self._headers_written:" in source


async def test_the_stages_error_page_shows_no_traceback_even_with_serve_traceback(stage_code, serve, monkeypatch):
    """Debug mode turns on serve_traceback: our write_error ignores it."""

    async def broken(self):
        raise RuntimeError("a detail for the log")

    home = getattr(stage_code, "HomeHandler", None) or stage_code.MainHandler  # GET /'s: HomeHandler from part 3
    monkeypatch.setattr(home, "get", broken)
    client = await serve(serve_traceback=True, visit=False)
    response = await client.fetch("/")
    assert response.code == 500 and "Traceback" not in response.body.decode()


# --- Part 4's lesson (part4_production/README.md): what it says of the libraries ---


def test_part_4_tornados_two_timeouts_default_to_an_hour_for_headers_and_none_for_a_body():
    import tornado.httpserver

    server = tornado.httpserver.HTTPServer(tornado.web.Application([]))
    assert server.conn_params.header_timeout == 3600 and server.conn_params.body_timeout is None
    assert server.conn_params.max_header_size == 64 * 1024  # the 431's "over 64 KiB"


def test_part_4_fork_processes_restarts_children_and_numbers_them():
    import tornado.process

    assert inspect.signature(tornado.process.fork_processes).parameters["max_restarts"].default is None
    assert "max_restarts defaults to 100" in tornado.process.fork_processes.__doc__
    assert tornado.process.task_id() is None  # in a process fork_processes() did not make


def test_part_4_pymongo_says_a_client_is_made_after_the_fork():
    import pymongo.synchronous.topology

    source = inspect.getsource(pymongo.synchronous.topology.Topology.open)
    assert "MongoClient must be created after any" in source and "forking" in source
    assert "MongoClient opened before fork. May not be entirely fork-safe" in source


def test_part_4_send_error_clears_the_headers_set_before_it():
    assert "self.clear()" in inspect.getsource(tornado.web.RequestHandler.send_error)
    assert "Resets all headers" in tornado.web.RequestHandler.clear.__doc__


def test_part_4_the_access_log_line_and_log_function():
    source = inspect.getsource(tornado.web.Application.log_request)
    assert '"log_function" in self.settings' in source
    assert source.index("< 400") < source.index("access_log.info") < source.index("< 500") < source.index(
        "access_log.warning") < source.index("access_log.error")
    assert '"%d %s %.2fms"' in source
    assert '"{} {} ({})"' in inspect.getsource(tornado.web.RequestHandler._request_summary)
    import logging
    from tornado.log import access_log

    assert access_log.name == "tornado.access"
    assert logging.lastResort.level == logging.WARNING  # with no logging set up, only warnings and errors show


def test_part_4_a_streaming_handlers_on_connection_close_ends_the_request():
    assert "set_exception(iostream.StreamClosedError())" in inspect.getsource(
        tornado.web.RequestHandler.on_connection_close)
    execute = inspect.getsource(tornado.web.RequestHandler._execute)
    assert "await self.request._body_future\n                except iostream.StreamClosedError:\n" \
           "                    return" in execute  # no on_finish() after it


def test_part_4_write_of_a_dict_is_json():
    source = inspect.getsource(tornado.web.RequestHandler.write)
    assert 'self.set_header("Content-Type", "application/json; charset=UTF-8")' in source


def test_part_4_the_reason_phrases_it_names():
    import http
    import signal

    assert [http.HTTPStatus(code).phrase for code in (408, 431, 503)] == [
        "Request Timeout", "Request Header Fields Too Large", "Service Unavailable"]
    assert signal.SIGTERM == 15  # a process killed by it exits with status -15 for Python's subprocess


# --- Part 2's lesson (part2_thumbnails/README.md), its chapters' claims ---


def test_part2_the_default_executor_is_sized_for_waiting_and_motors_pool_has_five_threads_a_core():
    """Chapter 2: run_in_executor(None, ...) is asyncio's default pool, min(32, cores + 4)
    threads (3.13 counts the cores this process may use); Motor's own has five a core."""
    import concurrent.futures.thread

    import motor.frameworks.tornado
    import tornado.platform.asyncio

    tornado_run = inspect.getsource(tornado.platform.asyncio.BaseAsyncIOLoop.run_in_executor)
    assert "self.asyncio_loop.run_in_executor(executor" in tornado_run
    assert "concurrent.futures.ThreadPoolExecutor(" in inspect.getsource(asyncio.BaseEventLoop.run_in_executor)
    pool = inspect.getsource(concurrent.futures.thread.ThreadPoolExecutor.__init__)
    assert re.search(r"max_workers = min\(32, \(os\.(process_)?cpu_count\(\) or 1\) \+ 4\)", pool)
    assert "cpu_count() * 5" in inspect.getsource(motor.frameworks.tornado)


def test_part2_draft_is_the_jpeg_decoders_alone_and_thumbnail_never_enlarges():
    """Chapter 1: of our four formats, only JPEG does anything with draft(); thumbnail()
    keeps the shape and never enlarges; Image.MIME gives each format's media type."""
    from PIL import GifImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

    for plugin in (PngImagePlugin.PngImageFile, GifImagePlugin.GifImageFile, WebPImagePlugin.WebPImageFile):
        assert plugin.draft is Image.Image.draft
    assert JpegImagePlugin.JpegImageFile.draft is not Image.Image.draft
    assert "pass" in inspect.getsource(Image.Image.draft).split('"""')[-1]
    image = Image.new("RGB", (300, 200))
    image.thumbnail((128, 128))
    assert image.size == (128, 85)
    image = Image.new("RGB", (100, 50))
    image.thumbnail((128, 128))
    assert image.size == (100, 50)
    Image.init()
    assert {Image.MIME[name] for name in ("PNG", "JPEG", "GIF", "WEBP")} == {
        "image/png", "image/jpeg", "image/gif", "image/webp"}


def test_part2_pillow_refuses_a_bomb_above_twice_max_image_pixels_and_warns_between():
    """Chapter 6: about 89 million pixels; an error above twice that, a warning from once."""
    assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3 == 89_478_485
    check = inspect.getsource(Image._decompression_bomb_check)
    assert "if pixels > 2 * MAX_IMAGE_PIXELS:" in check and "raise DecompressionBombError" in check
    assert "warnings.warn" in check and "DecompressionBombWarning" in check


def test_part2_an_options_type_is_its_defaults():
    """Chapter 4: define("port", default=int(...)) makes --port an integer, and --port=abc an error."""
    options = tornado.options.OptionParser()
    options.define("port", default=8000)
    options.parse_command_line(["app.py", "--port=8001"], final=False)
    assert options.port == 8001
    with pytest.raises(ValueError):  # not tornado.options.Error: main() catches both
        options.parse_command_line(["app.py", "--port=abc"], final=False)


def test_part2_the_xsrf_and_cross_origin_checks_skip_get_head_and_options():
    """Chapter 5: what Tornado checks, and which Sec-Fetch-Site values pass."""
    protection = inspect.getsource(tornado.web.RequestHandler._cross_origin_protection)
    assert 'if self.request.method in ("HEAD", "OPTIONS", "GET"):' in protection
    assert protection.index("check_xsrf_cookie()") < protection.index("_check_cross_origin(")
    check = inspect.getsource(tornado.web.RequestHandler._check_cross_origin)
    assert 'case "same-origin" | "none":' in check
    assert "return None  # probably non-browser client" in check
    assert 'origin in self.application.settings.get("trusted_origins", [])' in inspect.getsource(
        tornado.web.RequestHandler.check_trusted_origin)
    assert ".. versionadded:: 6.6" in tornado.web.RequestHandler.check_trusted_origin.__doc__  # "Tornado 6.6 added"


def test_part2_rotate_270_is_a_quarter_turn_clockwise():
    """Exercise 2's hint: Pillow counts its angles counter-clockwise."""
    image = Image.new("RGB", (300, 200), "blue")
    image.paste("red", (0, 0, 150, 200))  # the left half
    turned = image.transpose(Image.Transpose.ROTATE_270)
    assert turned.size == (200, 300)
    assert turned.getpixel((100, 10)) == (255, 0, 0) and turned.getpixel((100, 290)) == (0, 0, 255)


def test_part2_signed_cookies_and_authenticated_as_chapter_7_says():
    """Chapter 7: a signed cookie is read back for 31 days; current_user calls
    get_current_user() once a request, and templates see it; @authenticated redirects a
    GET or HEAD to login_url with ?next=, and answers 403 to any other method."""
    assert inspect.signature(tornado.web.RequestHandler.get_signed_cookie).parameters["max_age_days"].default == 31
    current_user = inspect.getsource(tornado.web.RequestHandler.current_user.fget)
    assert 'if not hasattr(self, "_current_user"):' in current_user
    assert "self._current_user = self.get_current_user()" in current_user
    assert "current_user=self.current_user" in inspect.getsource(tornado.web.RequestHandler.get_template_namespace)
    authenticated = inspect.getsource(tornado.web.authenticated)
    assert 'if self.request.method in ("GET", "HEAD"):' in authenticated
    assert "urlencode(dict(next=next_url))" in authenticated and "raise HTTPError(403)" in authenticated
    assert "get_login_url" in authenticated
    assert 'self.require_setting("login_url"' in inspect.getsource(tornado.web.RequestHandler.get_login_url)


# --- Part 1's lesson, its chapters (issue 23): what its prose says about the libraries ---


def test_part1_a_document_holds_16_mib_and_a_gridfs_chunk_255_kib():
    assert pymongo.common.MAX_BSON_SIZE == 16 * 1024**2
    assert gridfs.grid_file_shared.DEFAULT_CHUNK_SIZE == 255 * 1024 == 261120


def test_part1_the_driver_waits_30_seconds_for_a_database_unless_told():
    assert pymongo.common.SERVER_SELECTION_TIMEOUT == 30
    assert "serverSelectionTimeoutMS" not in (ROOT / "part1_basic" / "small" / "refuse.py").read_text()


def test_part1_an_object_id_is_12_bytes_that_begin_with_its_time_in_seconds():
    oid = ObjectId()
    assert len(oid.binary) == 12
    assert int.from_bytes(oid.binary[:4], "big") == int(oid.generation_time.timestamp())
    for text in ["not-an-id", "0123456789abcdef0123456z"]:  # the second: 24 characters, not all hexadecimal
        with pytest.raises(InvalidId):
            ObjectId(text)


def test_part1_isprintable_refuses_the_spaces_and_joiners_that_names_hold():
    assert " ".isprintable() and not "\u202f".isprintable() and not "\u200d".isprintable()
    assert [unicodedata.category(char) for char in "\n\r\x00\x85\u2028\u2029"] == ["Cc"] * 4 + ["Zl", "Zp"]


def test_part1_tornado_answers_405_to_a_method_not_defined_and_drops_a_heads_body():
    assert tornado.web.RequestHandler.head is tornado.web.RequestHandler._unimplemented_method
    assert "raise HTTPError(405)" in inspect.getsource(tornado.web.RequestHandler._unimplemented_method)
    assert 'if self.request.method == "HEAD":\n                chunk = b""' in inspect.getsource(
        tornado.web.RequestHandler.flush)


def test_part1_default_headers_are_set_when_a_request_begins_and_again_for_an_error_page():
    assert "self.set_default_headers()" in inspect.getsource(tornado.web.RequestHandler.clear)
    assert "self.clear()" in inspect.getsource(tornado.web.RequestHandler.__init__)
    assert "self.clear()" in inspect.getsource(tornado.web.RequestHandler.send_error)


def test_part1_tornados_own_error_page_gives_the_status_and_its_name():
    source = inspect.getsource(tornado.web.RequestHandler.write_error)
    assert '"<body>%(code)d: %(message)s</body></html>"' in source and '"message": escape.xhtml_escape(self._reason)' in source


def test_part1_a_gridfs_delete_takes_the_document_then_the_chunks_or_raises_no_file():
    assert motor.motor_tornado.MotorGridFSBucket.__delegate_class__ is gridfs.GridFSBucket
    source = inspect.getsource(gridfs.GridFSBucket.delete)
    assert source.index("self._files.delete_one") < source.index("self._chunks.delete_many")
    assert "raise NoFile" in source


# --- Part 3's lesson (part3_streaming/README.md), its chapters' claims (issue 23) ---


def test_part3_a_streamed_body_comes_in_pieces_of_64_kib_up_to_100_mib_by_default():
    """Chapter 1: data_received() gets up to 64 KiB at a time (chunk_size); the body's
    limit defaults to the stream's max_buffer_size, 100 MiB; a handler that does not
    stream has its body parsed whole, once it is all in."""
    import tornado.http1connection
    import tornado.iostream

    assert tornado.http1connection.HTTP1ConnectionParameters().chunk_size == 65536
    assert "else self.stream.max_buffer_size" in inspect.getsource(tornado.http1connection.HTTP1Connection.__init__)
    assert "max_buffer_size or 104857600" in inspect.getsource(tornado.iostream.BaseIOStream.__init__)
    assert 104857600 == 100 * 1024**2
    execute = inspect.getsource(tornado.web.RequestHandler._execute)
    assert "if not _has_stream_request_body(self.__class__):" in execute and "self.request._parse_body()" in execute


def test_part3_on_connection_close_ends_the_wait_for_a_streamed_body():
    """Chapter 1: RequestHandler.on_connection_close() fails the body's future; without
    super(), Tornado would wait for the body for ever."""
    source = inspect.getsource(tornado.web.RequestHandler.on_connection_close)
    assert "self.request._body_future.set_exception(iostream.StreamClosedError())" in source


def test_part3_grid_in_sends_48_mb_of_chunks_in_one_insert_many_and_makes_the_chunks_index():
    """Chapters 1 and 2: GridIn gathers chunks up to MongoDB's largest message, then
    inserts them with insert_many(); PyMongo makes {files_id: 1, n: 1}, unique, itself."""
    import gridfs.synchronous.grid_file as grid_file
    from pymongo.common import MAX_MESSAGE_SIZE

    assert gridfs.grid_file_shared._UPLOAD_BUFFER_SIZE == MAX_MESSAGE_SIZE == 48 * 1000 * 1000
    flush = inspect.getsource(grid_file.GridIn._flush_data)
    assert "self._buffered_docs_size >= _UPLOAD_BUFFER_SIZE" in flush and "insert_many(self._buffered_docs" in flush
    assert gridfs.grid_file_shared._C_INDEX == {"files_id": 1, "n": 1}
    assert "self._create_index(self._coll.chunks, _C_INDEX, True)" in inspect.getsource(grid_file.GridIn._ensure_indexes)


def test_part3_the_multipart_parser_does_no_io_and_tornado_reads_file_names_with_email():
    """Chapter 3: multipart's parse() yields a segment, its bytes, None, doing no I/O;
    Tornado decodes a part's parameters with the email package."""
    import multipart

    doc = multipart.PushMultipartParser.parse.__doc__
    assert "This method does not perform any IO on its own" in doc
    assert "followed by a single :data:`None` event" in doc
    assert "email.utils.decode_params(params)" in inspect.getsource(tornado.httputil._parse_header)


def test_part3_the_xsrf_token_may_be_a_query_argument_or_a_header_and_the_log_shows_the_uri():
    """Chapter 3: check_xsrf_cookie() reads the _xsrf argument (query or body) or the
    X-XSRFToken header; the access log's line holds request.uri, query included."""
    check = inspect.getsource(tornado.web.RequestHandler.check_xsrf_cookie)
    assert 'self.get_argument("_xsrf", None)' in check and '"X-Xsrftoken"' in check
    assert "self.request.uri" in inspect.getsource(tornado.web.RequestHandler._request_summary)


def test_part3_flush_resolves_once_the_kernel_has_the_bytes_not_the_client():
    """Chapter 4: a client that reads nothing: a flush() of 64 KiB resolves all the same
    (the socket's buffers take it); one of 64 MiB does not, until the client reads."""
    import socket

    from tornado.iostream import IOStream

    async def experiment():
        server, client = socket.socketpair()
        stream = IOStream(server)
        try:
            await asyncio.wait_for(stream.write(b"x" * 64 * 1024), 5)
            big = stream.write(b"x" * 64 * 1024 * 1024)
            await asyncio.sleep(0.3)
            waiting = not big.done()
            big.cancel()
            return waiting
        finally:
            stream.close()
            client.close()

    assert asyncio.run(experiment())
    assert "when the write has been completed" in tornado.iostream.IOStream.write.__doc__


def test_part3_no_lesson_or_notebook_says_flush_waits_for_the_client():
    """Issue 23, item 5: notebook 05 said an awaited flush() "waits until the client has
    taken the chunk"; it resolves once the kernel's buffer holds the bytes (above)."""
    texts = [*DOCUMENTS, *(ROOT / "notebooks").glob("*.py")]
    found = [f"{path.relative_to(ROOT)}: {match.group(0)!r}" for path in texts
             for match in re.finditer(r"(flush|waits?) until the client has|holds one piece", path.read_text())]
    assert not found, found


def test_part3_awaiting_a_done_future_gives_the_event_loop_no_turn():
    """Chapter 4: why send_pieces() awaits asyncio.sleep(0) after each read."""
    async def experiment():
        turns = []

        async def other():
            turns.append("other")

        task = asyncio.create_task(other())
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        for _ in range(100):
            await done  # the other task never runs meanwhile
        during = len(turns)
        await asyncio.sleep(0)  # it runs now
        await task
        return during, len(turns)

    assert asyncio.run(experiment()) == (0, 1)


def test_part3_a_grid_out_reads_its_chunks_through_one_sorted_cursor():
    """Chapter 4: readchunk() takes chunks from a find() on fs.chunks, sorted by n."""
    import gridfs.synchronous.grid_file as grid_file

    source = inspect.getsource(grid_file.GridOutChunkIterator._create_cursor)
    assert 'self._chunks.find(filter, sort=[("n", 1)]' in source


def test_part3_check_etag_header_understands_lists_weak_tags_and_star():
    """Chapter 5: If-None-Match compared weakly, lists and * understood."""
    source = inspect.getsource(tornado.web.RequestHandler.check_etag_header)
    assert 'rb\'\\*|(?:W/)?"[^"]*"\'' in source and 'etags[0] == b"*"' in source
    assert 'x[2:] if x.startswith(b"W/") else x' in source


def test_part3_digits_join_and_int_as_the_lessons_say():
    """Chapters 5, 6 and 8: \\d takes other scripts' digits, which int() reads; "²" is a
    digit to isdigit(); int() refuses over 4300 digits; join() drops what comes before an
    absolute path."""
    import os.path

    assert re.fullmatch(r"\d", "٣") and int("٣") == 3 and not re.fullmatch(r"[0-9]", "٣")
    assert "²".isdigit()
    with pytest.raises(ValueError):
        int("²")
    assert sys.get_int_max_str_digits() == 4300
    with pytest.raises(ValueError):
        int("1" * 4301)
    assert os.path.join("/srv/files", "/etc/passwd") == "/etc/passwd"


def test_part3_static_file_handler_hashes_64_mib_at_most_and_refuses_links_out_since_6_5_9():
    """Chapter 6: what the lesson says of StaticFileHandler in Tornado 6.6."""
    handler = tornado.web.StaticFileHandler
    assert handler.MAX_VERSION_CONTENT_SIZE == 64 * 1024 * 1024
    assert "hashlib.sha512()" in inspect.getsource(handler.get_content_version)
    assert ".. versionchanged:: 6.5.9\n       Symlinks pointing outside the served directory are no longer" in handler.__doc__


# --- Statements once false in the lessons, fixed: none may come back ---

DOCUMENTS = sorted(path for path in ROOT.rglob("*.md")
                   if not any(part.startswith(".") for part in path.relative_to(ROOT).parts))
FIXED = {
    r"decorators were removed in Tornado 6": "@gen.coroutine still exists in Tornado 6.6",
    r"about twice that in memory": "an upload buffered by Tornado costs about four times its size",
    r'create_index\(\[\("uploadDate", -1\)\]\)': "a one-key index cannot serve the two-key sort",
    r"only for a response that was not flushed yet": "finish() skips any response with its own Etag",
    r"an unknown id gave a 500": "the 2014 handler answered 404 to an unknown id",
    r"a bug: it is not an `OSError`, so a bomb gave a 500": "DecompressionBombError came in Pillow 5.0, 2018",
    r"yield \[save_original, save_thumbnail\]": "a line the 2014 article does not have",
    r"end of life in May 2026": "deprecated on 2026-05-14, critical fixes until 2027-05-14",
    r"`diff -ru [^`]*` shows": "diff -ru only names new files: -N shows them",
    r"debug mode serves tracebacks": "the stages' write_error never shows one",
    r"about 120 lines": "part 1's app.py is longer",
    r"would break the template": "a template turns any value into text",
    r"uses one core at most": "its thumbnail threads run on other cores",
    r"keeps a thread's\s+freed memory": "mallopt() fixes glibc's dynamic mmap threshold; arenas are shared",
    r"All of them need Python 3\.11": "Motor 3.7.1 asks for Python 3.9",
    r"holds the TLS certificate": "deploy/nginx.conf listens on plain port 80",
    r"the old API is gone;": "PyMongo's blocking gridfs.GridFS still has new_file() and put()",
}


def test_the_allocation_figures_part_4_states():
    assert Image.core.get_block_size() == 16 * 1024 * 1024  # Pillow's blocks: under glibc's 32 MiB ceiling
    if sys.version_info < (3, 13):  # measured on 3.11; the lesson says which versions
        assert gc.get_threshold()[0] == 700


@pytest.mark.parametrize("pattern", list(FIXED))
def test_a_fixed_statement_does_not_come_back(pattern):
    found = [f"{path.relative_to(ROOT)}: {match.group(0)!r}" for path in DOCUMENTS
             for match in re.finditer(pattern, path.read_text())]
    assert not found, f"false ({FIXED[pattern]}): {found}"
