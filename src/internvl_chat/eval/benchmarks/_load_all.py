"""Importing this registers every benchmark (in release-table order)."""

from . import (  # noqa: F401
    mmmu, mathvista, mmbench, mmvp, mme, scienceqa, pope, textvqa, seed, vizwiz, gqa, chartqa, docvqa, ai2d,
    synthetic,
)
