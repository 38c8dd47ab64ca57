"""Packing: several samples in one row up to a token budget, each attending only to itself.

Position ids restart at 0 for every sample, the attention is block-diagonal
causal, and the first label of every sample is ignored so no token is trained
to predict the start of the next sample. The loss per sample is then the same
as if it were alone in its row (`per_sample_loss` checks this in the tests).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import torch

from ..constants import IGNORE_INDEX
from .batch import Batch, collated

# How a packed batch confines attention to each sample:
#   "4d": (B,1,N,N) bool block-diagonal causal mask (SDPA; any use_cache setting);
#   "4d_additive": the same as 0/-inf floats (eager attention adds the mask to the scores);
#   "position_ids": attention_mask None; transformers infers the blocks from the restarting
#       position ids (only with use_cache=False); flash-attention does so only for a one-row
#       batch, so a packed batch's inputs also carry `cu_seq_lens_*` and `max_length_*`.
MASK_FORMATS = ("4d", "4d_additive", "position_ids")


def next_fit(sized: Iterable[tuple[int, int]], token_budget: int, name: str = "sample {}",
             hint: str = "") -> Iterator[list[int]]:
    """The one next-fit rule: (key, tokens) pairs in order -> lists of keys of <= token_budget tokens.

    Lazy: a row is yielded as soon as the next sample does not fit, so a sampler is read no further
    ahead than before. A sample alone over the budget is an error naming it (`name` formats the key).
    """
    cur, used = [], 0
    for key, n in sized:
        n = int(n)
        if n > token_budget:
            raise ValueError(f"{name.format(key)} has {n} tokens > token_budget {token_budget}{hint}")
        if cur and used + n > token_budget:
            yield cur
            cur, used = [], 0
        cur.append(key)
        used += n
    if cur:
        yield cur


def greedy_packs(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Next-fit in the given order: positions into `lengths`, grouped into rows of <= token_budget tokens."""
    return list(next_fit(enumerate(lengths), token_budget, "sample at position {}",
                         "; set token_budget >= max_length"))


def block_causal_mask(sample_index: torch.Tensor) -> torch.Tensor:
    """(B,N) sample ids (pad = -1, each pad run its own block) -> (B,1,N,N) bool, True = may attend."""
    same = sample_index.unsqueeze(-1) == sample_index.unsqueeze(-2)
    n = sample_index.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool, device=sample_index.device).tril()
    # Pad tokens attend to themselves so no row of the mask is empty (an empty row gives NaN in SDPA).
    eye = torch.eye(n, dtype=torch.bool, device=sample_index.device)
    return ((same & causal) | eye).unsqueeze(1)


def cu_seqlens(sample_index: torch.Tensor) -> torch.Tensor:
    """Cumulative sequence lengths of the flattened batch, for varlen flash attention (pads count as one run per row)."""
    flat = sample_index.reshape(-1)
    row = torch.arange(sample_index.shape[0]).repeat_interleave(sample_index.shape[1])
    key = torch.stack([row, flat], dim=1)
    change = torch.ones(flat.numel(), dtype=torch.bool)
    change[1:] = (key[1:] != key[:-1]).any(dim=1)
    starts = torch.nonzero(change).view(-1)
    return torch.cat([starts, torch.tensor([flat.numel()])]).to(torch.int32)


def pack_collate(items: list[dict], pad_token_id: int, token_budget: int, mask: str = "4d") -> Batch:
    """Pack items next-fit into rows of <= token_budget tokens, padded to the longest row."""
    if mask not in MASK_FORMATS:
        raise ValueError(f"mask must be one of {MASK_FORMATS}, got {mask!r}")
    batch = collated(items, greedy_packs([it["input_ids"].numel() for it in items], token_budget), pad_token_id)
    idx, inputs = batch.sample_index, batch.inputs
    for row, used in enumerate((idx >= 0).sum(dim=1).tolist()):  # padding: a run of its own
        inputs["position_ids"][row, used:] = torch.arange(idx.shape[1] - used)
    allowed = None if mask == "position_ids" else block_causal_mask(idx)
    if mask == "4d_additive":  # eager attention adds the mask to the scores: 0 / most-negative float
        allowed = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)
    inputs["attention_mask"] = allowed
    # The max length is a Python int computed here, so passing it costs no device sync.
    cu = cu_seqlens(idx)
    longest = int((cu[1:] - cu[:-1]).max())
    inputs.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest)
    return batch


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor, sample_index: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each sample (ordered by sample id) in a padded or packed batch."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    owner = sample_index[:, 1:]
    tok_loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none")
    valid = (shift_labels.reshape(-1) != IGNORE_INDEX) & (owner.reshape(-1) >= 0)
    num = int(sample_index.max().item()) + 1
    total = torch.zeros(num, dtype=tok_loss.dtype, device=tok_loss.device)
    count = torch.zeros(num, dtype=tok_loss.dtype, device=tok_loss.device)
    idx = owner.reshape(-1)[valid]
    total.index_add_(0, idx, tok_loss[valid])
    count.index_add_(0, idx, torch.ones_like(tok_loss[valid]))
    return total / count.clamp_min(1)


class PackedBatchSampler(torch.utils.data.Sampler):
    """Groups the indices of `sampler` into batches of `rows_per_batch` packed rows of <= token_budget tokens.

    Uses the same `next_fit` rule as `pack_collate`, so each yielded batch collates
    into exactly `rows_per_batch` rows (fewer at the end of the epoch).
    """

    def __init__(self, sampler, lengths: Sequence[int], token_budget: int, rows_per_batch: int = 1):
        self.sampler, self.lengths = sampler, lengths
        self.token_budget, self.rows_per_batch = token_budget, rows_per_batch

    def __iter__(self) -> Iterator[list[int]]:
        # A full batch is yielded when the first sample of its next row is read, as before the rule was shared.
        batch, rows = [], 0
        for row in next_fit(((idx, self.lengths[idx]) for idx in self.sampler), self.token_budget):
            batch += row
            rows += 1
            if rows == self.rows_per_batch:
                yield batch
                batch, rows = [], 0
        if batch:
            yield batch
