"""`internvl-chat plan`: one training step on a fake world, checked against the same step on real tensors.

- the planner on the tiny config through the real CLI (table, JSON fields, exit 0);
- validation: for small configs on CPU with 1 and 2 processes (torchrun, gloo), planned parameter,
  gradient and optimizer bytes equal what the real step holds, exactly, and the planned peaks are
  within 15 % of the measured ones (same FSDPMemTracker, real tensors);
- the trainer's FSDP2 sharding of a scaled-down V1.2-shaped model on fake worlds of 8 and 64 ranks;
- the suggestion path (smaller per-device batch; CPU offload and more GPUs when states alone overflow);
- bad input (unknown GPU, world size 0, a config that does not load): one line on stderr, exit 2.
About a minute and a half on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_chat.train.config import load_config
from internvl_chat.train.plan import GIB, Target, plan

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")
# A small config whose activations dominate (so the activation check means something).
SMALL = ["num_threads=1",
         "preset_args={image_size: 112, llm_hidden: 128, vit_hidden: 64, llm_layers: 3, vit_layers: 3}"]


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "internvl_chat.cli", "plan", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cpu_target(world: int, capacity_gib: float = 1024.0) -> Target:
    return Target(world, int(capacity_gib * GIB), 1e12, margin_bytes=0, fragmentation=0.0, device="cpu")


def test_plan_tiny_config_through_the_cli(tmp_path):
    out = tmp_path / "plan.json"
    proc = cli(TINY, "--world-size", "2", "--gpu", "a100-80g", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[plan]" in proc.stderr and "fits" in proc.stdout and "DCP checkpoint / rank" in proc.stdout
    data = json.loads(out.read_text())
    per_gpu = data["per_gpu"]
    for key in ("params_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes", "peak_bytes",
                "capacity_bytes"):
        assert isinstance(per_gpu[key], int) and per_gpu[key] >= 0, key
    assert data["world_size"] == 2 and data["fits"] is True and data["suggestion"] is None
    assert per_gpu["capacity_bytes"] == 80 * GIB
    # AdamW: two fp32 moments per parameter shard, plus a 4-byte step count per tensor.
    assert 2 * per_gpu["params_bytes"] <= per_gpu["optimizer_bytes"] < 2 * per_gpu["params_bytes"] + 4096
    assert per_gpu["grads_bytes"] == per_gpu["params_bytes"]  # everything trains in tiny.yaml
    cfg = load_config(TINY)
    assert data["steps_per_epoch"] == 4 * cfg.data.synthetic_train // cfg.batch.global_batch_size
    assert data["flops_per_step"] > 0 and data["hours"] > 0 and data["gpu_hours"] == pytest.approx(2 * data["hours"])
    assert data["params_total"] > 100_000
    assert data["dcp_bytes_per_rank"] == per_gpu["params_bytes"] + per_gpu["optimizer_bytes"]


def measure_real(world: int, overrides: list[str], tmp_path: Path) -> dict:
    out = tmp_path / f"measured_{world}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
           "-m", "internvl_chat.train.plan_check", TINY, *overrides, "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("world", [1, 2])
def test_plan_matches_a_real_step(world, tmp_path):
    measured = measure_real(world, SMALL, tmp_path)
    planned = plan(load_config(TINY, SMALL), cpu_target(world))
    m = planned.memory
    rank0 = measured["0"]
    assert (m.params_bytes, m.grads_bytes, m.optimizer_bytes) == \
        (rank0["params_bytes"], rank0["grads_bytes"], rank0["optimizer_bytes"])
    assert planned.dcp_bytes_per_rank == rank0["dcp_bytes"]
    for other in measured.values():  # rank 0 holds the largest shards: the plan is the worst rank
        assert other["optimizer_bytes"] <= m.optimizer_bytes and other["peak_bytes"] <= m.peak_bytes
    assert m.activation_peak_bytes > m.params_bytes  # activations matter in this config
    assert m.activation_peak_bytes == pytest.approx(rank0["activation_peak_bytes"], rel=0.15)
    assert m.peak_bytes == pytest.approx(rank0["peak_bytes"], rel=0.15)


def v1_2_shaped(tmp_path: Path) -> Path:
    """A released-layout folder (config.json only) with V1.2's structure at a fraction of its widths."""
    from internvl_chat.model.presets import v1_2_config

    config = v1_2_config()
    v, lm = config.vision_config, config.llm_config
    v.hidden_size, v.intermediate_size, v.num_attention_heads, v.num_hidden_layers = 200, 800, 5, 3
    lm.hidden_size, lm.intermediate_size, lm.num_hidden_layers = 448, 1280, 3
    lm.num_attention_heads, lm.num_key_value_heads, lm.vocab_size = 7, 1, 4007
    folder = tmp_path / "v1_2_small"
    config.save_pretrained(folder)
    return folder


