"""What the benchmarks of part 2 share: course.py, and big photo-like JPEGs made on the spot."""

import io
import statistics
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import course  # noqa: E402, F401  (the scripts take it from here: stages, ports, the database)

# Detail levels of the test photo: how much fine grain goes on top of its smooth
# scene. More detail makes a bigger file, and more of it to decode on any path.
DETAIL = {"smooth": 0.0, "photo": 0.02, "grainy": 0.05}


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
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def percentile(samples, p):
    """The p-th percentile of `samples` (p in 0..100), interpolated."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]
