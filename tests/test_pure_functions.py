"""The stages' pure functions, called directly: no server, no database, milliseconds.

What a header or a name turns into is checked here case by case; the HTTP tests
(test_part3_downloads.py, test_part3_file_types.py, test_bad_input.py) keep a few of
the cases, to show that the handlers use these functions and send what they return."""

import datetime
import email.utils
import io
import re
import urllib.parse

import pytest
import tornado.httputil
import tornado.web
from gridfs import DEFAULT_CHUNK_SIZE as CHUNK
from hypothesis import given
from hypothesis import strategies as st
from multipart import MultipartError, MultipartSegment, PushMultipartParser
from PIL import Image

from coursekit.images import encoded, image_bytes, jpeg_with_scans

RUNS_ON = ["part1_basic", "part2_thumbnails", "part3_streaming", "part4_production", "part5_live"]
# The functions that part 3 adds, which part 4 runs unchanged.
FROM_PART3 = pytest.mark.runs_on("part3_streaming", "part4_production", "part5_live")

UTC = datetime.UTC
SIZE = 12 * CHUNK + 1234  # test_part3_downloads.py's big file: the cases moved from there read the same


# --- requested_range(): what a Range header asks of a file ---


@FROM_PART3
@pytest.mark.parametrize("header, wanted", [
    ("bytes=0-99", (0, 100)),  # the first bytes
    ("bytes=261000-262000", (261000, 262001)),  # across a chunk boundary
    (f"bytes={5 * CHUNK}-{7 * CHUNK - 1}", (5 * CHUNK, 7 * CHUNK)),  # whole chunks
    ("bytes=0-0", (0, 1)),  # one byte: the last position is included
    (f"bytes={SIZE - 1}-{SIZE - 1}", (SIZE - 1, SIZE)),  # the last byte
    ("bytes=-500", (SIZE - 500, SIZE)),  # the last 500
    ("bytes=3000000-", (3000000, SIZE)),  # from there to the end
    ("bytes=0-99999999", (0, SIZE)),  # past the end: as much as there is
    ("bytes=-99999999", (0, SIZE)),  # more than the file: all of it
    ("bytes=0005-0009", (5, 10)),  # leading zeros are allowed
    ("  bytes=0-99\t", (0, 100)),  # whitespace around the header is not part of it
])
def test_one_range_is_the_bytes_it_names(stage_code, header, wanted):
    assert stage_code.requested_range(header, SIZE) == wanted


# 416: start >= end. requested_range() returns where the range would begin, past the end.
@FROM_PART3
@pytest.mark.parametrize("header, unsatisfiable", [
    ("bytes=3500000-", (3500000, SIZE)),  # starts past the end
    (f"bytes={SIZE}-", (SIZE, SIZE)),  # starts one byte past the last
    (f"bytes={SIZE}-{SIZE + 10}", (SIZE, SIZE)),
    ("bytes=-0", (SIZE, SIZE)),  # the last 0 bytes: none
    (f"bytes={'9' * 5000}-", (10**18, SIZE)),  # 5000 digits: no ValueError from int()
])
def test_a_range_outside_the_file_is_empty(stage_code, header, unsatisfiable):
    assert stage_code.requested_range(header, SIZE) == unsatisfiable


@FROM_PART3
@pytest.mark.parametrize("header", [
    "",  # no Range header
    "bytes=abc",
    "bytes=5-3",  # ends before it starts
    "items=0-9",  # another unit
    "bytes=0-1,5-9",  # more than one range: the whole file, as RFC 9110 allows
    "bytes=-",
    "bytes=--5",
    "bytes=+5-9",
    "bytes=0x10-0x20",
    "bytes = 0-9",  # no whitespace inside
    "bytes=0 -9",
    "bytes=\u00b2-\u00b3",  # superscript digits: str.isdigit() takes them, the parser does not
    "bytes=\u0663-\u0669",  # Arabic-Indic digits, which \d would take
    "bytes=\uff10-\uff19",  # fullwidth digits
])
def test_a_header_that_is_not_one_byte_range_asks_for_nothing(stage_code, header):
    assert stage_code.requested_range(header, SIZE) is None


