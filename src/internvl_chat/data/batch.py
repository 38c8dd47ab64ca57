"""One collated micro-batch: the model's inputs, apart from the bookkeeping the trainer counts.

`collate.pad_collate` (one sample per row) and `packing.pack_collate` (several) both lay their rows out
with `collated`, so neither needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..constants import IGNORE_INDEX
from .formats import RejectedSample

# Only used to select rows/positions: kept on the host, so the model's boolean selections on them
# (supervised positions, images with flag 1) need no device-to-host sync per micro-batch.
HOST_KEYS = ("labels", "image_flags")


@dataclass
class Batch:
    """A micro-batch. `inputs` are the model's forward keywords: input_ids, labels, attention_mask,
    position_ids, pixel_values, image_flags and, when packed, flash-attention's varlen offsets
    (`cu_seq_lens_*`, `max_length_*`: without them flash-attention lets the samples of a row attend
    to each other; SDPA/eager ignore them). The rest is bookkeeping."""

    inputs: dict
    sample_index: torch.Tensor | None = None  # (B, N): the sample id of each token, -1 = padding
    lengths: list[int] = field(default_factory=list)  # tokens of each sample, by sample id
    supervised: int = 0  # supervised tokens (labels[:, 1:] not ignored): the loss's denominator
    ids: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    rejects: list[RejectedSample] = field(default_factory=list)
    truncated: list[RejectedSample] = field(default_factory=list)  # kept, with their tail cut off
    empty: bool = False  # every sample was rejected: `inputs` are a stand-in (see collate.all_rejected)

    @property
    def num_samples(self) -> int:
        return len(self.ids)

    def pin_memory(self) -> Batch:
        """DataLoader(pin_memory=True) calls this (an object without it would pass through unpinned):
        page-locked inputs, so that `to(device)` copies asynchronously."""
        return replace(self, inputs={k: v.pin_memory() if torch.is_tensor(v) else v for k, v in self.inputs.items()})

    def to(self, device) -> Batch:
        """This batch with its inputs on `device`, HOST_KEYS left on the host. Copies are non-blocking
        (the loader pins host memory on GPU runs)."""
        return replace(self, inputs={k: v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in HOST_KEYS
                                     else v for k, v in self.inputs.items()})


def collated(items: list[dict], rows: list[list[int]], pad_token_id: int) -> Batch:
    """The Batch of `items` laid out in `rows` (positions into `items`), right-padded to the longest
    row: pad id, label -100, sample id -1, position id 0. Position ids restart at 0 for every sample
    and its first label is ignored, so no token learns "the next sample starts here" (alone in its
    row, the shift drops that label anyway). Images go in sample-id order, the order the model fills
    `<IMG_CONTEXT>` positions in."""
    n = max(sum(int(items[i]["input_ids"].numel()) for i in row) for row in rows)
    input_ids = torch.full((len(rows), n), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), n), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), n), dtype=torch.long)
    sample_index = torch.full((len(rows), n), -1, dtype=torch.long)
    order = []
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            it, k = items[i], int(items[i]["input_ids"].numel())
            input_ids[r, at:at + k], labels[r, at:at + k] = it["input_ids"], it["labels"]
            labels[r, at] = IGNORE_INDEX
            position_ids[r, at:at + k] = torch.arange(k)
            sample_index[r, at:at + k] = len(order)
            order.append(it)
            at += k
    inputs = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
              "pixel_values": torch.cat([it["pixel_values"] for it in order]),
              "image_flags": torch.cat([it["image_flags"].view(-1) for it in order])}
    return Batch(inputs, sample_index, [int(it["input_ids"].numel()) for it in order],
                 int((labels[:, 1:] != IGNORE_INDEX).sum()), [it["id"] for it in order],
                 [it["dataset"] for it in order])
