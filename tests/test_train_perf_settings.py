"""The torchtitan-style speed settings: FSDP groups beyond the blocks, activation checkpointing
every N layers, fused AdamW on CUDA only, and the Python GC on a fixed schedule."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule

from internvl_chat.model.presets import build_tiny_model
from internvl_chat.train import load_config
from internvl_chat.train.gc_control import ManualGC
from internvl_chat.train import model_setup, parallel
from internvl_chat.train.model_setup import build_sharded_model
from internvl_chat.train.optim import use_fused
from internvl_chat.runtime import init_distributed
from internvl_chat.train.parallel import extra_groups


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The tiny model sharded as with 2+ processes (extra groups on), in a one-rank group."""
    cfg = load_config("configs/tiny.yaml", [f"output_dir={tmp_path_factory.mktemp('o')}",
                                            "model.preset_args={image_size: 56, llm_layers: 4, vit_layers: 4}",
                                            "activation_checkpointing_every=2"])
    owns = not dist.is_initialized()
    info = init_distributed("gloo")
    real = parallel.shard_model
    try:
        model_setup.shard_model = lambda m, c, i: real(m, c, i, extra=True)
        model, _ = build_sharded_model(cfg, info)
    finally:
        model_setup.shard_model = real
        if owns:
            dist.destroy_process_group()
    return model


def test_embeddings_head_projector_and_vit_embeddings_are_their_own_fsdp_groups(sharded):
    llm = sharded.language_model
    for module in (llm.get_input_embeddings(), sharded.mlp1, sharded.vision_model.embeddings):
        assert isinstance(module, FSDPModule)
    # [norm, lm_head] share one group: fully_shard on a list makes both FSDP modules with one state
    norm, head = llm.get_decoder().norm, llm.get_output_embeddings()
    assert isinstance(norm, FSDPModule) and isinstance(head, FSDPModule)
    assert norm._get_fsdp_state()._fsdp_param_group is head._get_fsdp_state()._fsdp_param_group
    root_group = sharded._get_fsdp_state()._fsdp_param_group
    root_params = sum(p.numel() for p in root_group.fsdp_params) if root_group else 0  # (local shards' full sizes)
    total = sum(p.numel() for p in sharded.parameters())
    assert root_params < 0.01 * total


def test_a_tied_lm_head_stays_with_its_embedding():
    model, _ = build_tiny_model()
    llm = model.language_model
    llm.lm_head.weight = llm.model.embed_tokens.weight  # as SmolLM2 (the demo's LLM) ties them
    assert llm.get_output_embeddings().weight is llm.get_input_embeddings().weight
    first_modules, keep_gathered = extra_groups(model)[0]
    assert llm.get_input_embeddings() in first_modules and llm.get_output_embeddings() in first_modules
    assert keep_gathered is False


def test_activation_checkpointing_every_second_layer(sharded):
    layers = sharded.language_model.get_decoder().layers
    assert [layer.gradient_checkpointing for layer in layers] == [True, False, True, False]
    assert sharded.vision_model.encoder.gradient_checkpointing and sharded.vision_model.encoder.checkpoint_every == 2


def test_fused_adamw_only_where_every_parameter_is_on_cuda():
    cuda, cpu = SimpleNamespace(device=torch.device("cuda", 0)), SimpleNamespace(device=torch.device("cpu"))
    assert use_fused([{"params": [cuda, cuda]}])
    assert not use_fused([{"params": [cuda]}, {"params": [cpu]}])  # CPU offload
    assert not use_fused([{"params": [cuda]}], allowed=False)
    assert not use_fused([{"params": [torch.nn.Parameter(torch.zeros(2))]}])


def test_gc_is_off_in_the_loop_and_collected_on_schedule():
    assert gc.isenabled()
    with ManualGC(3) as collector:
        assert not gc.isenabled()
        assert [collector.step(s) for s in range(1, 7)] == [False, False, True, False, False, True]
    assert gc.isenabled()
    with ManualGC(0):
        assert gc.isenabled()


def test_background_checkpoints_hold_what_a_synchronous_save_holds(tmp_path):
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    from internvl_chat.train import train

    saved = {}
    for mode in ("true", "false"):
        out = tmp_path / mode
        cfg = load_config("configs/tiny.yaml", [f"output_dir={out}", "max_steps=4", "save_every=2", "keep_last=2",
                                                f"async_checkpoint={mode}", "export=false", "num_threads=1",
                                                "progress_bar=false", "tensorboard=false", "plot=false",
                                                "data.synthetic_train=8"])
        assert train(cfg).status == "completed"
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_2", "step_4"]
        dcp_to_torch_save(out / "checkpoints" / "step_2", tmp_path / f"{mode}.pt")
        saved[mode] = torch.load(tmp_path / f"{mode}.pt", weights_only=True)
    background, sync = saved["true"]["model"], saved["false"]["model"]
    assert background.keys() == sync.keys()
    for k in sync:
        assert torch.equal(background[k], sync[k]), k


def test_selection_inputs_stay_on_the_host_and_the_loss_is_unchanged():
    """labels and image_flags only select positions/images: kept on the host, the model's boolean
    selections need no device-to-host sync; the loss is the same as with everything on the device."""
    from internvl_chat.data import Collator

    model, tok = build_tiny_model()
    ids = torch.tensor([tok.convert_tokens_to_ids("<img>")] + [model.img_context_token_id] * model.num_image_token
                       + [tok.convert_tokens_to_ids("</img>")] + list(range(10, 30)))
    labels = ids.clone()
    labels[:10] = -100
    item = {"input_ids": ids, "labels": labels, "pixel_values": torch.randn(1, 3, 56, 56),
            "image_flags": torch.tensor([1]), "dataset": "t", "id": "0", "truncated": 0}
    batch = Collator(tok.pad_token_id)([item, dict(item, id="1")])
    on_meta = batch.to(torch.device("meta")).inputs
    assert on_meta["input_ids"].device.type == "meta" and on_meta["pixel_values"].device.type == "meta"
    assert on_meta["labels"].device.type == "cpu" and on_meta["image_flags"].device.type == "cpu"
    with torch.no_grad():
        host = model(**batch.to(torch.device("cpu")).inputs, loss_only=True).loss
        plain = model(**{k: batch.inputs[k] for k in ("input_ids", "labels", "attention_mask", "position_ids",
                                                      "pixel_values", "image_flags")}).loss
    torch.testing.assert_close(host, plain)
