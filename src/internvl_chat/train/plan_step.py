"""One training step of the configured model, measured per rank: on a fake world (planning) or on real tensors.

`internvl-chat plan` builds the model with the trainer's own `build_skeleton`
(meta device, tuning flags, activation checkpointing, FSDP2 + mixed precision),
joins a `fake` process group of world size N in this one process, allocates the
shards under `FakeTensorMode` (nothing is materialised) and runs one step of the
training loop (forward with `loss_only`, backward of `loss x world`, clipping,
AdamW step, zero_grad) under PyTorch's `FSDPMemTracker`. The same `tracked_step`
runs on real tensors in `plan_check` to validate the plan.

The step is the steady state of a run: the optimizer states exist already (step
>= 2), and with gradient accumulation the gradients of the earlier micro-batches
are held while the last one runs, since that micro-batch has the highest peak.

What FakeTensorMode cannot do by itself is supplied here:
- data-dependent shapes: the positions of <IMG_CONTEXT> tokens (`nonzero`) and the
  supervised tokens (boolean indexing) are counted on the real batch, built on the
  CPU first, and `_KnownCounts` answers those two ops with tensors of that length;
- transformers cannot tell on fake position ids that a row holds one sample and would
  build an explicit causal mask (SDPA's math kernel); `_one_sample_per_row` answers for it;
- DTensor's sharding propagation runs ops on global-shape fake tensors under the
  active fake mode, which the tracker would count as allocations (a full copy of
  every gradient at clipping). `_separate_propagation_mode` gives it its own mode,
  as it has outside FakeTensorMode.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from unittest import mock

import torch
from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker
from torch.utils._python_dispatch import TorchDispatchMode

from ..constants import IGNORE_INDEX, IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN
from ..data.batch import Batch
from .lora import set_frozen_eval

aten = torch.ops.aten
_INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default,
              aten._unsafe_index_put.default}
# FSDPMemTracker categories (its enum's values), grouped into the report's columns.
STATES = {"params": ("Sharded Param",), "grads": ("Sharded Grad",), "optimizer": ("OptState",)}
ACTIVATIONS = ("Activation",)
TEMPORARIES = ("Temp", "Unsharded Param", "Unsharded Grad", "All Gather", "Reduce Scatter", "Inputs", "Buffer")


@dataclass
class PlanBatch:
    """A micro-batch of the recipe's shape: `rows` x `seq_len` tokens, `images` 448 px images whose
    <IMG_CONTEXT> blocks sit at the start of rows, the last `supervised_fraction` of each row labelled."""

    rows: int
    seq_len: int
    images: int
    image_size: int
    num_image_token: int
    supervised_fraction: float = 0.5

    def build(self, ids: dict[str, int], vocab_size: int) -> Batch:
        if self.images > self.rows * (self.seq_len // (self.num_image_token + 2)):
            raise ValueError(f"{self.images} images of {self.num_image_token} tokens do not fit in "
                             f"{self.rows} rows of {self.seq_len} tokens")
        g = torch.Generator().manual_seed(0)
        input_ids = torch.randint(0, vocab_size, (self.rows, self.seq_len), generator=g)
        special = torch.tensor(sorted(ids.values()))
        hits = torch.isin(input_ids, special)  # text must not contain image tokens: move those ids off them
        input_ids[hits] = (input_ids[hits] + len(special) + 1) % vocab_size
        input_ids[torch.isin(input_ids, special)] = int(special.max()) + 1 if int(special.max()) + 1 < vocab_size else 0
        block = self.num_image_token + 2
        for i in range(self.images):
            row, slot = i % self.rows, i // self.rows
            start = slot * block
            input_ids[row, start] = ids[IMG_START_TOKEN]
            input_ids[row, start + 1:start + 1 + self.num_image_token] = ids[IMG_CONTEXT_TOKEN]
            input_ids[row, start + block - 1] = ids[IMG_END_TOKEN]
        labels = input_ids.clone()
        prompt = self.seq_len - int(round(self.supervised_fraction * self.seq_len))
        labels[:, :max(prompt, 1)] = IGNORE_INDEX
        pixels = torch.randn(self.images, 3, self.image_size, self.image_size, generator=g)
        return Batch({"input_ids": input_ids, "labels": labels, "pixel_values": pixels},
                     supervised=int((labels[:, 1:] != IGNORE_INDEX).sum()))


def known_counts(batch: Batch, img_context_id: int) -> dict[tuple, int]:
    """Lengths of the model's data-dependent results on this batch, keyed by the shape of the mask."""
    ids, labels = batch.inputs["input_ids"], batch.inputs["labels"]
    return {(ids.numel(),): int((ids == img_context_id).sum()), tuple(labels[:, 1:].shape): batch.supervised}


