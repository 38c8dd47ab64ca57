"""Break 8: `--device auto` / `cuda` with several GPUs puts the model on them with the split map
(model/device_map.py), at load time, for serve / chat / eval.
Break 6: a multi-process `eval` sets its collective timeout explicitly (NCCL's default is 10 min)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch

from internvl_chat.eval import cli as eval_cli
from internvl_chat.infer.engine import InferenceEngine
from internvl_chat.model import InternVLChatModel
from internvl_chat.model.device_map import resolve_device_map, split_model
from internvl_chat.model.presets import init_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return init_model_dir("tiny", tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("device,gpus,expected", [
    (None, 4, None), ("cpu", 4, None), ("auto", 0, None), ("auto", 1, {"": 0}), ("cuda", 1, {"": 0}),
    ("cuda:3", 4, {"": 3}), ("auto", 4, "split"), ("cuda", 2, "split")])
def test_device_choices(device, gpus, expected):
    got = resolve_device_map(device, 60, gpu_count=gpus)
    assert got == (split_model(60, gpus) if expected == "split" else expected)


def test_cuda_without_a_gpu_is_an_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device_map("cuda", 60, gpu_count=0)


def test_split_map_covers_every_weight_and_loads(model_dir):
    """The split map's module names are the model's: loading with it (GPUs replaced by the CPU here)
    places every weight, and the model answers exactly as one loaded without a map."""
    layers = 2
    split = split_model(layers, 2)
    assert {f"language_model.model.layers.{i}" for i in range(layers)} <= set(split)
    on_cpu = {name: "cpu" for name in split}
    placed = InternVLChatModel.from_pretrained(model_dir, device_map=on_cpu)
    plain = InternVLChatModel.from_pretrained(model_dir)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(placed.language_model(input_ids=ids).logits, plain.language_model(input_ids=ids).logits)


@pytest.fixture()
def four_gpus(monkeypatch):
    calls = []
    real = InternVLChatModel.from_pretrained

    def capture(path, **kw):
        calls.append(kw.get("device_map"))
        kw.pop("device_map", None)
        return real(path, **kw)  # load on the CPU: only the requested placement is checked

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(InternVLChatModel, "from_pretrained", staticmethod(capture))
    return calls


def test_serve_and_chat_engine_split_the_model_with_device_auto(model_dir, four_gpus):
    InferenceEngine.from_model_dir(model_dir, device="auto")
    InferenceEngine.from_model_dir(model_dir, device="cuda:1")
    assert four_gpus == [split_model(2, 4), {"": 1}]


def test_eval_loads_with_the_split_map(model_dir, four_gpus):
    from PIL import Image

    gen = eval_cli.LazyModelGenerator(str(model_dir), "auto", torch.float32)
    answers = gen([Image.new("RGB", (32, 32))], ["what is it?"], {"max_new_tokens": 2, "do_sample": False})
    assert len(answers) == 1 and four_gpus == [split_model(2, 4)]


def test_multi_process_eval_sets_an_explicit_timeout(monkeypatch):
    import torch.distributed as dist

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: seen.update(kw, backend=backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    _, device = eval_cli._init_distributed("cpu", 240)
    assert seen["backend"] == "gloo" and seen["timeout"] == timedelta(minutes=240) and device == "cpu"
    assert eval_cli._parser().parse_args([]).dist_timeout_min >= 60
