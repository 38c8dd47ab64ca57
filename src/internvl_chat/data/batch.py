"""One collated micro-batch: the model's inputs, apart from the bookkeeping the trainer counts.

`collate.pad_collate` and `packing.pack_collate` both build theirs with `collated`, so neither needs the other.
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

    def to(self, device) -> Batch:
        """This batch with its inputs on `device`, HOST_KEYS left on the host. Copies are non-blocking
        (the loader pins host memory on GPU runs)."""
        return replace(self, inputs={k: v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in HOST_KEYS
                                     else v for k, v in self.inputs.items()})


def collated(good: list[dict], sample_index: torch.Tensor, **tokens) -> Batch:
    """The Batch of `good` (in sample-id order) from its (B, N) token tensors. Images go in the same
    order, the order the model fills `<IMG_CONTEXT>` positions in."""
    images = {"pixel_values": torch.cat([it["pixel_values"] for it in good]),
              "image_flags": torch.cat([it["image_flags"].view(-1) for it in good])}
    return Batch({**tokens, **images}, sample_index, [int(it["input_ids"].numel()) for it in good],
                 int((tokens["labels"][:, 1:] != IGNORE_INDEX).sum()), [it["id"] for it in good],
                 [it["dataset"] for it in good])
