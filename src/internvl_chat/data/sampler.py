"""A deterministic, distributed, resumable sampler over the concatenated mix.

Sampling is uniform over the concatenation, i.e. each dataset in proportion to
size x repeat_time: what the original actually trained on (its weighted sampler
was never used by the HF Trainer). The epoch order depends only on (seed,
epoch), so every rank computes the same global order and takes its own slice;
`state_dict()` records how far this rank got, and `load_state_dict()` resumes
exactly at the next sample.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch


def length_grouped_indices(lengths: Sequence[int], group_size: int, generator: torch.Generator,
                           mega_batch_mult: int | None = None) -> list[int]:
    """Like HF's LengthGroupedSampler (what `--group_by_length` used): shuffle, cut into
    mega-batches of `mega_batch_mult * group_size`, sort each by length (longest first),
    and put the longest sample of all first so an OOM shows up at step one."""
    n = len(lengths)
    if mega_batch_mult is None:
        mega_batch_mult = max(1, min(n // (group_size * 4), 50))
    perm = torch.randperm(n, generator=generator).tolist()
    size = mega_batch_mult * group_size
    megabatches = [sorted(perm[i:i + size], key=lambda j: -int(lengths[j])) for i in range(0, n, size)]
    if megabatches:
        longest = max(range(len(megabatches)), key=lambda k: int(lengths[megabatches[k][0]]))
        megabatches[0][0], megabatches[longest][0] = megabatches[longest][0], megabatches[0][0]
    return [i for mb in megabatches for i in mb]


class MixSampler(torch.utils.data.Sampler[int]):
    """Indices of a dataset of `num_samples` items for one rank.

    shuffle: random permutation per epoch (seeded by seed + epoch).
    group_by_length: with `lengths` and `group_size` (per-device batch x grad accumulation
    x world size is the original's choice), order by length within mega-batches.
    drop_last False pads the epoch by wrapping around so every rank gets the same count.
    """

    def __init__(self, num_samples: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 drop_last: bool = False, lengths: Sequence[int] | None = None, group_size: int | None = None):
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        if (lengths is None) != (group_size is None):
            raise ValueError("group_by_length needs both lengths and group_size")
        if lengths is not None and len(lengths) != num_samples:
            raise ValueError(f"{len(lengths)} lengths for {num_samples} samples")
        self.num_samples, self.seed, self.rank, self.world_size = num_samples, seed, rank, world_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.lengths, self.group_size = lengths, group_size
        self.epoch = 0
        self.start = 0  # samples of this epoch this rank already consumed (set by load_state_dict)
        self.yielded = 0

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning."""
        self.epoch, self.start, self.yielded = epoch, 0, 0

    def global_order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.lengths is not None:
            return length_grouped_indices(self.lengths, self.group_size, g)
        if self.shuffle:
            return torch.randperm(self.num_samples, generator=g).tolist()
        return list(range(self.num_samples))

    def __len__(self) -> int:
        return self.per_rank() - self.start

    def per_rank(self) -> int:
        if self.drop_last:
            return self.num_samples // self.world_size
        return -(-self.num_samples // self.world_size)

    def rank_order(self) -> list[int]:
        order = self.global_order()
        total = self.per_rank() * self.world_size
        if total > len(order):  # wrap around so every rank gets the same number of samples
            order = (order * (-(-total // len(order))))[:total]
        return order[:total][self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        order = self.rank_order()
        self.yielded = self.start
        for idx in order[self.start:]:
            self.yielded += 1
            yield idx

    def state_dict(self, consumed: int | None = None) -> dict:
        """Position to resume from. DataLoader workers prefetch, so the sampler runs ahead of
        training: pass `consumed`, the number of this epoch's samples this rank has
        actually trained on (counting rejected ones), unless iterating the sampler directly."""
        return {"epoch": self.epoch, "consumed": self.yielded if consumed is None else int(consumed),
                "seed": self.seed, "num_samples": self.num_samples, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "num_samples", "world_size"):
            if state[key] != getattr(self, key):
                raise ValueError(f"sampler state was saved with {key}={state[key]}, this run has "
                                 f"{getattr(self, key)}: the order would differ, cannot resume exactly")
        self.epoch, self.start, self.yielded = state["epoch"], state["consumed"], state["consumed"]
