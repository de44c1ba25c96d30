"""What a request's headers ask for, read as pure functions: a `Range` of bytes, and
the dates of If-Modified-Since and If-Range."""

import datetime
import email.utils
import re


def requested_range(header, size):
    """The bytes that a `Range: bytes=...` header asks of `size` bytes, as (start, end),
    end excluded; start >= end if none of them exist (416).

    None if it is not one byte range: the whole file is then sent, as RFC 9110 allows."""
    match = re.fullmatch(r"bytes=([0-9]*)-([0-9]*)", header.strip())  # \d would take "٣" too
    if not match or match.groups() == ("", ""):
        return None
    first, last = (byte_number(digits) if digits else None for digits in match.groups())
    if first is None:  # bytes=-500: the last 500 bytes
        # Of an empty file, RFC 9110 calls a suffix range satisfiable, and it holds no
        # byte, which a 206 cannot say: the whole file, empty, as a 200.
        return (max(size - last, 0), size) if size else None
    if last is not None and last < first:
        return None
    return first, min(last + 1, size) if last is not None else size


def byte_number(digits):
    """A number of a Range header. Past 18 digits it is beyond the end of any file,
    whatever its value: int() refuses strings of over 4300 digits."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10**18


def http_date(value):
    """The date an HTTP header gives, in UTC; None if there is none."""
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # no header, or not a date
        return None
    return date if date.tzinfo else date.replace(tzinfo=datetime.UTC)


def to_the_second(date):
    """A date of ours (in UTC, aware or not) as precise as an HTTP date: to the second."""
    return date.replace(microsecond=0, tzinfo=datetime.UTC)
