"""Break 3: flash_attention_2 only where it runs (flash-attn installed, CUDA device, bf16/fp16).
Break 4: frozen parameters are kept in the compute dtype, not as fp32 master shards."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.distributed as dist

from internvl_chat.model import modeling
from internvl_chat.model.modeling import default_llm_attn_implementation, resolve_attn_implementation
from internvl_chat.model.presets import init_model_dir
from internvl_chat.train import load_config
from internvl_chat.train.model_setup import _attn_impl, build_sharded_model
from internvl_chat.runtime import DistInfo, init_distributed

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
DEVICES = [torch.device("cpu"), torch.device("cuda", 0), torch.device("meta"), None]


@pytest.mark.parametrize("dtype,device,flash", list(itertools.product(DTYPES, DEVICES, [True, False])))
def test_every_dtype_device_flash_case(dtype, device, flash):
    got = default_llm_attn_implementation(dtype, device, flash_available=flash)
    runs_flash = flash and device is not None and device.type == "cuda" and dtype != torch.float32
    assert got == ("flash_attention_2" if runs_flash else "sdpa")


def test_an_explicit_flash_request_that_cannot_run_says_why():
    with pytest.raises(ValueError, match="needs a CUDA device and bf16/fp16"):
        resolve_attn_implementation("flash_attention_2", torch.float32, "cuda:0", flash_available=True)
    with pytest.raises(ValueError, match="on cpu"):
        resolve_attn_implementation("flash_attention_2", torch.bfloat16, None, flash_available=True)
    assert resolve_attn_implementation("eager", torch.float32, "cpu") == "eager"


@pytest.fixture()
def gpu_host_with_flash(monkeypatch):
    """What the choice sees on a GPU host with flash-attn installed."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(modeling, "flash_attn_available", lambda: True)


def test_tiny_fp32_config_on_a_gpu_host_trains_with_sdpa(gpu_host_with_flash):
    cuda = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cuda", 0))
    tiny = load_config("configs/tiny.yaml")  # parallel.dtype: fp32
    assert _attn_impl(tiny, cuda) == "sdpa"
    bf16 = load_config("configs/tiny.yaml", ["parallel.dtype=bf16"])
    assert _attn_impl(bf16, cuda) == "flash_attention_2"
    cpu = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert _attn_impl(bf16, cpu) == "sdpa"


def test_a_model_loaded_onto_the_cpu_of_a_gpu_host_gets_sdpa(tmp_path, gpu_host_with_flash):
    """`chat`/`serve` without --device, `make demo`: the model stays on the CPU."""
    from internvl_chat.model import InternVLChatModel

    init_model_dir("tiny", tmp_path / "m")
    model = InternVLChatModel.from_pretrained(tmp_path / "m", dtype=torch.bfloat16)
    assert model.language_model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("tune", [["freeze_llm=true", "freeze_backbone=true"], ["use_llm_lora=4", "freeze_backbone=true"]])
def test_frozen_parameters_are_bf16_and_trained_ones_fp32(tmp_path, tune):
    cfg = load_config("configs/tiny.yaml", ["parallel.dtype=bf16", f"output_dir={tmp_path}", *tune])
    owns = not dist.is_initialized()
    info = init_distributed("gloo")
    try:
        model, _ = build_sharded_model(cfg, info)
    finally:
        if owns:
            dist.destroy_process_group()
    frozen = {n: p.dtype for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and trained
    assert set(frozen.values()) == {torch.bfloat16}, frozen
    assert set(trained.values()) == {torch.float32}, trained
    assert any("language_model" in n for n in frozen)
