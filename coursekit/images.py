"""Images for uploads: sound ones of any format and mode, photo-like JPEGs as big as
asked, and damaged or crafted ones, as an attacker (or a broken disk) makes them."""

import io
import struct
import zlib

from PIL import Image, ImageOps


def encoded(image, format, **params):
    """`image` saved in `format` (with Pillow's `params` for it), as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def image_bytes(format="PNG", size=(40, 30), color="red", mode="RGB"):
    return encoded(Image.new(mode, size, color), format)


# Detail levels of a photo: how much fine grain goes on top of its smooth scene. More
# detail makes a bigger file, and more of it to decode on any path.
DETAIL = {"smooth": 0.0, "photo": 0.02, "grainy": 0.05}
def lesson_photo():
    """The photo.png the lessons' commands upload (`python3 course.py samples` writes
    it; their tests, too): a 300x200 PNG, its size in the lessons' outputs."""
    return image_bytes(size=(300, 200), color="teal")


def photo_jpeg(megapixels, detail="photo", quality=90):
    """A 3:2 JPEG of `megapixels` that compresses like a photo.

    Natural images hold less detail the finer the scale (about 1/f), so the scene
    is a sum of colour noise at every scale from a few cells across to single
    pixels, each weighted by its cell size, plus some sensor grain."""
    width = round((megapixels * 1e6 * 3 / 2) ** 0.5)
    size = (width, round(width * 2 / 3))
    scene, total, cells = None, 0.0, 3
    while cells < width:
        layer = Image.merge("RGB", [
            Image.effect_noise((cells, cells * 2 // 3 or 1), 64).resize(size, Image.Resampling.BICUBIC)
            for _ in "RGB"
        ])
        weight = 1 / cells
        total += weight
        scene = layer if scene is None else Image.blend(scene, layer, weight / total)
        cells *= 2
    scene = ImageOps.autocontrast(scene, cutoff=1)
    if DETAIL[detail]:
        scene = Image.blend(scene, Image.effect_noise(size, 64).convert("RGB"), DETAIL[detail])
    return encoded(scene, "JPEG", quality=quality)


# --- Damaged and crafted images ---

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data):
    """[(kind, data)] of each chunk of a PNG file."""
    chunks, position = [], len(PNG_SIGNATURE)
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def png_file(chunks):
    return PNG_SIGNATURE + b"".join(png_chunk(kind, data) for kind, data in chunks)


def png_header(width, height):
    """A valid PNG header of the given size, tiny whatever the size: one compressed row."""
    rows = zlib.compress(b"\0" * (width // 8 + 2))
    return png_file([(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)), (b"IDAT", rows),
                     (b"IEND", b"")])


def truncated_jpeg():
    data = image_bytes("JPEG", size=(400, 300), color="orange")
    return data[: len(data) // 2]


def corrupt_png():
    data = bytearray(image_bytes("PNG", size=(64, 64), mode="RGB", color="purple"))
    data[60:90] = b"\xff" * 30  # inside the image data: the header still reads well
    return bytes(data)


def png_with_a_text_bomb():
    """A sound PNG but for a compressed text chunk that inflates to 2 MB, past the 1 MB
    Pillow allows: Image.open() raises ValueError."""
    ihdr, *rest = png_chunks(image_bytes("PNG", size=(32, 32)))
    return png_file([ihdr, (b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * 2_000_000, 9)), *rest])


def png_with_a_big_colour_profile():
    """A sound PNG whose colour profile (its iCCP chunk) inflates to 5 MB from 5 KB, past
    the 1 MB Pillow reads of it: Image.open() raises ValueError."""
    return encoded(Image.new("RGB", (64, 64), "red"), "PNG", icc_profile=bytes(5_000_000))


def png_with_a_broken_chunk_list():
    """A PNG whose image data is split in two chunks, the second of no valid type:
    the header reads well, and decoding raises SyntaxError."""
    ihdr, *rest, iend = png_chunks(image_bytes("PNG", size=(64, 64), color="navy"))
    data = b"".join(chunk for kind, chunk in rest if kind == b"IDAT")
    return png_file([ihdr, (b"IDAT", data[: len(data) // 2]), (b"\x82\x00\xff\x01", data[len(data) // 2 :]), iend])


def png_with_a_truncated_header():
    """A PNG whose IHDR chunk holds 5 bytes of its 13: Image.open() raises ValueError."""
    ihdr, *rest = png_chunks(image_bytes("PNG"))
    return png_file([(b"IHDR", ihdr[1][:5]), *rest])


def jpeg_segments(data):
    """A JPEG cut into its segments, as bytes: each marker's segment, and each scan (SOS)
    with the entropy-coded data that follows it, up to the next marker."""
    segments, position = [data[:2]], 2  # SOI
    while position < len(data):
        marker = data[position + 1]
        if marker == 0xD9:  # EOI
            segments.append(data[position:])
            break
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:  # a scan: its data runs to a marker other than a stuffed 0xFF or RSTn
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        segments.append(data[position:end])
        position = end
    return segments


def jpeg_with_scans(size, scans):
    """A progressive JPEG of one flat colour whose last scan is repeated until it has
    `scans` scans: each is another pass over every pixel, a few bytes each (1,300 in
    4000x4000 pixels: 135 KB, 15 s to decode here)."""
    segments = jpeg_segments(encoded(Image.new("RGB", size, (120, 130, 140)), "JPEG", progressive=True))
    last_scan = max(i for i, segment in enumerate(segments) if segment.startswith(b"\xff\xda"))
    present = sum(segment.startswith(b"\xff\xda") for segment in segments)
    extra = [segments[last_scan]] * (scans - present)
    return b"".join(segments[: last_scan + 1] + extra + segments[last_scan + 1 :])
