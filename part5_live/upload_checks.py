"""What an upload claims, read with care: its type, the file name of a form's part;
and sizes as people read them, for the refusals and the home page."""

import email.message
import mimetypes
import re

import tornado.web
from multipart import parse_options_header


def human_size(size):
    """A size as people read it: 1536 -> '1.5 KiB'."""
    if size < 1024:
        return f"{size} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if round(size, 1) < 1024 or unit == "TiB":  # as shown: 1023.96 KiB is '1.0 MiB'
            return f"{size:.1f} {unit}"


def claimed_type(content_type, filename):
    """The type a client gave a file (or its name suggests), if it looks like one."""
    content_type = parse_options_header(content_type or "")[0]
    if re.fullmatch(r"[\w.+-]+/[\w.+-]+", content_type, re.ASCII):  # \w: ASCII letters only
        return content_type
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def declared_size(headers):
    """The body's size as its Content-Length says, or None if Tornado will refuse it
    with a bare 400: ASCII digits only ("²".isdigit() is true too), 19 at most (more
    than any disk holds), and the same value each time if a proxy repeated it ("5, 5")."""
    values = set(re.split(r",\s*", headers.get("Content-Length", "")))
    value = values.pop() if len(values) == 1 else ""
    return int(value) if re.fullmatch(r"[0-9]{1,19}", value) else None


def malformed(error):
    """The 400 for a form that the multipart parser refused, in words: its message may
    hold a Python repr, as ('Segment header failed to decode', UnicodeDecodeError(...))."""
    if any(isinstance(cause, UnicodeDecodeError) for cause in error.args):
        return tornado.web.HTTPError(
            400, "That form data is malformed: its headers cannot be decoded. Send the file name in UTF-8.")
    return tornado.web.HTTPError(400, f"That form data is malformed: {error.args[0]}")


def part_filename(part):
    """The file name of a form's part, read as Tornado reads it, as the email package
    does: quotes, backslashes and RFC 2231's `filename*=` included."""
    message = email.message.Message()
    message["Content-Disposition"] = part.header("Content-Disposition", "")
    try:
        return message.get_filename()
    except ValueError:  # a `filename*=` charset Python has no decoder for, as idna: a UnicodeError
        raise tornado.web.HTTPError(400, "That file name cannot be decoded: send it in UTF-8.")
