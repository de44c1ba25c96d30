"""Thumbnails: an upload read back from GridFS as an image and made small, on a few
threads of our own, off the event loop; a file that is no image we know is kept as a
plain file. From part 4, decoded within a memory budget (decode_budget.py)."""

import io
import os
from concurrent.futures import ThreadPoolExecutor

from PIL import ExifTags, Image, ImageOps

from decode_budget import decoding_cost

# The formats we accept, as Pillow names them, and the type we serve each as:
# image types that cannot carry scripts (no SVG, no HTML).
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
THUMBNAIL_SIZE = (128, 128)
QUARTER_TURNS = {5, 6, 7, 8}  # EXIF orientations that show the image on its side
DAMAGED = "That image is truncated or damaged: it cannot be decoded."
# A progressive JPEG is drawn in scans, each a pass over every pixel, as long as a
# whole plain JPEG takes, and a few bytes can hold one: 1,300 of them in 134 KB took
# 15 s to decode (bench/thumbnail.py). Encoders write about 10.
MAX_SCANS = 64

# Making a thumbnail is CPU work. It runs on a few threads of our own, which Pillow
# keeps busy without holding Python's lock, while the event loop goes on serving.
# One per core, less one left for the event loop: more would only queue for the
# same cores, and a burst of uploads waits its turn in the pool's queue.
THUMBNAIL_THREADS = max(1, (os.cpu_count() or 1) - 1)


def thumbnail_pool():
    """A new pool of THUMBNAIL_THREADS threads: each application makes its own."""
    return ThreadPoolExecutor(THUMBNAIL_THREADS, thread_name_prefix="thumbnail")


class NotAnImage(ValueError):
    """An upload we refuse: its message says why, for the visitor."""


def make_thumbnail(file, budget):
    """Read `file` as an image; return its type, width, height, and a PNG thumbnail.

    None if it is no image we know: it is then kept as a plain file. This blocks
    for as long as reading and decoding take: run it on a thread, not on the loop.
    Before decoding, it waits for the memory that takes from `budget`, a DecodeBudget."""
    try:
        image = Image.open(file, formats=list(IMAGE_TYPES))
    except Image.DecompressionBombError:  # not an OSError
        raise NotAnImage("That image has too many pixels to be decoded safely.")
    except Image.UnidentifiedImageError:  # no format we accept
        return None
    except Exception as error:
        # Pillow raises more than OSError on hostile files: ValueError (text chunks
        # past its limits, a truncated header, tiles outside the image), SyntaxError
        # (broken PNG chunk lists), struct.error, EOFError...
        raise unreadable(error) from error
    with image:
        # Pillow calls a JPEG holding a second picture, as some cameras write, an MPO.
        image_type = IMAGE_TYPES["JPEG" if image.format == "MPO" else image.format]
        width, height = image.size
        # Pillow refuses only above twice this limit (and only warns between).
        if width * height > Image.MAX_IMAGE_PIXELS:
            raise NotAnImage("That image has too many pixels to be decoded safely.")
        if image.info.get("progressive") and scans(image.fp) > MAX_SCANS:
            raise NotAnImage(f"That JPEG is drawn in over {MAX_SCANS} passes: too many to decode.")
        try:
            # The fast path: a JPEG decodes at 1/2, 1/4 or 1/8 of its size for the asking.
            image.draft(None, (2 * THUMBNAIL_SIZE[0], 2 * THUMBNAIL_SIZE[1]))
            with budget.lend(decoding_cost(image, width * height)):
                image.load()  # decode it all now, so that a damaged file is caught here
                if image.getexif().get(ExifTags.Base.Orientation) in QUARTER_TURNS:
                    width, height = height, width  # as a browser shows it
                thumbnail = for_png(image)
                thumbnail.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
                thumbnail = ImageOps.exif_transpose(thumbnail)  # a new image, always
                image.close()  # its pixels are freed before the budget takes their memory back
            png = io.BytesIO()
            thumbnail.save(png, "PNG")
        except Exception as error:  # whatever Pillow raises, as above
            raise unreadable(error) from error
        return image_type, width, height, png.getvalue()


def unreadable(error):
    """What a visitor is told of an image that Pillow could not read."""
    # Pillow reads at most 1 MB of a PNG's text or of its colour profile (MAX_TEXT_CHUNK,
    # MAX_TEXT_MEMORY): a few kilobytes of zlib can inflate past that, so it stops.
    if "MAX_TEXT" in str(error):
        return NotAnImage("That image carries over 1 MB of text or colour profile, more than we read.")
    return NotAnImage(DAMAGED)


def scans(file):
    """How many scans a JPEG file holds: its SOS markers, which its compressed data
    cannot hold (a 0xFF there is followed by 0x00). The file is read from its start,
    and left where it was."""
    where, count, last = file.tell(), 0, b""
    file.seek(0)
    while block := file.read(1024 * 1024):
        count += (last + block).count(b"\xff\xda")  # one byte back: a marker across two blocks
        last = block[-1:]
    file.seek(where)
    return count


def for_png(image):
    """`image` in a mode that resizes smoothly and saves as PNG: L, LA, RGB or RGBA."""
    if image.mode == "I;16":  # 16-bit grey: convert("L") would clip it, not scale it
        return image.point(lambda value: value / 256).convert("L")
    if image.mode in ("L", "LA", "RGB", "RGBA") and "transparency" not in image.info:
        return image
    # P and 1 would be resized without smoothing, PNG cannot hold CMYK, and a
    # transparent colour is best kept as an alpha channel.
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def thumbnail_from_gridfs(bucket, file_id, budget):
    """make_thumbnail() of a file read back from GridFS with PyMongo's blocking API,
    which fits a thread: Motor is PyMongo run on threads, with the same client."""
    with bucket.open_download_stream(file_id) as file:
        return make_thumbnail(file, budget)
