"""Wiring the data pipeline (internvl_chat.data) into the trainer: dataset, sampler, loader, steps.

Batches are world-size invariant: the sampler deals the epoch order round-robin
to ranks and each optimizer step takes per_device x accumulation samples from
every rank, so step s always trains on global positions [s*G, (s+1)*G) of the
epoch order whatever the number of processes. With packing, rows hold a
varying number of samples; the number of steps per epoch is then the minimum
over ranks so that no rank waits in a collective for another that ran dry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..constants import IGNORE_INDEX, IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN
from ..data import Collator, MixSampler, PackedBatchSampler, SupervisedDataset
from ..runtime import DistInfo
from .config import TrainConfig


class RandomTokenDataset(torch.utils.data.Dataset):
    """Random single-image samples, generated per index (deterministic, nothing on disk).

    Item i: <img> <IMG_CONTEXT>*n </img>, a prompt, then a supervised answer; the
    same dict as `SupervisedDataset`. For throughput measurements and engine tests.
    """

    def __init__(self, num_samples: int, tokenizer, num_image_token: int, image_size: int, max_length: int,
                 sample_length: int = 0, seed: int = 0, vary_length: bool = False):
        self.n, self.num_image_token, self.image_size = num_samples, num_image_token, image_size
        self.seed, self.max_length = seed, max_length
        self.ids = [tokenizer.convert_tokens_to_ids(t) for t in (IMG_START_TOKEN, IMG_CONTEXT_TOKEN, IMG_END_TOKEN)]
        special = set(tokenizer.all_special_ids) | set(self.ids)
        self.vocab = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
        full = min(sample_length or max_length, max_length)
        low = min(full, num_image_token + 16)
        g = np.random.default_rng(seed)
        self._lengths = (g.integers(max(low, full // 4), full + 1, size=num_samples) if vary_length
                         else np.full(num_samples, full)).astype(np.int32)
        if self._lengths.min() < num_image_token + 4:
            raise ValueError(f"sample length {int(self._lengths.min())} cannot hold an image block of "
                             f"{num_image_token} tokens plus text")

    def __len__(self) -> int:
        return self.n

    def lengths(self, show_progress: bool = False) -> np.ndarray:
        return self._lengths

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        n = int(self._lengths[i])
        start, ctx, end = self.ids
        text = self.vocab[torch.randint(len(self.vocab), (n - self.num_image_token - 2,), generator=g)]
        ids = torch.cat([torch.tensor([start]), torch.full((self.num_image_token,), ctx), torch.tensor([end]), text])
        labels = ids.clone()
        labels[: self.num_image_token + 2 + (n - self.num_image_token - 2) // 2] = IGNORE_INDEX  # prompt half
        pixels = torch.randn(1, 3, self.image_size, self.image_size, generator=g)
        return {"input_ids": ids, "labels": labels, "pixel_values": pixels, "image_flags": torch.tensor([1]),
                "dataset": "random", "id": f"random-{i}", "truncated": 0}


@dataclass
class TrainData:
    dataset: torch.utils.data.Dataset
    sampler: MixSampler
    collator: Collator
    per_device: int
    accumulation: int
    steps_per_epoch: int
    num_workers: int
    lengths: np.ndarray | None = None  # token lengths of the samples, when packing
    device: torch.device = torch.device("cpu")  # the process group's device (collectives)

    def epoch_steps(self, epoch: int) -> int:
        """Optimizer steps in `epoch` (collective when packing: the minimum over ranks)."""
        if not self.collator.pack:
            return self.sampler.per_rank() // (self.per_device * self.accumulation)
        return packed_epoch_steps(self.sampler, epoch, self.lengths, self.collator.token_budget, self.per_device,
                                  self.accumulation, self.device)

    def loader(self) -> torch.utils.data.DataLoader:
        """A loader over the rest of the sampler's current epoch, yielding micro-batches."""
        # Its own generator: a DataLoader otherwise draws worker seeds from the global RNG each time it
        # is iterated, which would shift the drop-path / dropout stream of a resumed run.
        if hasattr(self.dataset, "set_epoch"):  # augmentation crops depend on (seed, epoch, index)
            self.dataset.set_epoch(self.sampler.epoch)
        seed = self.sampler.seed * 1_000_003 + self.sampler.epoch * 101 + self.sampler.rank
        kw = dict(collate_fn=self.collator, num_workers=self.num_workers, generator=torch.Generator().manual_seed(seed),
                  persistent_workers=False, prefetch_factor=2 if self.num_workers else None,
                  pin_memory=self.device.type == "cuda")  # pinned pages: the copy to the GPU can be non-blocking
        if self.collator.pack:
            batches = PackedBatchSampler(self.sampler, self.lengths, self.collator.token_budget, self.per_device)
            return torch.utils.data.DataLoader(self.dataset, batch_sampler=batches, **kw)
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.per_device, sampler=self.sampler,
                                           drop_last=True, **kw)


