"""Photo-like test images made from scikit-image's bundled sample photos, and their transforms.

The photos ship inside the scikit-image wheel under free licences (see skimage/data/README), so
every clone can make them: nothing here reads ../shared. ``photo(k)`` is a 2x2 mosaic of four
244 px crops picked for ``k``: natural content at a realistic size, distinct for each ``k``.
"""
from __future__ import annotations

import io
from functools import lru_cache
from importlib.resources import files

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

TILE = 244
# Natural photographs only (no charts, text or synthetic phantoms), and one of each stereo pair.
SAMPLES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
           "retina.jpg", "ihc.png", "camera.png", "brick.png", "grass.png", "gravel.png", "coins.png", "moon.png",
           "cell.png", "clock_motion.png")


@lru_cache(maxsize=1)
def tiles() -> tuple[Image.Image, ...]:
    """Every 244 px crop of the sample photos, at two scales, on a 200 px grid (no flips: those are orientations)."""
    folder = files("skimage") / "data"
    out: list[Image.Image] = []
    for name in SAMPLES:
        with Image.open(io.BytesIO((folder / name).read_bytes())) as opened:
            base = opened.convert("RGB")
        for scale in (1.0, 0.7):
            image = base if scale == 1.0 else base.resize((int(base.width * scale), int(base.height * scale)),
                                                          Image.Resampling.LANCZOS)
            for top in range(0, image.height - TILE + 1, 200):
                for left in range(0, image.width - TILE + 1, 200):
                    out.append(image.crop((left, top, left + TILE, top + TILE)))
    return tuple(out)


def photo(k: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """A 2x2 mosaic of four sample-photo crops chosen for ``k``, scaled to ``size``.

    Crop ``k + i * n/4`` sits in corner ``i``, so two photos below ``n`` (the number of crops) never
    share a crop in the same corner: a crop shared in place would bring their PDQ hashes close.
    """
    pool = tiles()
    step = len(pool) // 4
    mosaic = Image.new("RGB", (2 * TILE, 2 * TILE))
    for i in range(4):
        mosaic.paste(pool[(k + i * step) % len(pool)], ((i % 2) * TILE, (i // 2) * TILE))
    return mosaic.resize(size, Image.Resampling.BICUBIC)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    return Image.open(io.BytesIO(jpeg_bytes(image, quality))).convert("RGB")


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = int(w * fraction / 2), int(h * fraction / 2)
    return image.crop((dx, dy, w - dx, h - dy))


def _caption(image: Image.Image) -> Image.Image:
    image = image.copy()
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 260, 50), fill=(255, 255, 255))
    draw.text((20, 20), "FAKE NEWS", fill=(0, 0, 0))
    return image


TRANSFORMS = {
    "resize 50%": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "JPEG q90": lambda im: _jpeg(im, 90),
    "JPEG q70": lambda im: _jpeg(im, 70),
    "JPEG q50": lambda im: _jpeg(im, 50),
    "crop 5%": lambda im: _crop(im, 0.05),
    "crop 10%": lambda im: _crop(im, 0.10),
    "text overlay": _caption,
    "brightness +10%": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "brightness -10%": lambda im: ImageEnhance.Brightness(im).enhance(0.9),
    "horizontal flip": ImageOps.mirror,
    "rotate 90°": lambda im: im.rotate(90, expand=True),
}
