"""What every batching path shares: rejected samples set aside, per-sample bookkeeping, images.

`collate.pad_collate` and `packing.pack_collate` both build on these, so neither needs the other.
"""

from __future__ import annotations

import torch

from .formats import RejectedSample


def split_rejects(items: list) -> tuple[list[dict], list[RejectedSample], list[RejectedSample]]:
    """(usable items, rejected records, records of kept-but-truncated samples)."""
    good, rejects, truncated = [], [], []
    for it in items:
        if isinstance(it, RejectedSample):
            rejects.append(it)
            continue
        good.append(it)
        if it.get("truncated"):
            truncated.append(RejectedSample(it["dataset"], it["id"], None, "truncated",
                                            f"truncated: {it['truncated']} tokens beyond max_length cut off"))
    return good, rejects, truncated


def bookkeeping(good, rejects, truncated) -> dict:
    return {"rejects": rejects, "truncated": truncated, "num_samples": len(good),
            "ids": [it["id"] for it in good], "datasets": [it["dataset"] for it in good]}


def images(good: list[dict]) -> dict:
    return {"pixel_values": torch.cat([it["pixel_values"] for it in good]),
            "image_flags": torch.cat([it["image_flags"].view(-1) for it in good])}


def empty_batch(rejects, truncated) -> dict:
    """Every sample of the batch was rejected: the trainer must skip it (on all ranks)."""
    return {"empty": True, **bookkeeping([], rejects, truncated)}
