"""What thumbnails cost in memory, and what part 4's --decode_budget holds them to.

    python bench/decode_budget.py            # 20 maximum-size images at once, 16 thumbnail threads
    python bench/decode_budget.py --quick    # small images, 4 threads: checks the script works

First, what decoding takes: one image of each kind (PNG in each mode, GIF, WebP,
baseline and progressive JPEG), 12 megapixels each, is made into a thumbnail by
part 4's make_thumbnail() in a process of its own; the process's peak memory
(minus what it held before) is printed beside decoding_cost(), the estimate the
budget goes by, told from the image's header. The estimate must never be the lower.

Then the budget at work: part 4 serves in a child process with 16 thumbnail threads
(as on a 17-core machine, whatever this one has), and 20 uploads of a maximum-size
image (an 89-megapixel RGBA PNG: a 0.4 MB file that decodes into 716 MB) arrive at
once, for each budget in turn. The server's peak memory is printed against the
budget. Without one, 16 threads would decode 16 at once: that run takes about 12 GB,
and runs only with --unbounded. --untuned adds a run with the default budget in a
process left as glibc's malloc has it (part 4 asks it to unmap big blocks as soon
as they are freed): some 9 GB. The database is MONGODB_URI's if set, else the
embedded one.
"""

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coursekit.clients import Client
from coursekit.images import encoded
from coursekit.stages import StageCode, load_stage
from harness import MB, MiB, Server, allow_requests, command_line, database, memory, reset_peak, status

# (name, format, mode, what else save() is given): each kind decodes differently.
KINDS = [
    ("PNG, RGB", "PNG", "RGB", {}),
    ("PNG, RGBA", "PNG", "RGBA", {}),
    ("PNG, grey", "PNG", "L", {}),
    ("PNG, 16-bit grey", "PNG", "I;16", {}),
    ("PNG, palette", "PNG", "P", {}),
    ("PNG, RGB + transparent colour", "PNG", "RGB", {"transparency": (1, 2, 3)}),
    ("GIF, transparent", "GIF", "P", {"transparency": 3}),
    ("WebP, RGB", "WEBP", "RGB", {"quality": 50}),
    ("WebP, RGBA", "WEBP", "RGBA", {"quality": 50}),
    ("JPEG, baseline", "JPEG", "RGB", {"quality": 80}),
    ("JPEG, progressive", "JPEG", "RGB", {"quality": 80, "progressive": True}),
    ("JPEG, progressive 4:4:4", "JPEG", "RGB", {"quality": 80, "progressive": True, "subsampling": 0}),
    ("JPEG, CMYK", "JPEG", "CMYK", {"quality": 80}),
]
BUDGETS = [256 * MiB, 1024 * MiB, 2048 * MiB]  # the default, then more
UNBOUNDED = 2**60  # bytes: as good as no budget


def image(megapixels, format, mode, options):
    """An image of `megapixels` (3:2) with smooth gradients: a small file, for any size."""
    from PIL import Image

    width = round((megapixels * 1e6 * 3 / 2) ** 0.5)
    size = (width, width * 2 // 3)
    ramp = Image.linear_gradient("L").resize(size)
    across = ramp.transpose(Image.Transpose.ROTATE_90).resize(size)
    if mode in ("RGB", "RGBA", "CMYK"):
        picture = Image.merge(mode, [ramp, across, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM), across][:len(mode)])
    elif mode == "I;16":
        picture = ramp.convert("I").point(lambda value: value * 256).convert("I;16")
    else:
        picture = ramp.convert(mode)
    return encoded(picture, format, **options)


# --- What decoding takes, image by image ---


def decode(path):
    """In a process of its own: make_thumbnail() of the file at `path`; print the
    memory it took at its peak and decoding_cost()'s estimate, in bytes."""
    from PIL import Image

    part4 = StageCode(load_stage("part4_production"))
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        pixels = opened.size[0] * opened.size[1]
        opened.draft(None, (2 * part4.THUMBNAIL_SIZE[0], 2 * part4.THUMBNAIL_SIZE[1]))  # as make_thumbnail()
        estimate = part4.decoding_cost(opened, pixels)
    budget = part4.DecodeBudget(estimate)
    reset_peak(os.getpid())
    before = status(os.getpid(), "VmRSS")
    part4.make_thumbnail(io.BytesIO(data), budget)
    print(round((status(os.getpid(), "VmHWM") - before) * MB), estimate)