def shard_bytes(model_folder: Path, world: int) -> tuple[int, int]:
    """(fp32 bytes of one rank's FSDP2 shards: dim 0 split in ceil(rows / world), padded, per parameter;
    parameter count)."""
    import torch

    from internvl_chat.model import InternVLChatModel
    from internvl_chat.train.plan_model import planned_model

    cfg = load_config(TINY, [f"model.path={model_folder}", "model.preset=null"])
    with torch.device("meta"):
        model = InternVLChatModel(planned_model(cfg).config)
    params = list(model.parameters())
    return (sum(math.ceil(p.shape[0] / world) * (p.numel() // p.shape[0]) * 4 for p in params),
            sum(p.numel() for p in params))


@pytest.mark.parametrize("world", [8, 64])
def test_v1_2_shaped_model_shards_over_a_fake_world(world, tmp_path):
    folder = v1_2_shaped(tmp_path)
    overrides = [f"model.path={folder}", "model.preset=null", "per_device_batch_size=1",
                 f"global_batch_size={world}", "max_seq_length=320", "dtype=bf16"]
    p = plan(load_config(TINY, overrides), cpu_target(world))
    assert p.batch.images == 1 and p.batch.image_size == 448 and p.batch.num_image_token == 256
    expected_bytes, expected_params = shard_bytes(folder, world)
    assert p.params_total == expected_params and p.memory.params_bytes == expected_bytes
    assert p.memory.grads_bytes == p.memory.params_bytes
    assert p.memory.optimizer_bytes >= 2 * p.memory.params_bytes
    assert p.memory.peak_bytes > p.memory.params_bytes + p.memory.optimizer_bytes


def test_suggests_the_largest_smaller_batch_that_fits(tmp_path):
    """Through the CLI: a GPU one byte too small for per-device batch 4 gets the largest smaller batch,
    found by planning again."""
    full = plan(load_config(TINY, SMALL), cpu_target(2))
    gib = (full.required_bytes - 1) / GIB
    out = tmp_path / "plan.json"
    proc = cli(TINY, *SMALL, "--world-size", "2", "--gpu-memory", f"{gib:.12f}", "--margin-gib", "0",
               "--fragmentation", "0", "--json", str(out))
    assert proc.returncode == 1, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["fits"] is False and data["per_gpu"]["required_bytes"] == full.required_bytes
    tried = data["alternatives"]
    assert data["suggestion"] == tried[-1]["override"] and tried[-1]["fits"] and tried[-1]["replanned"]
    assert tried[-1]["required_bytes"] <= data["per_gpu"]["capacity_bytes"]
    assert all(not t["fits"] for t in tried[:-1])
    assert data["suggestion"] in ("per_device_batch_size=2", "per_device_batch_size=1")
    assert f"suggestion: {data['suggestion']}" in proc.stdout


def scaled(base, world: int, states: int, rest: int):
    """`base` with chosen sizes: `states` bytes of sharded states at world 2 (shrinking with the world),
    `rest` bytes of activations and temporaries."""
    import dataclasses

    from internvl_chat.train.plan_step import StepMemory

    s = states * 2 // world
    memory = StepMemory(s // 4, s // 4, s // 2, rest // 2, rest - rest // 2, s + rest, rest // 2, rest)
    target = dataclasses.replace(base.target, world_size=world)
    return dataclasses.replace(base, target=target, memory=memory)


def test_suggestion_order_when_the_states_alone_overflow():
    """States too big for the GPU: a smaller batch cannot help and is not planned; offloading is
    suggested when the rest fits, more GPUs when it is already on."""
    import dataclasses

    from internvl_chat.train.plan_suggest import suggest

    base = plan(load_config(TINY, SMALL), cpu_target(2, 1.0))
    gib = GIB
    replans = []

    def replan(cfg, target):
        replans.append((cfg.batch.per_device_batch_size, cfg.parallel.cpu_offload, target.world_size))
        return scaled(dataclasses.replace(base, cfg=cfg), target.world_size, int(1.5 * gib), int(0.3 * gib))

    squeezed = scaled(base, 2, int(1.5 * gib), int(0.3 * gib))  # 1.8 GiB on a 1 GiB GPU
    suggestion, tried = suggest(squeezed, replan)
    assert suggestion == "parallel.cpu_offload=true" and replans == []
    assert tried == [{**tried[0], "fits": True, "replanned": False, "host_bytes_per_rank": int(1.5 * gib) // 4 * 4}]
    offloading = dataclasses.replace(squeezed, cfg=load_config(TINY, SMALL + ["parallel.cpu_offload=true"]),
                                     offloaded=True, memory=dataclasses.replace(squeezed.memory,
                                                                                host_resident_peak_bytes=2 * gib))
    suggestion, tried = suggest(offloading, replan)
    # world 4: 0.75 GiB of states + 0.3 GiB does not fit 1 GiB; world 8: 0.375 + 0.3 does.
    assert suggestion == "--world-size 8 per_device_batch_size=1" or suggestion == "--world-size 8"
    assert [r[2] for r in replans] == [4, 8] and [t["fits"] for t in tried] == [False, False, True][-len(tried):]


@pytest.mark.parametrize("args, message", [
    ([TINY, "--world-size", "2", "--gpu", "tpu-v9"], "unknown GPU 'tpu-v9'"),
    ([TINY, "--world-size", "0", "--gpu", "a100-80g"], "--world-size must be >= 1"),
    (["configs/does_not_exist.yaml", "--world-size", "8", "--gpu", "a100-80g"], "config file not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = cli(*args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("internvl-chat plan: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    ([TINY, "optim.lrr=1", "--world-size", "2", "--gpu", "a100-80g"], "unknown key optim.lrr"),
    ([TINY, "--world-size", "3", "--gpu", "a100-80g"], "not divisible"),
    ([TINY, "--world-size", "2"], "give exactly one of --gpu NAME or --gpu-memory GIB"),
    ([TINY, "--world-size", "2", "--gpu", "a100-80g", "--images-per-row", "500"], "do not fit in 4 rows"),
    ([TINY, "--world-size", "2", "--gpu", "a100-80g", "--mfu", "1.5"], "--mfu must be in (0, 1]"),
])
def test_more_bad_input_in_process(args, message, capsys):
    from internvl_chat.train.plan import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
