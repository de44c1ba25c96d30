"""How long a thumbnail of a big JPEG takes: decoding every pixel, or the fast path.

    python bench/thumbnail.py            # 24-megapixel photos
    python bench/thumbnail.py --quick    # 2 megapixels, fewer runs: checks the script works

The naive way decodes all 24 million pixels and shrinks them with Lanczos. The fast
path asks the JPEG decoder for 1/8 of the size (`draft`), which skips most of the
decoding work, then shrinks that. Both are timed with Pillow alone, on the same
file, and then part 2's whole `make_thumbnail` (fast path, PNG encoding) for scale.

Then a progressive JPEG of one colour, drawn in more and more scans (its last one
repeated, a few bytes each): each scan is a pass over every pixel, however small the
file, and draft() cannot skip it. Timed with Pillow alone, and what part 2 does with it
(MAX_SCANS refuses it before decoding).
"""

import io
import statistics
import time

from PIL import Image

from coursekit.images import DETAIL, jpeg_with_scans, photo_jpeg
from coursekit.stages import stage_module
from harness import command_line

SIZE = (128, 128)


def naive(data):
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail(SIZE, Image.Resampling.LANCZOS, reducing_gap=None)  # no draft, no reduce
        return image.size


def fast(data):
    with Image.open(io.BytesIO(data)) as image:
        image.draft(None, (2 * SIZE[0], 2 * SIZE[1]))  # decode at 1/2, 1/4 or 1/8 scale
        image.thumbnail(SIZE, Image.Resampling.LANCZOS)
        return image.size


def timed(function, data, runs):
    """The median time of `runs` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main():
    parser = command_line(__doc__, "small images, few runs")
    args = parser.parse_args()
    megapixels, runs = (2, 3) if args.quick else (24, 9)
    make_thumbnail = stage_module("part2_thumbnails", "thumbnails").make_thumbnail

    print(f"Thumbnail ({SIZE[0]}x{SIZE[1]}) of a {megapixels}-megapixel JPEG, median of {runs} runs")
    print(f"{'photo':8} {'file':>8} {'naive':>9} {'fast':>8} {'ratio':>6} {'make_thumbnail':>15}")
    for detail in DETAIL:
        data = photo_jpeg(megapixels, detail)
        assert naive(data) == fast(data)  # the same thumbnail size either way
        slow_ms, fast_ms = timed(naive, data, runs), timed(fast, data, runs)
        app_ms = timed(make_thumbnail, data, runs)
        print(f"{detail:8} {len(data) / 1e6:6.1f}MB {slow_ms:7.0f}ms {fast_ms:6.0f}ms {slow_ms / fast_ms:5.1f}x"
              f" {app_ms:13.0f}ms")
    scans(make_thumbnail, (1000, 1000) if args.quick else (4000, 4000), runs)


def scans(make_thumbnail, size, runs):
    """Decoding time by number of scans, and what part 2 answers."""
    # A line a row, its numbers unpadded: part 2's lesson shows this output, compared with
    # yours digit run by digit run.
    print(f"\nA progressive JPEG of {size[0]}x{size[1]} pixels by its number of scans, median of {runs} runs:")
    for count in (10, 64, 300, 1300):
        data = jpeg_with_scans(size, count)
        decoding = timed(fast, data, runs if count < 300 else 1)
        try:
            answer = "thumbnail made" if make_thumbnail(data) else ""
        except ValueError as refused:  # NotAnImage
            answer = f"refused: {refused}"
        print(f"{count} scans, {len(data) / 1e3:.0f} KB: decoded in {decoding:.0f} ms, {decoding / count:.1f} ms a scan; "
              f"part 2: {answer}")


if __name__ == "__main__":
    main()
