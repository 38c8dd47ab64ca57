"""The training engine in one process (FSDP2 on a one-rank gloo group): accumulation, freezing,
LoRA + merge, export, non-finite steps, checkpoint selection. Each run is a few seconds on CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from internvl_chat.data import synth
from internvl_chat.model import InternVLChatModel
from internvl_chat.model.presets import build_tiny_model
from internvl_chat.train import load_config, train
from internvl_chat.train.checkpoint import latest_checkpoint
from internvl_chat.errors import UserError
from internvl_chat.train.cli import merge_lora_main
from internvl_chat.train.data import RandomTokenDataset
from internvl_chat.train.monitor import read_metrics

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["num_threads=1", "progress_bar=false", "tensorboard=false", "plot=false", "num_workers=0"]


@pytest.fixture(scope="module")
def meta(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synth.generate(root, n_train=16, n_test=0, seed=0, image_size=56)  # 4 tasks x 16 = 64 samples
    return root / "meta.json"


def tiny(out: Path, meta: Path, *overrides: str):
    return load_config(ROOT / "configs" / "tiny.yaml",
                       [f"output_dir={out}", "data.source=meta", f"meta_path={meta}", *QUIET, *overrides])


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


def initial_weights() -> dict[str, torch.Tensor]:
    model, _ = build_tiny_model(seed=42)  # tiny.yaml: seed 42 builds the preset
    return model.state_dict()


def exported(out: Path) -> dict[str, torch.Tensor]:
    sd = {}
    for f in sorted((out / "model").glob("*.safetensors")):
        sd.update(load_file(f))
    return sd


def test_accumulation_matches_larger_batch_and_export_loads_and_generates(tmp_path, meta):
    a = train(tiny(tmp_path / "a", meta, "max_steps=4", "per_device_batch_size=2", "export_max_shard_size=200KB",
                   "tensorboard=true", "plot=true"))  # 2 x accumulation 4
    b = train(tiny(tmp_path / "b", meta, "max_steps=4", "per_device_batch_size=8", "export=false"))  # 8 x 1
    assert a.status == b.status == "completed"
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(la) == len(lb) == 4 and la[0] > 0
    assert la == pytest.approx(lb, abs=1e-5)
    ga = [r["grad_norm"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl")]
    gb = [r["grad_norm"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl")]
    assert ga == pytest.approx(gb, rel=1e-4)
    row = read_metrics(tmp_path / "a" / "metrics.jsonl")[-1]
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"} <= set(row) and row["mfu"] > 0
    assert list((tmp_path / "a" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "a" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"

    # The export is the released layout, sharded, and loads strictly and chats.
    export = tmp_path / "a" / "model"
    assert (export / "model.safetensors.index.json").is_file() and (export / "config.json").is_file()
    assert len(list(export.glob("model-*.safetensors"))) > 1
    model = InternVLChatModel.from_pretrained(export)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(export)
    reply = model.chat(tok, torch.zeros(1, 3, 56, 56), "what shape is it?", dict(max_new_tokens=5, do_sample=False))
    assert isinstance(reply, str)
    trained, init = exported(tmp_path / "a"), initial_weights()
    assert set(trained) == set(init)
    assert any(not torch.equal(trained[k], init[k]) for k in init)


def test_frozen_parameters_stay_bit_identical(tmp_path, meta):
    out = tmp_path / "frozen"
    result = train(tiny(out, meta, "max_steps=3", "freeze_backbone=true", "freeze_mlp=true",
                        "unfreeze_vit_layers=-1", "optim.lr=1e-2"))
    assert result.status == "completed"
    trained, init = exported(out), initial_weights()
    for name in init:
        same = torch.equal(trained[name], init[name])
        if name.startswith("vision_model.encoder.layers.1."):
            continue  # unfrozen by unfreeze_vit_layers=-1 (the last layer)
        if name.startswith(("vision_model.", "mlp1.")):
            assert same, f"{name} is frozen but changed"
    changed = lambda prefix: any(not torch.equal(trained[k], init[k]) for k in init if k.startswith(prefix))  # noqa: E731
    assert changed("vision_model.encoder.layers.1.") and changed("language_model.")


def test_lora_trains_only_adapters_and_merge_lora_gives_the_same_model(tmp_path, meta):
    out = tmp_path / "lora"
    result = train(tiny(out, meta, "max_steps=3", "freeze_llm=true", "freeze_backbone=true", "freeze_mlp=true",
                        "use_llm_lora=4", "optim.lr=1e-2"))
    assert result.status == "completed"
    trained, init = exported(out), initial_weights()
    lora_keys = [k for k in trained if "lora_" in k]
    assert lora_keys and all(k.startswith("language_model.") for k in lora_keys)
    assert any(not torch.equal(trained[k], torch.zeros_like(trained[k])) for k in lora_keys if "lora_B" in k)
    for k, v in trained.items():  # every base weight is untouched
        if "lora_" not in k:
            base = k.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(v, init[base]), f"{k} changed but only LoRA adapters should train"

    merged_dir = tmp_path / "merged"
    assert merge_lora_main(["--model", str(out / "model"), "--output", str(merged_dir)]) == 0
    lora_model = InternVLChatModel.from_pretrained(out / "model")
    merged = InternVLChatModel.from_pretrained(merged_dir)
    assert merged.config.use_llm_lora == 0
    assert not any("lora_" in k for k in merged.state_dict())
    ids = torch.randint(10, 300, (2, 24))
    with torch.no_grad():
        a = lora_model(input_ids=ids).logits
        b = merged(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)


class NaNImages(RandomTokenDataset):
    """Random samples whose images are NaN for the listed indices (a corrupt-data stand-in)."""

    def __init__(self, bad, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad = set(bad)

    def __getitem__(self, i):
        item = super().__getitem__(i)
        if int(i) in self.bad:
            item["pixel_values"] = torch.full_like(item["pixel_values"], float("nan"))
        return item


def _nan_dataset(bad):
    model, tok = build_tiny_model()
    return NaNImages(bad, 32, tok, model.num_image_token, 56, max_length=64)


def test_nonfinite_steps_are_skipped_and_a_streak_stops_with_a_checkpoint(tmp_path, meta):
    out = tmp_path / "some_nan"
    cfg = tiny(out, meta, "data.source=random", "meta_path=null", "max_steps=4", "per_device_batch_size=8",
               "export=false", "max_nonfinite_in_a_row=10")
    result = train(cfg, dataset=_nan_dataset(bad=range(0, 32, 5)))  # some steps get a NaN image
    rows = read_metrics(out / "metrics.jsonl")
    skipped = [r for r in rows if not (r["loss"] == r["loss"])]  # NaN != NaN
    assert result.status == "completed" and 0 < len(skipped) < len(rows)
    assert rows[-1]["skipped"] == len(skipped)
    ckpt = latest_checkpoint(out / "checkpoints")
    assert json.loads((ckpt / "trainer_state.json").read_text())["loop"]["skipped"] == len(skipped)

    out = tmp_path / "all_nan"
    cfg = tiny(out, meta, "data.source=random", "meta_path=null", "max_steps=10", "per_device_batch_size=8",
               "max_nonfinite_in_a_row=3")
    result = train(cfg, dataset=_nan_dataset(bad=range(32)))
    assert result.status == "nonfinite" and result.step == 3
    assert "3 steps in a row had a non-finite loss" in result.message
    assert latest_checkpoint(out / "checkpoints").name == "step_3"
    assert not (out / "model").exists()  # nothing exported from a failed run


def test_resume_picks_only_complete_checkpoints_and_checks_the_schedule(tmp_path, meta):
    out = tmp_path / "run"
    assert train(tiny(out, meta, "max_steps=4", "save_every=2", "keep_last=5", "export=false")).status == "completed"
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_2", "step_4"]
    # A half-written newer checkpoint (killed mid-save) looks complete inside but keeps its .tmp name.
    shutil.copytree(ckpts / "step_4", ckpts / "step_6.tmp")
    (ckpts / "step_8").mkdir()  # a stray folder without trainer state is not a checkpoint either
    assert latest_checkpoint(ckpts).name == "step_4"
    # Re-running the finished command resumes at step 4 = the end: no new steps, same metrics.
    before = losses(out)
    assert train(tiny(out, meta, "max_steps=4", "save_every=2", "keep_last=5", "export=false")).step == 4
    assert losses(out) == before
    with pytest.raises(UserError, match="belongs to a run of 4 steps, this config gives 9"):
        train(tiny(out, meta, "max_steps=9", "export=false"))


def test_packing_and_length_grouping_runs(tmp_path, meta):
    packed = train(tiny(tmp_path / "packed", meta, "max_steps=3", "data.packing=true", "data.max_seq_length=256",
                        "per_device_batch_size=2", "global_batch_size=4", "export=false"))
    grouped = train(tiny(tmp_path / "grouped", meta, "max_steps=3", "data.group_by_length=true", "export=false"))
    assert packed.status == grouped.status == "completed"
    rows = read_metrics(tmp_path / "packed" / "metrics.jsonl")
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in rows)
    # Two packed rows of <= 256 tokens per micro-batch, two micro-batches: more samples than rows.
    assert all(r["num_tokens"] <= 2 * 2 * 256 for r in rows)
    assert all(r["samples_per_s"] * r["step_time_s"] > 4 for r in rows)
    rows = read_metrics(tmp_path / "grouped" / "metrics.jsonl")
    assert len(rows) == 3 and all(r["loss"] == r["loss"] for r in rows)


def test_resume_restores_rng_so_drop_path_and_lora_dropout_runs_are_exact(tmp_path, meta):
    out = tmp_path / "rng"
    args = ["max_steps=6", "save_every=3", "keep_last=5", "export=false", "model.drop_path_rate=0.3",
            "use_llm_lora=4", "num_workers=1"]
    assert train(tiny(out, meta, *args)).status == "completed"
    uninterrupted = losses(out)
    # Pretend the run died after step 3: only the step-3 checkpoint survives.
    shutil.rmtree(out / "checkpoints" / "step_6")
    assert train(tiny(out, meta, *args)).status == "completed"
    assert losses(out) == uninterrupted  # steps 4-6 recomputed with the restored RNG streams: bit-identical
    assert len(set(uninterrupted)) == 6


def test_training_starts_from_a_released_layout_checkpoint(tmp_path, meta):
    from internvl_chat.model.presets import init_model_dir

    src = init_model_dir("tiny", tmp_path / "released", seed=7)  # config.json + safetensors + tokenizer
    out = tmp_path / "from_path"
    cfg = load_config(ROOT / "configs" / "tiny.yaml",
                      ["model.preset=null", f"model.path={src}", "model.force_image_size=56", f"output_dir={out}",
                       "data.source=meta", f"meta_path={meta}", *QUIET, "max_steps=2", "freeze_backbone=true"])
    assert train(cfg).status == "completed"
    start = load_file(src / "model.safetensors")
    trained = exported(out)
    vit = [k for k in start if k.startswith("vision_model.")]
    assert vit and all(torch.equal(trained[k], start[k]) for k in vit)  # the checkpoint's weights, kept frozen
    assert any(not torch.equal(trained[k], start[k]) for k in start if k.startswith("language_model."))


def test_rejected_samples_are_logged_and_too_many_stop_the_run(tmp_path):
    from internvl_chat.data.rejects import TooManyRejects

    data = tmp_path / "data"
    synth.generate(data, n_train=16, n_test=0, seed=0, image_size=56)
    for i in range(4):  # 4 of 64 samples (6%) lose their image
        (data / "images" / "shapes" / f"train_{i:06d}.png").unlink()
    meta = data / "meta.json"
    out = tmp_path / "tolerant"
    assert train(tiny(out, meta, "max_steps=8", "export=false", "max_reject_fraction=0.5")).status == "completed"
    logged = [json.loads(line) for line in (out / "rejects" / "rank_0.jsonl").read_text().splitlines()]
    assert logged and {r["kind"] for r in logged if not r["kept"]} == {"image not found"}
    assert {r["id"] for r in logged} <= {f"shapes-train-{i}" for i in range(4)}
    assert sum(r["rejected"] for r in read_metrics(out / "metrics.jsonl")) == len([r for r in logged if not r["kept"]])

    out = tmp_path / "strict"
    with pytest.raises(TooManyRejects, match="samples rejected"):
        train(tiny(out, meta, "max_steps=16", "export=false", "max_reject_fraction=0.01"))
    assert latest_checkpoint(out / "checkpoints") is not None


def test_log_every_writes_every_nth_step_and_the_last(tmp_path, meta):
    every = train(tiny(tmp_path / "n", meta, "max_steps=5", "per_device_batch_size=8", "export=false",
                       "save_every=0", "log_every=2"))
    each = train(tiny(tmp_path / "one", meta, "max_steps=5", "per_device_batch_size=8", "export=false",
                      "save_every=0"))
    assert every.status == each.status == "completed"
    rows = read_metrics(tmp_path / "n" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 5]
    full = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "one" / "metrics.jsonl")}
    assert sorted(full) == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in rows] == [full[2], full[4], full[5]]  # logging changes nothing in the run