@FROM_PART3
def test_a_range_of_a_huge_number_is_capped_not_parsed(stage_code):
    nines = "9" * 5000
    assert stage_code.requested_range(f"bytes=5-{nines}", SIZE) == (5, SIZE)  # the rest of the file
    assert stage_code.requested_range(f"bytes=-{nines}", SIZE) == (0, SIZE)  # all of it


@FROM_PART3
@pytest.mark.parametrize("header", ["bytes=0-99", "bytes=0-"])
def test_a_range_from_the_start_of_an_empty_file_is_empty(stage_code, header):
    # A file of --files_dir may be empty: it has no first byte (416).
    assert stage_code.requested_range(header, 0) == (0, 0)


@FROM_PART3
@pytest.mark.parametrize("header", ["bytes=-5", "bytes=-1"])
def test_the_end_of_an_empty_file_is_the_whole_empty_file(stage_code, header):
    # RFC 9110, 14.1.1: of an empty file, a suffix range is the one satisfiable kind: not a 416.
    assert stage_code.requested_range(header, 0) is None


@FROM_PART3
def test_a_range_of_a_one_byte_file(stage_code):
    assert stage_code.requested_range("bytes=0-0", 1) == (0, 1)
    assert stage_code.requested_range("bytes=-5", 1) == (0, 1)
    assert stage_code.requested_range("bytes=1-", 1) == (1, 1)  # 416


# --- byte_number(): a number of a Range header, capped ---


@FROM_PART3
@pytest.mark.parametrize("digits, number", [
    ("0", 0),
    ("000", 0),
    ("007", 7),
    ("9" * 18, 10**18 - 1),  # the largest number read as it is
    ("1" + "0" * 18, 10**18),  # 19 digits: past the end of any file
    ("9" * 19, 10**18),
    ("9" * 5000, 10**18),  # int() would refuse over 4300 digits
    ("0" * 5000 + "42", 42),  # leading zeros do not count towards the cap
])
def test_a_byte_number_past_18_digits_is_10_to_the_18(stage_code, digits, number):
    assert stage_code.byte_number(digits) == number


# --- http_date() and to_the_second(): the validators' dates ---

NOV_6_1994 = datetime.datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)


@FROM_PART3
@pytest.mark.parametrize("value", [
    "Sun, 06 Nov 1994 08:49:37 GMT",  # the IMF-fixdate servers send
    "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850's, which RFC 9110 says to accept
    "Sun Nov  6 08:49:37 1994",  # asctime()'s, with no zone: UTC
    "Sun, 06 Nov 1994 08:49:37 -0000",  # "no zone given" in RFC 5322: UTC too
    "Sun, 06 Nov 1994 10:49:37 +0200",  # the same instant elsewhere
])
def test_an_http_date_is_read_as_an_aware_datetime(stage_code, value):
    date = stage_code.http_date(value)
    assert date == NOV_6_1994
    assert date.utcoffset() is not None  # aware: comparable with ours


@FROM_PART3
@pytest.mark.parametrize("value", [
    None,  # no header
    "",
    "not a date",
    "Sun, 32 Nov 1994 08:49:37 GMT",  # no such day
    "Sun, 06 Nov 1994 25:49:37 GMT",  # no such hour
    "Sun, 06 Nov 99999 08:49:37 GMT",  # past datetime's years
    "1994-11-06T08:49:37Z",  # ISO 8601 is not an HTTP date
    "784111777",  # nor is a timestamp
])
def test_what_is_not_an_http_date_is_none(stage_code, value):
    assert stage_code.http_date(value) is None


@FROM_PART3
@pytest.mark.parametrize("date", [
    datetime.datetime(1994, 11, 6, 8, 49, 37, 999000),  # GridFS's: naive, in UTC, to the millisecond
    datetime.datetime(1994, 11, 6, 8, 49, 37, 123456, tzinfo=UTC),  # a file's mtime: aware, to the microsecond
    NOV_6_1994,
])
def test_our_dates_are_compared_to_the_second_in_utc(stage_code, date):
    exact = stage_code.to_the_second(date)
    assert exact == NOV_6_1994
    assert exact.tzinfo is UTC
    # What Last-Modified says, read back, is that date: If-Modified-Since and If-Range match it.
    assert stage_code.http_date(email.utils.format_datetime(exact, usegmt=True)) == exact


