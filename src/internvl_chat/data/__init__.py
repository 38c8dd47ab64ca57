"""The V1.2 supervised fine-tuning data pipeline: formats, tokens + labels, datasets, sampling, packing, checks."""

from .preprocess import preprocess

__all__ = ["preprocess"]
