"""Real photos for checks and tests, taken from the scikit-image wheel (no downloads at run time)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from autograder.errors import AutograderError

# chelsea: a cat (451x300 RGB); coffee: a cup (600x400 RGB); astronaut: 512x512 RGB.
PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png")


def photo_path(name: str = "chelsea.png") -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise AutograderError(
            "scikit-image is not installed, and its sample photos are what the checks use",
            hint="install the course environment: make venv",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise AutograderError(f"sample photo {name} is missing from scikit-image at {path}")
    return path


def photo_bytes(name: str = "chelsea.png", *, mode: str = "RGB", image_format: str = "JPEG", **options) -> bytes:
    """The photo converted to ``mode`` (RGB, RGBA, L for grayscale...) and encoded as ``image_format``."""
    import io

    from PIL import Image

    with Image.open(photo_path(name)) as image:
        buffer = io.BytesIO()
        image.convert(mode).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def photo_jpeg_bytes(name: str = "chelsea.png", quality: int = 90) -> bytes:
    """The photo re-encoded as JPEG, the format clients most often send."""
    return photo_bytes(name, quality=quality)


def random_crop(name: str, rng, *, minimum: tuple[int, int] = (160, 120)):
    """A crop of the photo at a place and size drawn from ``rng``: inputs differ from run to run,
    so an answer cannot be prepared in advance. An RGB PIL image."""
    from PIL import Image

    with Image.open(photo_path(name)) as image:
        rgb = image.convert("RGB")
    width = rng.randint(minimum[0], rgb.width)
    height = rng.randint(minimum[1], rgb.height)
    left, top = rng.randint(0, rgb.width - width), rng.randint(0, rgb.height - height)
    return rgb.crop((left, top, left + width, top + height))


def encode(image, image_format: str = "PNG", **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()