# --- human_size(): a size as people read it ---


@FROM_PART3
@pytest.mark.parametrize("size, shown", [
    (0, "0 bytes"),
    (1023, "1023 bytes"),
    (1024, "1.0 KiB"),
    (1536, "1.5 KiB"),  # the listing's example
    (1024**2, "1.0 MiB"),
    (int(2.25 * 1024**2), "2.2 MiB"),  # to one decimal, rounded half to even
    (4 * 1024**3, "4.0 GiB"),  # the default upload limit, as the 413 says it
    (1024**4, "1.0 TiB"),
    (1024**5, "1024.0 TiB"),  # TiB is the largest unit
])
def test_a_size_is_shown_in_the_largest_unit_under_1024(stage_code, size, shown):
    assert stage_code.human_size(size) == shown


@FROM_PART3
def test_a_size_just_under_a_unit_is_not_shown_as_1024_of_the_smaller(stage_code):
    assert stage_code.human_size(1024**2 - 1) == "1.0 MiB"


# --- claimed_type(): the type a client gave a file, kept for the listing ---


@FROM_PART3
@pytest.mark.parametrize("content_type, filename, claimed", [
    ("text/html", "page", "text/html"),
    ("text/html; charset=utf-8", "page", "text/html"),  # parameters dropped
    ("TEXT/HTML", "page", "text/html"),  # types are case-insensitive: kept in lower case
    (" text/plain ", "notes", "text/plain"),
    ("image/svg+xml", "drawing", "image/svg+xml"),
    ("application/vnd.ms-excel", "sheet", "application/vnd.ms-excel"),
    (None, "notes.pdf", "application/pdf"),  # no type: the name's
    ("", "page.html", "text/html"),
    ("garbage", "photo.png", "image/png"),  # not a type: the name's
    ("text/html<script>", "notes.txt", "text/plain"),
    ("a/b/c", "archive.gz", "application/octet-stream"),  # mimetypes gives .gz no type, only an encoding
    ("text/", "notes.txt", "text/plain"),
    ("", "no extension", "application/octet-stream"),
])
def test_the_claimed_type_is_the_clients_if_it_looks_like_one_else_the_names(stage_code, content_type, filename,
                                                                            claimed):
    assert stage_code.claimed_type(content_type, filename) == claimed


@FROM_PART3
def test_a_claimed_type_of_non_ascii_letters_is_not_one(stage_code):
    assert stage_code.claimed_type("t\u00ebxt/plain", "notes.txt") == "text/plain"


# --- part_filename(): the file name of a form's part ---


def form_part(disposition):
    """The MultipartSegment (a form part's headers) that the stages' parser makes of a
    part with this Content-Disposition."""
    body = b"--x\r\nContent-Disposition: " + disposition + b"\r\n\r\ndata\r\n--x--\r\n"
    return next(part for part in PushMultipartParser("x").parse(body) if isinstance(part, MultipartSegment))


@FROM_PART3
@pytest.mark.parametrize("disposition, filename", [
    (b'form-data; name="file"; filename="a.png"', "a.png"),
    (b"form-data; name=file; filename=plain.txt", "plain.txt"),  # unquoted
    (b'form-data; name="file"; filename="a\\"b.txt"', 'a"b.txt'),  # an escaped quote
    (b'form-data; name="file"; filename="C:\\\\dir\\\\a.txt"', "C:\\dir\\a.txt"),  # escaped backslashes
    ('form-data; name="file"; filename="\u00e9t\u00e9.txt"'.encode(), "\u00e9t\u00e9.txt"),  # UTF-8, as browsers send
    (b"form-data; name=file; filename*=UTF-8''%C3%A9t%C3%A9.txt", "\u00e9t\u00e9.txt"),  # RFC 2231
    (b"form-data; name=file; filename*=iso-8859-1''%E9t%E9.txt", "\u00e9t\u00e9.txt"),
    # Decoded as it is: check_filename() refuses it later, for its line break.
    (b"form-data; name=file; filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x.png", "evil\r\nSet-Cookie: x.png"),
    (b'form-data; name="file"; filename=""', ""),  # a form sent with no file chosen
    (b'form-data; name="file"', None),  # a field, not a file
])
def test_a_parts_file_name_is_read_as_the_email_package_reads_it(stage_code, disposition, filename):
    assert stage_code.part_filename(form_part(disposition)) == filename


