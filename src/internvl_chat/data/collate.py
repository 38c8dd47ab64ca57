"""Batching: pad to the longest sequence in the batch (never to max_length), or pack.

Both paths take the dataset's items, set rejected samples aside for the
`RejectLog`, and return `pixel_values`/`image_flags` in the order the samples'
image blocks appear in the flattened (B*N) batch, which is the order the model
fills `<IMG_CONTEXT>` positions in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..constants import IGNORE_INDEX
from .batch_common import bookkeeping, empty_batch, images, split_rejects
from .packing import pack_collate


def pad_collate(items: list, pad_token_id: int) -> dict:
    """Right-pad to the longest sequence: pad id, label -100, attention 0; position ids 0..len-1."""
    good, rejects, truncated = split_rejects(items)
    if not good:
        return empty_batch(rejects, truncated)
    n = max(int(it["input_ids"].numel()) for it in good)
    b = len(good)
    input_ids = torch.full((b, n), pad_token_id, dtype=torch.long)
    labels = torch.full((b, n), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((b, n), dtype=torch.long)
    position_ids = torch.zeros((b, n), dtype=torch.long)
    sample_index = torch.full((b, n), -1, dtype=torch.long)
    for row, it in enumerate(good):
        k = int(it["input_ids"].numel())
        input_ids[row, :k], labels[row, :k] = it["input_ids"], it["labels"]
        attention_mask[row, :k] = 1
        position_ids[row, :k] = torch.arange(k)
        sample_index[row, :k] = row
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
            "position_ids": position_ids, "sample_index": sample_index, **images(good),
            **bookkeeping(good, rejects, truncated)}


@dataclass
class Collator:
    """Picklable collate_fn for DataLoader workers.

    pack=False: `pad_collate`. pack=True: `packing.pack_collate` with `token_budget`
    tokens per row; `mask` picks the packed attention form (see `packing.MASK_FORMATS`):
    "4d" block-diagonal causal bool mask for SDPA, "4d_additive" for eager attention,
    "position_ids" (attention_mask None: SDPA/eager get the blocks from the restarting
    position ids only when no KV cache is built, i.e. `use_cache=False`; flash-attention
    needs the batch's `cu_seqlens` passed as `cu_seq_lens_*`, see `packing.varlen_kwargs`).
    """

    pad_token_id: int
    pack: bool = False
    token_budget: int | None = None
    mask: str = "4d"

    def __call__(self, items: list) -> dict:
        if not self.pack:
            return pad_collate(items, self.pad_token_id)
        if self.token_budget is None:
            raise ValueError("Collator(pack=True) needs token_budget")
        return pack_collate(items, self.pad_token_id, self.token_budget, mask=self.mask)
