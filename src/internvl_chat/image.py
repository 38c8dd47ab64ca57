"""Image preprocessing of InternVL-Chat-V1.2, with PIL only (no torchvision).

V1.2 resizes every image straight to a square (bicubic, aspect ratio not kept,
no crop, no pad) and normalises with ImageNet statistics. PIL's bicubic resize
is exactly what torchvision's `Resize` does on a PIL image, so the tensors match
the original pipeline bit for bit.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .constants import IMAGENET_MEAN, IMAGENET_STD, PAD2SQUARE_FILL


class ImageLoadError(ValueError):
    """An image that cannot be used: missing, truncated, undecodable. Says which and why."""

    def __init__(self, source: str, reason: str):
        self.source, self.reason = source, reason
        super().__init__(f"cannot load image {source}: {reason}")


def load_image(source, max_pixels: int | None = None) -> Image.Image:
    """Open `source` (path, bytes, file object or PIL image) fully and return it as RGB.

    Truncated files are errors here (the original sets LOAD_TRUNCATED_IMAGES and
    silently trains on half-grey images).
    """
    if isinstance(source, Image.Image):
        img, name = source, "<PIL image>"
    else:
        if isinstance(source, (bytes, bytearray)):
            name, fp = "<bytes>", io.BytesIO(source)
        elif isinstance(source, (str, os.PathLike)):
            name = str(source)
            if not Path(name).is_file():
                raise ImageLoadError(name, "file not found")
            fp = name
        else:
            name, fp = repr(source)[:60], source
        try:
            img = Image.open(fp)
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise ImageLoadError(name, f"{img.width}x{img.height} exceeds the limit of {max_pixels} pixels")
            img.load()
        except ImageLoadError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ImageLoadError(name, f"{type(e).__name__}: {e}") from e
    if img.width < 1 or img.height < 1:
        raise ImageLoadError(name, f"empty image {img.width}x{img.height}")
    return img.convert("RGB")


def expand_to_square(img: Image.Image, fill=PAD2SQUARE_FILL) -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), fill)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def image_to_tensor(img: Image.Image, size: int = 448, pad2square: bool = False) -> torch.Tensor:
    """RGB PIL image -> normalised float32 tensor (3, size, size), as V1.2's build_transform(is_train=False)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    if pad2square:
        img = expand_to_square(img)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (arr - mean) / std


def load_pixel_values(source, size: int = 448, pad2square: bool = False, dtype=torch.float32) -> torch.Tensor:
    """Load one image into a batch of one: (1, 3, size, size)."""
    return image_to_tensor(load_image(source), size=size, pad2square=pad2square).unsqueeze(0).to(dtype)
