"""Photo-like test images made from ../shared/data (referenced, never copied) and their transforms."""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthetic-images" / "train"
REAL = SHARED / "cnndetection-crops" / "real"


@lru_cache(maxsize=1)
def real_crops() -> tuple[Path, ...]:
    files = tuple(sorted(REAL.glob("*.png")))
    if not files:
        raise FileNotFoundError(f"no test photos under {REAL}")
    return files


def photo(k: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """A 2x2 mosaic of four real 244 px crops scaled to ``size``: natural content at a realistic size."""
    files = real_crops()
    mosaic = Image.new("RGB", (488, 488))
    for i in range(4):
        tile = Image.open(files[(4 * k + i) % len(files)]).convert("RGB")
        mosaic.paste(tile, ((i % 2) * 244, (i // 2) * 244))
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