class _KnownCounts(TorchDispatchMode):
    """Answers `nonzero` and boolean-mask indexing on fake tensors with the counts of the real batch."""

    def __init__(self, counts: dict[tuple, int]):
        super().__init__()
        self.counts = counts

    def _count(self, mask: torch.Tensor) -> int:
        key = tuple(mask.shape)
        if key not in self.counts:
            raise RuntimeError(f"plan: a data-dependent op on a mask of shape {key} that the planner cannot "
                               f"size (known: {sorted(self.counts)}); the model's forward changed?")
        return self.counts[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten.nonzero.default:
            x = args[0]
            return torch.zeros((self._count(x), x.dim()), dtype=torch.long, device=x.device)
        if func in _INDEX_OPS and any(i is not None and i.dtype == torch.bool for i in args[1]):
            indices = []
            for i in args[1]:
                if i is not None and i.dtype == torch.bool:
                    n = self._count(i)
                    indices += [torch.zeros(n, dtype=torch.long, device=i.device) for _ in range(i.dim())]
                else:
                    indices.append(i)
            args = (args[0], indices, *args[2:])
        return func(*args, **kwargs)


def _separate_propagation_mode():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed.tensor import _sharding_prop

    own = FakeTensorMode()
    return mock.patch.object(_sharding_prop, "detect_fake_mode", lambda *a, **k: own)


def _one_sample_per_row():
    """transformers looks for packed sequences in the position ids and, on fake tensors, cannot read them,
    so it assumes packing and builds an explicit (rows, 1, T, T) mask, which sends SDPA to its math kernel.
    The planned rows hold one sample each; on real tensors the lookup returns None for them, as here."""
    from transformers import masking_utils

    return mock.patch.object(masking_utils, "find_packed_sequence_indices", lambda position_ids: None)


@dataclass
class StepMemory:
    """Bytes per rank, from FSDPMemTracker. States are the steady state after the optimizer step;
    activations and temporaries are their values at the moment of the peak."""

    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    temporaries_bytes: int
    peak_bytes: int
    activation_peak_bytes: int  # the largest activation footprint seen at any snapshot
    host_resident_peak_bytes: int  # the device peak if the sharded states lived in host memory (CPU offload)
    at_peak: dict = field(default_factory=dict)


def _by_name(snapshot: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for dev_snap in snapshot.values():
        for key, value in dev_snap.items():
            name = getattr(key, "value", key)
            out[name] = out.get(name, 0) + int(value)
    return out


def _sum(snap: dict[str, int], names) -> int:
    return sum(snap.get(n, 0) for n in names)


def _all_snapshots(tracker: FSDPMemTracker):
    yield _by_name(tracker.get_tracker_snapshot("peak"))
    for stats in tracker.memory_tracking.values():
        for snaps in getattr(stats, "snapshots", {}).values():
            for snap in snaps:
                yield _by_name(snap)


def _summarise(tracker: FSDPMemTracker, after_step: dict[str, int]) -> StepMemory:
    peak = _by_name(tracker.get_tracker_snapshot("peak"))
    states = [n for names in STATES.values() for n in names]
    snaps = list(_all_snapshots(tracker))
    return StepMemory(
        params_bytes=_sum(after_step, STATES["params"]), grads_bytes=_sum(after_step, STATES["grads"]),
        optimizer_bytes=_sum(after_step, STATES["optimizer"]),
        activations_bytes=_sum(peak, ACTIVATIONS), temporaries_bytes=_sum(peak, TEMPORARIES),
        peak_bytes=peak.get("Total", 0),
        activation_peak_bytes=max(_sum(s, ACTIVATIONS) for s in snaps),
        host_resident_peak_bytes=max(s.get("Total", 0) - _sum(s, states) for s in snaps),
        at_peak={k: v for k, v in peak.items() if k != "Total"})


def tracked_step(model, optimizer, batch: Batch, *, world_size: int, max_grad_norm: float,
                 tune, accumulating: bool, fake: bool = False, counts: dict | None = None,
                 progress=None) -> StepMemory:
    """Run one optimizer step of the training loop under FSDPMemTracker and return its memory.

    Before tracking, the optimizer states are created (a step on zero gradients) and, when
    `accumulating`, gradients of earlier micro-batches are put in place."""
    say = progress or (lambda msg: None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    set_frozen_eval(model, tune)
    guard = contextlib.ExitStack()
    if fake:
        guard.enter_context(_separate_propagation_mode())
        guard.enter_context(_one_sample_per_row())
    with guard:
        for p in trainable:
            p.grad = torch.zeros_like(p)
        say("optimizer states (a step on zero gradients, untracked)")
        optimizer.step()  # AdamW creates its states lazily on the first step
        optimizer.zero_grad(set_to_none=not accumulating)
        tracker = FSDPMemTracker(model, optimizer)
        tracker.track_inputs(tuple(batch.inputs.values()))
        counting = _KnownCounts(counts or {}) if fake else contextlib.nullcontext()
        with counting, tracker:
            say("forward")
            # the loop divides by the global batch's count; any positive number gives the same memory
            out = model(**batch.inputs, use_cache=False, num_items_in_batch=float(max(1, batch.supervised)),
                        loss_only=True)
            say("backward")
            (out.loss * world_size).backward()
            del out
            say("clipping and optimizer step")
            torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm if max_grad_norm > 0 else float("inf"))
            optimizer.step()
            after_step = _by_name(tracker.get_tracker_snapshot())
            optimizer.zero_grad(set_to_none=True)
    return _summarise(tracker, after_step)


def dcp_bytes(model, optimizer) -> int:
    """Bytes this rank writes into a DCP checkpoint: the local shards of get_state_dict(model, optimizer),
    the call `save_checkpoint` makes."""
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.tensor import DTensor

    model_sd, optim_sd = get_state_dict(model, optimizer)
    total = 0

    def add(obj):
        nonlocal total
        if isinstance(obj, DTensor):
            obj = obj.to_local()
        if isinstance(obj, torch.Tensor):
            total += obj.numel() * obj.element_size()
        elif isinstance(obj, dict):
            for v in obj.values():
                add(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                add(v)

    add(model_sd)
    add(optim_sd)
    return total
