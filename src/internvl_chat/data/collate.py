"""Batching: pad to the longest sequence in the batch (never to max_length), or pack.

The `Collator` sets rejected samples aside for the `RejectLog` and hands the rest
to `pad_collate` or `packing.pack_collate`; either returns a `Batch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..constants import IGNORE_INDEX
from .batch import Batch, collated
from .formats import RejectedSample
from .packing import pack_collate


def pad_collate(items: list[dict], pad_token_id: int) -> Batch:
    """One sample per row, right-padded to the longest: pad id, label -100, attention 0, position id 0."""
    batch = collated(items, [[i] for i in range(len(items))], pad_token_id)
    batch.inputs["attention_mask"] = (batch.sample_index >= 0).long()
    return batch


def split_rejects(items: list) -> tuple[list[dict], list[RejectedSample], list[RejectedSample]]:
    """(usable items, rejected records, records of kept-but-truncated samples)."""
    good = [it for it in items if not isinstance(it, RejectedSample)]
    truncated = [RejectedSample(it["dataset"], it["id"], None, "truncated",
                                f"truncated: {it['truncated']} tokens beyond max_length cut off")
                 for it in good if it.get("truncated")]
    return good, [it for it in items if isinstance(it, RejectedSample)], truncated


def all_rejected(pad_token_id: int, image_size: int) -> Batch:
    """Stand-in for a micro-batch whose samples were all rejected: one pad token, no label, a dummy
    image with flag 0. Its loss is exactly 0 but it runs the same modules, so FSDP collectives line up."""
    inputs = {"input_ids": torch.tensor([[pad_token_id]]), "labels": torch.tensor([[IGNORE_INDEX]]),
              "attention_mask": torch.ones(1, 1, dtype=torch.long), "position_ids": torch.zeros(1, 1, dtype=torch.long),
              "pixel_values": torch.zeros(1, 3, image_size, image_size), "image_flags": torch.tensor([0])}
    return Batch(inputs, torch.full((1, 1), -1), empty=True)


@dataclass
class Collator:
    """Picklable collate_fn for DataLoader workers.

    pack=False: `pad_collate`. pack=True: `packing.pack_collate` with `token_budget`
    tokens per row; `mask` picks the packed attention form (see `packing.MASK_FORMATS`):
    "4d" block-diagonal causal bool mask for SDPA, "4d_additive" for eager attention,
    "position_ids" (attention_mask None: SDPA/eager get the blocks from the restarting
    position ids only when no KV cache is built, i.e. `use_cache=False`; flash-attention
    needs the batch's `cu_seq_lens_*`, which the packed `Batch.inputs` carry).
    `image_size` is the stand-in image's when every sample was rejected (the model's).
    """

    pad_token_id: int
    pack: bool = False
    token_budget: int | None = None
    mask: str = "4d"
    image_size: int = 448

    def __call__(self, items: list) -> Batch:
        if self.pack and self.token_budget is None:
            raise ValueError("Collator(pack=True) needs token_budget")
        good, rejects, truncated = split_rejects(items)
        if not good:
            batch = all_rejected(self.pad_token_id, self.image_size)
        elif self.pack:
            batch = pack_collate(good, self.pad_token_id, self.token_budget, mask=self.mask)
        else:
            batch = pad_collate(good, self.pad_token_id)
        batch.rejects, batch.truncated = rejects, truncated
        return batch