@FROM_PART3
def test_a_file_name_in_a_charset_python_cannot_decode_is_a_400(stage_code):
    with pytest.raises(tornado.web.HTTPError) as refused:
        stage_code.part_filename(form_part(b"form-data; name=file; filename*=idna''%ff.png"))
    assert refused.value.status_code == 400
    assert refused.value.log_message == "That file name cannot be decoded: send it in UTF-8."


# --- attachment(): a Content-Disposition that saves the file under its name ---


@FROM_PART3
@pytest.mark.parametrize("filename, header", [
    ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
    ('quote"back\\slash%.txt', "attachment; filename=\"quote_back_slash_.txt\"; "
                               "filename*=UTF-8''quote%22back%5Cslash%25.txt"),
    ("\u00e9t\u00e9 \u65e5\u672c.txt",
     "attachment; filename=\"_t_ __.txt\"; filename*=UTF-8''%C3%A9t%C3%A9%20%E6%97%A5%E6%9C%AC.txt"),
    ("\U0001f600.png", "attachment; filename=\"_.png\"; filename*=UTF-8''%F0%9F%98%80.png"),  # one _ a character
    # No line break gets into the header, whatever check_filename() let through.
    ("a\r\nSet-Cookie: x", "attachment; filename=\"a__Set-Cookie: x\"; filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x"),
    ("del\x7f", "attachment; filename=\"del_\"; filename*=UTF-8''del%7F"),
    # ' and * end an RFC 5987 value or mark one: encoded; ; and / are safe inside quotes.
    ("it's*.txt", "attachment; filename=\"it's*.txt\"; filename*=UTF-8''it%27s%2A.txt"),
    ("a;b/c~-_.txt", "attachment; filename=\"a;b/c~-_.txt\"; filename*=UTF-8''a%3Bb%2Fc~-_.txt"),
])
def test_an_attachment_gives_a_safe_fallback_and_the_exact_name(stage_code, filename, header):
    assert stage_code.attachment(filename) == header


ATTACHMENT = re.compile(r"attachment; filename=\"([^\"]*)\"; filename\*=UTF-8''(\S*)")


@FROM_PART3
@given(filename=st.text(max_size=40))
def test_any_name_survives_its_attachment_header_exactly(stage_code, filename):
    header = stage_code.attachment(filename)
    assert header.isascii() and header.isprintable()
    fallback, encoded = ATTACHMENT.fullmatch(header).groups()
    assert urllib.parse.unquote(encoded, errors="strict") == filename
    assert len(fallback) == len(filename)  # a character for each
    assert not set(fallback) & set('"\\%')


# --- check_filename(): the names every stage refuses ---


@pytest.mark.parametrize("filename", [
    "photo.png",
    "\u00e9t\u00e9 \u65e5\u672c.txt",  # accents, CJK
    "a\u00a0b\u3000c.png",  # a no-break space, an ideographic space
    "\U0001f469\u200d\U0001f4bb.png",  # an emoji and its zero-width joiner
    "\u05e9\u05dc\u05d5\u05dd\u200f.txt",  # a right-to-left mark: a mark, not an override
    "n" * 251 + ".png",  # 255 characters: the limit
    "\u00e9" * 255,  # characters, not bytes (510 of them in UTF-8)
])
def test_names_people_use_are_accepted(stage_code, filename):
    assert stage_code.check_filename(filename) is None


