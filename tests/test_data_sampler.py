"""The mix sampler: deterministic, sharded, length-grouped, and resumable mid-epoch."""

from __future__ import annotations

import pytest
import torch

from internvl_chat.data import MixSampler, length_grouped_indices


def test_resume_mid_epoch_yields_exactly_the_remaining_order():
    for kwargs in ({}, {"lengths": [(i * 37) % 50 + 1 for i in range(103)], "group_size": 4}):
        s = MixSampler(103, seed=5, rank=1, world_size=3, **kwargs)
        s.set_epoch(2)
        full = list(s)
        it = iter(s)
        head = [next(it) for _ in range(13)]
        state = s.state_dict()
        assert state["consumed"] == 13 and state["epoch"] == 2
        fresh = MixSampler(103, seed=5, rank=1, world_size=3, **kwargs)
        fresh.load_state_dict(state)
        assert len(fresh) == len(full) - 13
        rest = list(fresh)
        assert head + rest == full
        # The next epoch after a resumed one starts from its beginning.
        fresh.set_epoch(3)
        assert len(list(fresh)) == len(full)


def test_resume_from_trainer_count_ignores_prefetch():
    s = MixSampler(40, seed=0)
    loader = torch.utils.data.DataLoader(range(40), batch_size=4, sampler=s)
    it = iter(loader)
    seen = [x for _ in range(3) for x in next(it).tolist()]  # the loader may have pulled more indices
    fresh = MixSampler(40, seed=0)
    fresh.load_state_dict(s.state_dict(consumed=len(seen)))
    assert seen + list(fresh) == list(MixSampler(40, seed=0))


def test_shards_cover_the_epoch_once_and_are_deterministic():
    n, world = 50, 4
    shards = [list(MixSampler(n, seed=3, rank=r, world_size=world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal counts: no rank waits at a collective
    flat = [i for s in shards for i in s]
    assert set(flat) == set(range(n)) and len(flat) == 52  # wrapped by 2 to make 4 equal shards
    assert shards == [list(MixSampler(n, seed=3, rank=r, world_size=world)) for r in range(world)]
    dropped = [list(MixSampler(n, seed=3, rank=r, world_size=world, drop_last=True)) for r in range(world)]
    assert sum(map(len, dropped)) == 48 and len(set(i for s in dropped for i in s)) == 48
    a, b = MixSampler(n, seed=3), MixSampler(n, seed=3)
    b.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == sorted(b)
    assert list(MixSampler(n, seed=3)) != list(MixSampler(n, seed=4))


def test_load_state_refuses_a_different_setup():
    s = MixSampler(10, seed=1)
    with pytest.raises(ValueError, match="seed"):
        MixSampler(10, seed=2).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="num_samples"):
        MixSampler(11, seed=1).load_state_dict(s.state_dict())


def test_length_grouping_sorts_within_megabatches_and_puts_the_longest_first():
    lengths = [(i * 7919) % 1000 + 1 for i in range(400)]
    g = torch.Generator().manual_seed(0)
    order = length_grouped_indices(lengths, group_size=8, generator=g)
    assert sorted(order) == list(range(400))
    assert lengths[order[0]] == max(lengths)
    mega = 8 * min(400 // 32, 50)
    for start in range(0, 400, mega):
        chunk = [lengths[i] for i in order[start:start + mega]][1:]  # the first may be the swapped-in longest
        assert chunk == sorted(chunk, reverse=True)
    # Batches of 8 then have similar lengths: far less padding than a random order.
    def padding(o):
        return sum(max(lengths[i] for i in o[k:k + 8]) * 8 - sum(lengths[i] for i in o[k:k + 8])
                   for k in range(0, 400, 8))
    assert padding(order) < padding(torch.randperm(400, generator=g).tolist()) / 3


def test_packed_batches_resume_at_a_batch_boundary():
    from internvl_chat.data import PackedBatchSampler

    lengths = [(i * 53) % 90 + 10 for i in range(200)]
    s = MixSampler(200, seed=9, rank=0, world_size=2)
    full = list(PackedBatchSampler(s, lengths, token_budget=256, rows_per_batch=2))
    consumed = sum(len(b) for b in full[:7])  # what the trainer counts after 7 micro-batches
    fresh = MixSampler(200, seed=9, rank=0, world_size=2)
    fresh.load_state_dict(s.state_dict(consumed=consumed))
    assert list(PackedBatchSampler(fresh, lengths, token_budget=256, rows_per_batch=2)) == full[7:]
