"""Decoding within a memory budget: what an image will take, told from its header,
and the budget the thumbnail threads take it from, one image after another."""

import collections
import contextlib
import threading

# Decoding takes memory in proportion to an image's pixels, whatever the size of its
# file: a 400 KB RGBA PNG of 89 megapixels takes 716 MB (bench/decode_budget.py).
# How many bytes Pillow stores a pixel in, by mode; 4 for the others (RGB too).
PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2}
DECODER_OVERHEAD = 8 * 1024**2  # the decoders' own buffers, at most (WebP's are the largest)


def decoding_cost(image, pixels):
    """The most memory make_thumbnail() takes for `image`, in bytes, told from its
    header alone: it is opened (and a JPEG drafted), not decoded. `pixels` is its
    full size. bench/decode_budget.py prints this against what decoding really took."""
    width, height = image.size  # a drafted JPEG's: what it will be decoded to
    cost = DECODER_OVERHEAD + width * height * PIXEL_BYTES.get(image.mode, 4)
    if image.mode not in ("L", "LA", "RGB", "RGBA") or "transparency" in image.info:
        cost += width * height * 4  # for_png() converts it: a second image
    if image.has_transparency_data:
        cost += width * height * 4  # resizing with alpha works on a premultiplied copy
    if image.format == "WEBP":
        cost += width * height * 12  # libwebp decodes into buffers of its own, then copies
    if image.info.get("progressive"):
        # libjpeg holds a progressive JPEG's coefficients at full size, 2 bytes each
        # per channel, however small it is drafted (less with chroma subsampling).
        cost += pixels * len(image.getbands()) * 2
    return cost


class DecodeBudget:
    """Lends the thumbnail threads memory to decode images into: `limit` bytes at most
    at once, however many threads there are.

    A thread asks for what its image will take before it decodes it, and waits until
    that is free. First come, first served, so that small images cannot keep a big one
    waiting forever; and an image that needs more than the whole budget is decoded
    alone. The threads wait here, not the event loop: only a thread that has opened
    the image knows what it will take, and one that waits holds no pixels yet."""

    def __init__(self, limit):
        self.limit = limit
        self.lent = 0
        self.waiting = collections.deque()  # the threads' turns, first come first
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def lend(self, size):
        """`size` bytes of the budget for the time of the `with` block."""
        turn = object()
        with self.changed:
            self.waiting.append(turn)
            self.changed.wait_for(lambda: self.waiting[0] is turn and (
                self.lent == 0 or self.lent + size <= self.limit))
            self.waiting.popleft()
            self.lent += size
            self.changed.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self.changed:
                self.lent -= size
                self.changed.notify_all()