@pytest.mark.parametrize("filename, reason", [
    ("n" * 252 + ".png", "too long"),
    ("\U0001f600" * 256, "too long"),
    ("evil\r\nSet-Cookie: x.png", "control characters"),
    ("tab\there.png", "control characters"),
    ("nul\x00.png", "control characters"),
    ("del\x7f.png", "control characters"),
    ("next\u0085line.png", "control characters"),  # C1: a line break to some
    ("two\u2028lines.png", "control characters"),  # Zl, the line separator: no control, a line break
    ("two\u2029paragraphs.png", "control characters"),  # Zp, the paragraph separator
    *[(f"photo{char}gnp.exe", "bidirectional") for char in "\u202a\u202b\u202c\u202d\u202e"],  # embeddings, overrides
    *[(f"a{char}b.png", "bidirectional") for char in "\u2066\u2067\u2068\u2069"],  # isolates
])
def test_long_names_control_characters_and_bidirectional_overrides_are_a_400(stage_code, filename, reason):
    with pytest.raises(tornado.web.HTTPError, match=reason) as refused:
        stage_code.check_filename(filename)
    assert refused.value.status_code == 400


# --- redact(): a database URI fit for a log line ---


@pytest.mark.parametrize("uri, shown", [
    ("mongodb://localhost:27017", "mongodb://localhost:27017"),
    ("mongodb://ann:s3cret@db.example.com/?tls=true", "mongodb://***@db.example.com/?tls=true"),
    ("mongodb+srv://ann:p%40ss@cluster0.example.net/", "mongodb+srv://***@cluster0.example.net/"),
    ("mongodb://ann@db.example.com/", "mongodb://***@db.example.com/"),  # a user name alone
    ("mongodb://ann:pw@h1:27017,h2:27017/app?replicaSet=rs", "mongodb://***@h1:27017,h2:27017/app?replicaSet=rs"),
    ("mongodb://db.example.com/?appName=a@b", "mongodb://db.example.com/?appName=a@b"),  # an @ after the hosts
])
def test_a_uri_is_logged_without_its_credentials(stage_code, uri, shown):
    assert stage_code.redact(uri) == shown


# --- decoding_cost() (part 4): the memory an image takes to decode, from its header ---
# test_part4_load.py checks RGB, RGBA and L PNGs and JPEGs, drafted and progressive.


# (the image, its bytes a pixel beyond the decoders' own buffers), at 100 x 50 pixels.
DECODING_COSTS = {
    # 1 byte a pixel, and for_png()'s RGB copy of 4.
    "palette PNG": (lambda: image_bytes("PNG", (100, 50), 3, "P"), 1 + 4),
    "GIF": (lambda: image_bytes("GIF", (100, 50), "blue"), 1 + 4),
    "black and white PNG": (lambda: image_bytes("PNG", (100, 50), 1, "1"), 1 + 4),
    "16-bit grey PNG": (lambda: image_bytes("PNG", (100, 50), 40000, "I;16"), 2 + 4),
    "CMYK JPEG": (lambda: image_bytes("JPEG", (100, 50), (0, 200, 200, 0), "CMYK"), 4 + 4),
    # Alpha: a premultiplied copy to resize, 4 bytes a pixel.
    "grey and alpha PNG": (lambda: image_bytes("PNG", (100, 50), (90, 200), "LA"), 4 + 4),
    # A transparent colour: for_png()'s RGBA copy, and the premultiplied one.
    "palette PNG with transparency": (lambda: encoded(Image.new("P", (100, 50), 0), "PNG", transparency=0), 1 + 4 + 4),
    "grey PNG with a transparent grey": (lambda: encoded(Image.new("L", (100, 50), 7), "PNG", transparency=7),
                                         1 + 4 + 4),
    # WebP: libwebp's buffers, 12 bytes a pixel.
    "RGB WebP": (lambda: image_bytes("WEBP", (100, 50), "teal"), 4 + 12),
    "RGBA WebP": (lambda: image_bytes("WEBP", (100, 50), (0, 128, 0, 128), "RGBA"), 4 + 4 + 12),
}