def synthetic_meta(cfg: TrainConfig, image_size: int, info: DistInfo) -> Path:
    """Generate internvl_chat.data.synth data once (rank 0) under the output folder; return its meta.json."""
    from ..data import synth

    root = Path(cfg.logging.output_dir) / "synthetic_data"
    meta = root / "meta.json"
    if info.is_main and not meta.is_file():
        synth.generate(root, n_train=cfg.data.synthetic_train, n_test=0, seed=cfg.data.synthetic_seed,
                       image_size=image_size)
    dist.barrier()
    return meta


def build_dataset(cfg: TrainConfig, tokenizer, info: DistInfo, *, image_size: int, num_image_token: int,
                  template: str):
    """The configured data set; the model's geometry (`config.image_size`, `num_image_token`) and template."""
    if cfg.data.source == "random":
        return RandomTokenDataset(cfg.data.synthetic_train, tokenizer, num_image_token, image_size,
                                  cfg.data.max_seq_length, cfg.data.random_sample_length, cfg.data.synthetic_seed,
                                  vary_length=cfg.data.packing)
    meta = synthetic_meta(cfg, image_size, info) if cfg.data.source == "synthetic" else cfg.data.meta_path
    cache = Path(cfg.logging.output_dir) / "cache"
    return SupervisedDataset(meta, tokenizer, template_name=template, num_image_token=num_image_token,
                             image_size=image_size, max_length=cfg.data.max_seq_length, pad2square=cfg.data.pad2square,
                             cache_dir=cache, base_dir=cfg.data.base_dir if cfg.data.source == "meta" else None,
                             seed=cfg.seed)


def packed_epoch_steps(sampler: MixSampler, epoch: int, lengths, budget: int, rows: int, accumulation: int,
                       device: torch.device | str = "cpu") -> int:
    """Optimizer steps of `epoch` packed, the minimum over ranks. `device` is the process group's device:
    NCCL only reduces CUDA tensors."""
    probe = copy.copy(sampler)  # the same order, without moving the trainer's sampler
    probe.set_epoch(epoch)
    micro = sum(1 for _ in PackedBatchSampler(probe.rank_order(), lengths, budget, rows))
    steps = torch.tensor(micro // accumulation, device=device)
    dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    return int(steps)


def build_train_data(cfg: TrainConfig, tokenizer, model, info: DistInfo, dataset=None) -> TrainData:
    if dataset is None:
        dataset = build_dataset(cfg, tokenizer, info, image_size=model.config.image_size,
                                num_image_token=model.num_image_token, template=model.template)
    accumulation = cfg.gradient_accumulation(info.world_size)
    per_device = cfg.batch.per_device_batch_size
    grouped = {}
    if cfg.data.group_by_length:
        # The original groups by per_device x accumulation x world size, i.e. the global batch.
        grouped = dict(lengths=np.asarray(dataset.lengths(show_progress=info.is_main)),
                       group_size=cfg.batch.global_batch_size)
    sampler = MixSampler(len(dataset), seed=cfg.seed, rank=info.rank, world_size=info.world_size, shuffle=True,
                         drop_last=True, **grouped)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    collator = Collator(pad_id, pack=cfg.data.packing, token_budget=cfg.data.max_seq_length if cfg.data.packing else None,
                        mask="position_ids", image_size=model.config.image_size)
    lengths = np.asarray(dataset.lengths(show_progress=info.is_main)) if cfg.data.packing else None
    data = TrainData(dataset, sampler, collator, per_device, accumulation, 0, cfg.data.num_workers, lengths,
                     info.device)
    data.steps_per_epoch = data.epoch_steps(0)  # packed micro-batches per rank differ: every rank stops together
    if data.steps_per_epoch < 1:
        raise ValueError(f"the data set has {len(dataset)} samples, fewer than one global batch "
                         f"({cfg.batch.global_batch_size} samples); add data or lower batch.global_batch_size")
    return data
