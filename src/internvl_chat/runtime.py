"""Process set-up shared by the commands: the process group and the dtype names.

Imports no torch at module level, so a command's argument parser can read the dtype table without
paying for torch; torch is imported when a dtype is resolved or a process group is made.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Every dtype spelling a command accepts -> the torch attribute. Each command accepts every spelling of
# the dtypes it offers (train: bf16/fp32, eval and chat/serve/web: bf16/fp16/fp32, chat/serve/web also
# "auto"); the first spelling of each dtype is the one a command stores (`dtype_name`).
DTYPE_NAMES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
               "fp32": "float32", "float32": "float32"}


def dtype_choices(*names: str) -> tuple[str, ...]:
    """The dtypes a command offers (checked against the table, so a typo fails at import)."""
    unknown = [n for n in names if n not in DTYPE_NAMES]
    if unknown:
        raise KeyError(f"not in runtime.DTYPE_NAMES: {unknown}")
    return names


def dtype_name(name: str) -> str:
    """The stored spelling of a dtype (bfloat16 -> bf16, so both give the same eval cache identity);
    a name not in the table ("auto", a typo) comes back unchanged for the caller to accept or refuse."""
    attr = DTYPE_NAMES.get(name)
    return next((short for short, a in DTYPE_NAMES.items() if a == attr), name)


def add_dtype_argument(p, *names: str, default: str, auto: str | None = None) -> None:
    """`--dtype` accepting every spelling of `names` (plus "auto", meaning `auto`, when given), one help text."""
    spellings = ", ".join("|".join(s for s, a in DTYPE_NAMES.items() if a == DTYPE_NAMES[n]) for n in names)
    p.add_argument("--dtype", type=dtype_name, default=default,
                   choices=(("auto",) if auto else ()) + tuple(map(dtype_name, dtype_choices(*names))),
                   help=f"weights dtype: {spellings}" + (f"; auto: {auto}" if auto else ""))


def torch_dtype(name: str) -> "torch.dtype":
    import torch

    return getattr(torch, DTYPE_NAMES[name])


def _cpu() -> "torch.device":
    import torch

    return torch.device("cpu")


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, its local rank and device. The defaults are one
    process without a process group (eval run directly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: "torch.device" = field(default_factory=_cpu)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for with one process or no process group)."""
        import torch.distributed as dist

        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()


def init_distributed(backend: str = "auto", timeout_s: float = 1800) -> DistInfo:
    """Join the torchrun/Slurm process group, or make a one-process group when run directly.

    A one-process group keeps a single code path (FSDP2, DCP) for 1 and N processes.
    backend "auto": nccl on CUDA, else gloo; "gloo" keeps the process on the CPU.
    """
    import torch
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and backend != "gloo"
    if backend == "auto":
        backend = "nccl" if use_cuda else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                    device_id=device if use_cuda else None)
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1,
                                    timeout=timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def shutdown_distributed() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        # Tear down while the interpreter is fully alive: FSDP state caught in reference cycles would
        # otherwise be freed during interpreter finalization, where a gloo thread releasing a tensor
        # aborts the process ("terminate called without an active exception", SIGABRT) after the work
        # is done. The barrier keeps ranks from leaving while a peer still talks to them (environment.md 3.1).
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