@pytest.mark.runs_on("part4_production", "part5_live")
@pytest.mark.parametrize("case", DECODING_COSTS)
def test_the_cost_of_decoding_each_kind_of_image(stage_code, case):
    make, bytes_a_pixel = DECODING_COSTS[case]
    image = Image.open(io.BytesIO(make()))
    cost = stage_code.decoding_cost(image, 100 * 50) - stage_code.DECODER_OVERHEAD
    assert cost == 100 * 50 * bytes_a_pixel
    # The full size counts for a progressive JPEG alone.
    assert stage_code.decoding_cost(image, 10**9) - stage_code.DECODER_OVERHEAD == cost


# --- scans(): how many passes a progressive JPEG makes over its pixels ---

FROM_PART2 = pytest.mark.runs_on("part2_thumbnails", "part3_streaming", "part4_production", "part5_live")


@FROM_PART2
@pytest.mark.parametrize("count", [10, 64, 65, 1300])  # libjpeg writes 10
def test_the_scans_of_a_jpeg_are_counted_and_the_file_left_where_it_was(stage_code, count):
    file = io.BytesIO(jpeg_with_scans((64, 48), count))
    file.seek(7)
    assert stage_code.scans(file) == count
    assert file.tell() == 7


@FROM_PART2
def test_a_scan_marker_across_two_reads_is_counted_once(stage_code):
    for at in (1024 * 1024 - 2, 1024 * 1024 - 1, 1024 * 1024):  # before, across, after the boundary
        data = bytearray(2 * 1024 * 1024)
        data[at : at + 2] = b"\xff\xda"
        assert stage_code.scans(io.BytesIO(bytes(data))) == 1, at


@FROM_PART2
def test_a_progressive_jpeg_of_max_scans_is_thumbnailed_one_more_is_refused(stage_code, stage):
    def thumbnail(data):
        if stage == "part2_thumbnails":
            return stage_code.make_thumbnail(data)
        from_part4 = stage in ("part4_production", "part5_live")
        budget = [stage_code.DecodeBudget(2**30)] if from_part4 else []  # from part 3: a file
        return stage_code.make_thumbnail(io.BytesIO(data), *budget)

    assert thumbnail(jpeg_with_scans((400, 300), stage_code.MAX_SCANS))[1:3] == (400, 300)
    with pytest.raises(stage_code.NotAnImage, match="passes"):
        thumbnail(jpeg_with_scans((400, 300), stage_code.MAX_SCANS + 1))


# --- declared_size() and malformed(): a streamed upload's headers, read with care ---


@FROM_PART3
@pytest.mark.parametrize("header, size", [
    ("1234", 1234), ("0", 0), ("007", 7),
    ("200000000, 200000000", 200000000),  # repeated by a proxy: Tornado takes it
    ("5,5,5", 5),
    ("5, 6", None),  # values that disagree: Tornado's bare 400
    ("\u00b2", None), ("١٢", None),  # digits, but not ASCII
    ("9" * 19, int("9" * 19)), ("9" * 20, None), ("9" * 5000, None),  # int() refuses over 4300 digits
    ("-1", None), ("1e3", None), ("", None),
])
def test_the_declared_size_is_read_as_tornado_reads_it(stage_code, header, size):
    headers = tornado.httputil.HTTPHeaders({"Content-Length": header} if header else {})
    assert stage_code.declared_size(headers) == size


@FROM_PART3
def test_a_form_whose_headers_are_not_utf8_is_told_so_without_a_repr(stage_code):
    parser = PushMultipartParser("x")
    body = b'--x\r\nContent-Disposition: form-data; name="file"; filename="caf\xe9.png"\r\n\r\nabc\r\n--x--\r\n'
    with pytest.raises(MultipartError) as refused:
        list(parser.parse(body))
    message = stage_code.malformed(refused.value).log_message
    assert message == "That form data is malformed: its headers cannot be decoded. Send the file name in UTF-8."
    assert stage_code.malformed(MultipartError("No final boundary")).log_message == (
        "That form data is malformed: No final boundary")
