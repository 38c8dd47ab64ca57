"""Break 1: NCCL reduces only tensors on the group's CUDA device; gloo on CPU accepts anything,
so the CPU tests could not see a CPU tensor handed to a GPU group. A device-strict stand-in for
`all_reduce` refuses tensors not on the group's device ("meta" stands for cuda:0 here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from internvl_chat.data import MixSampler
from internvl_chat.model.tokenizer import build_tiny_tokenizer
from internvl_chat.train import load_config
from internvl_chat.train.data import RandomTokenDataset, build_train_data, packed_epoch_steps
from internvl_chat.runtime import DistInfo

GROUP_DEVICE = torch.device("meta")


class ReachedCollective(Exception):
    """The strict group accepted the tensor (a meta tensor holds no value to reduce, so stop here)."""


@pytest.fixture()
def strict_group(monkeypatch):
    seen = []

    def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
        seen.append(tensor.device)
        if tensor.device != GROUP_DEVICE:
            raise RuntimeError(f"all_reduce: tensor on {tensor.device}, the process group's device is {GROUP_DEVICE}"
                               " (NCCL: 'No backend type associated with device type cpu')")
        raise ReachedCollective

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    return seen


def test_strict_group_refuses_a_host_tensor(strict_group):
    with pytest.raises(RuntimeError, match="process group's device"):
        dist.all_reduce(torch.zeros(1))


def test_packed_epoch_steps_reduces_on_the_group_device(strict_group):
    sampler = MixSampler(32, seed=0, rank=0, world_size=1)
    with pytest.raises(ReachedCollective):
        packed_epoch_steps(sampler, 0, [10] * 32, 40, 2, 1, device=GROUP_DEVICE)
    assert strict_group == [GROUP_DEVICE]


def test_build_train_data_with_packing_hands_the_group_device_down(strict_group):
    cfg = load_config(None, ["model.preset=tiny", "data.source=random", "data.packing=true", "max_seq_length=64",
                             "global_batch_size=4", "per_device_batch_size=2"])
    tok = build_tiny_tokenizer()
    ds = RandomTokenDataset(16, tok, num_image_token=4, image_size=28, max_length=64, vary_length=True)
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=GROUP_DEVICE)
    model = SimpleNamespace(config=SimpleNamespace(image_size=28))  # with a dataset given: the stand-in image's size
    with pytest.raises(ReachedCollective):
        build_train_data(cfg, tok, model, info, dataset=ds)
    assert strict_group == [GROUP_DEVICE]
