"""From whatever image a client uploads to the exact tensor ResNet50's weights were trained on."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.models import ResNet50_Weights
from torchvision.transforms import functional as F

# The recipe that comes with the weights: resize 232 (bilinear, antialiased), crop 224, normalise.
TRANSFORM = ResNet50_Weights.IMAGENET1K_V2.transforms()
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as its viewer sees it, as 8-bit RGB.

    - EXIF orientation applied (phones store photos sideways and say so in EXIF);
    - 16-bit grayscale scaled down to 8 bits (PIL's convert would clip it to white);
    - transparency composited onto white (transparent pixels often hide black or garbage);
    - every other mode (L, P, CMYK, ...) converted by PIL.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.uint32) >> 8
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def preprocess(image: Image.Image) -> torch.Tensor:
    """``to_rgb(image)`` turned into the (3, 224, 224) float32 tensor the weights expect.

    Must equal TRANSFORM applied to the RGB image: resize the short side to 232 (bilinear,
    antialiased), centre-crop 224x224, scale to [0, 1], normalise per channel.
    """
    image = to_rgb(image)
    image = F.resize(image, TRANSFORM.resize_size, interpolation=TRANSFORM.interpolation, antialias=True)
    image = F.center_crop(image, TRANSFORM.crop_size)
    tensor = F.convert_image_dtype(F.pil_to_tensor(image), torch.float)
    return F.normalize(tensor, mean=TRANSFORM.mean, std=TRANSFORM.std)
