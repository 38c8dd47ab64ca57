"""Training-time image augmentation for datasets with `data_augment: true` (none in V1.2's mix).

The original uses torchvision's RandomResizedCrop(scale=(0.8, 1), ratio=(3/4, 4/3),
bicubic) and no pad-to-square; this is the same sampling rule with PIL, drawn
from a per-sample RNG so a given (seed, epoch, index) always gives the same crop.
"""

from __future__ import annotations

import math
import random

from PIL import Image


def random_resized_crop(img: Image.Image, size: int, rng: random.Random, scale=(0.8, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> Image.Image:
    width, height = img.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.randint(0, height - h), rng.randint(0, width - w)
            return img.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)
    # Fallback, as torchvision: the largest centred crop within the ratio bounds.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return img.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)