def decoding(data, name):
    """decode() the image `data` in a process of its own: (bytes it took, bytes estimated)."""
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        path = Path(tmp) / "image"
        path.write_bytes(data)
        result = subprocess.run([sys.executable, __file__, "--decode", str(path)], capture_output=True,
                                text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"error: decoding {name} failed:\n{result.stderr}")
    measured, estimated = map(int, result.stdout.split())
    return measured, estimated


def calibrate(megapixels):
    print(f"What make_thumbnail() takes, image by image ({megapixels} megapixels each), and the estimate:")
    print(f"{'':32} {'file':>8} {'measured':>10} {'estimated':>10} {'estimated / measured':>21}")
    lowest = None
    for name, format, mode, options in KINDS:
        data = image(megapixels, format, mode, options)
        measured, estimated = decoding(data, name)
        ratio = estimated / max(measured, 1)
        lowest = ratio if lowest is None else min(lowest, ratio)
        print(f"{name:32} {len(data) / MB:6.1f} MB {measured / MB:7.0f} MB {estimated / MB:7.0f} MB "
              f"{ratio:20.2f}x")
    print(f"lowest estimated / measured: {lowest:.2f}x ({'never under' if lowest >= 1 else 'UNDER'})")


# --- The budget at work ---


async def upload_at_once(base_url, data, count):
    """PUT `data` `count` times at once, as a script would (the XSRF cookie, then the token)."""
    allow_requests(count)
    client = Client(base_url)
    await client.visit()
    responses = await asyncio.gather(*(
        client.fetch(f"/upload/big{n}.png", "PUT", data, {"Content-Type": "image/png"}) for n in range(count)))
    failed = [response.code for response in responses if response.code != 201]
    if failed:
        raise SystemExit(f"error: uploads got {failed}")


def under_budget(megapixels, uploads, threads, budgets, untuned=False):
    data = image(megapixels, "PNG", "RGBA", {})
    measured, one = decoding(data, f"the {megapixels}-megapixel PNG")
    print(f"\n{uploads} uploads at once of a {megapixels}-megapixel RGBA PNG ({len(data) / MB:.1f} MB; alone, "
          f"make_thumbnail() took {measured / MB:.0f} MB, decoding_cost() says {one / MB:.0f} MB), "
          f"{threads} thumbnail threads; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print("The bound: the budget, or one image alone if it needs more.")
    print(f"{'decode budget':>26} {'bound':>9} {'peak memory':>12} {'peak / bound':>13} {'took':>8}")
    with database() as (db_uri, db_name):
        runs = [(budget, False) for budget in budgets] + ([(budgets[0], True)] if untuned else [])
        for budget, untuned in runs:
            args = ["--threads", str(threads), "--decode-budget", str(budget or UNBOUNDED)]
            args += ["--untuned"] if untuned else []
            with Server("part4", db_uri, db_name, args=args) as server, memory(server) as figures:
                start = time.perf_counter()
                asyncio.run(upload_at_once(server.url, data, uploads))
                took = time.perf_counter() - start
            if budget:
                bound = max(budget, one)
                label = f"{budget / MiB:.0f} MiB" + (", untuned malloc" if untuned else "")
                print(f"{label:>26} {bound / MB:6.0f} MB {figures['growth']:+9.0f} MB "
                      f"{figures['growth'] * MB / bound:12.2f}x {took:6.1f} s")
            else:
                print(f"{'none':>26} {'-':>9} {figures['growth']:+9.0f} MB {'-':>13} {took:6.1f} s")


def main():
    parser = command_line(__doc__, "small images, 4 uploads, 4 threads")
    parser.add_argument("--unbounded", action="store_true", help="also run with no budget (about 12 GB)")
    parser.add_argument("--untuned", action="store_true", help="also run with glibc's malloc untuned (about 9 GB)")
    parser.add_argument("--decode", help=argparse.SUPPRESS)  # the child process of the first table
    args = parser.parse_args()
    if args.decode:
        decode(args.decode)
        return
    if args.quick:
        calibrate(1)
        under_budget(4, uploads=4, threads=4, budgets=[32 * MiB, 256 * MiB], untuned=args.untuned)
        return
    calibrate(12)
    budgets = BUDGETS + ([None] if args.unbounded else [])
    under_budget(89.4, uploads=20, threads=16, budgets=budgets, untuned=args.untuned)


if __name__ == "__main__":
    main()
