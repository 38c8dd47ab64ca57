"""Synthetic V1.2-style data: deterministic, in the original layout, balanced, and clean for `data check`."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from internvl_chat.data import SupervisedDataset, load_meta
from internvl_chat.data.cli import main as data_main
from internvl_chat.data.synth import TASKS, generate
from internvl_chat.model.tokenizer import build_tiny_tokenizer


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "out"
    assert data_main(["synth", "--out", str(root), "--n", "24", "--n-test", "24", "--seed", "11",
                      "--image-size", "56"]) == 0
    return root


def test_same_seed_same_bytes_other_seed_differs(synth, tmp_path):
    again = tmp_path / "again"
    generate(again, n_train=24, n_test=24, seed=11, image_size=56)
    assert _digest(again) == _digest(synth)
    other = tmp_path / "other"
    generate(other, n_train=24, n_test=24, seed=12, image_size=56)
    assert _digest(other) != _digest(synth)


def test_layout_is_the_original_meta_and_jsonl_format(synth):
    specs = load_meta(synth / "meta.json")
    assert [s.name for s in specs] == list(TASKS)
    for spec in specs:
        assert spec.annotation == synth / spec.name / "train.jsonl" and spec.repeat_time == 1
        rows = [json.loads(line) for line in spec.annotation.read_text().splitlines()]
        assert len(rows) == 24
        for row in rows:
            assert (spec.root / row["image"]).is_file()
            roles = [t["from"] for t in row["conversations"]]
            assert roles == ["human", "gpt"] * (len(roles) // 2)
            assert row["conversations"][0]["value"].startswith("<image>\n")
    multi = [r for r in (json.loads(x) for x in (synth / "shapes/train.jsonl").read_text().splitlines())
             if len(r["conversations"]) > 2]
    assert multi, "shapes must have multi-turn conversations"


def test_test_split_is_balanced_and_uses_training_phrasings(synth):
    recs = [json.loads(line) for line in (synth / "test.jsonl").read_text().splitlines()]
    assert Counter(r["task"] for r in recs) == {t: 24 for t in TASKS}
    train_questions = set()
    for t in TASKS:
        for line in (synth / t / "train.jsonl").read_text().splitlines():
            for turn in json.loads(line)["conversations"]:
                if turn["from"] == "human":
                    train_questions.add(turn["value"].removeprefix("<image>\n"))
    stems = {q.split("\n")[0] for q in train_questions}
    for r in recs:
        assert set(r) >= {"id", "image", "question", "answer", "task", "chance"}
        assert (synth / r["image"]).is_file() and "<image>" not in r["question"]
        assert r["question"].split("\n")[0] in stems
        assert len(r["answer"].split()) == 1 and 0 < r["chance"] < 1
        if r["task"] == "choice":
            assert r["answer"] in r["choices"] and r["chance"] == pytest.approx(1 / len(r["choices"]))
    # Question types rotate, so each type is equally frequent in the test split.
    shape_types = Counter(r["question"].split(" ")[1] for r in recs if r["task"] == "shapes")
    assert len(set(shape_types.values())) == 1
    letters = Counter(r["answer"] for r in recs if r["task"] == "choice")
    assert len(letters) >= 3  # the correct letter moves around


def test_synthetic_data_passes_check_and_loads(synth, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERNVL_CHAT_CACHE", str(tmp_path / "cache"))
    rejects = tmp_path / "rejects.jsonl"
    rc = data_main(["check", str(synth / "meta.json"), "--num-image-token", "4", "--max-length", "512",
                    "--rejects", str(rejects), "--no-progress"])
    assert rc == 0 and rejects.read_text() == ""
    assert data_main(["stats", str(synth / "meta.json"), "--num-image-token", "4", "--no-progress",
                      "--json", str(tmp_path / "stats.json")]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert set(stats) == set(TASKS) and all(s["samples"] == 24 and s["max"] < 512 for s in stats.values())
    ds = SupervisedDataset(synth / "meta.json", build_tiny_tokenizer(), num_image_token=4, image_size=56,
                           on_reject="raise")
    item = ds[0]
    assert item["pixel_values"].shape == (1, 3, 56, 56) and item["image_flags"].tolist() == [1]


def test_cli_errors_are_clear(tmp_path, capsys):
    assert data_main(["check", str(tmp_path / "missing.json"), "--no-progress"]) == 2
    assert "meta file not found" in capsys.readouterr().err
    bad = tmp_path / "meta.json"
    bad.write_text(json.dumps({"x": {"root": ".", "annotation": "x.json"}}))
    assert data_main(["check", str(bad), "--no-progress"]) == 2
    assert "must be a .jsonl file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown synthetic tasks"):
        generate(tmp_path / "s", 1, 1, tasks=["nope"])


def test_v1_2_recipe_lists_the_nine_datasets(tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "configs" / "data" / "internvl_chat_v1_2_sft.json"
    specs = load_meta(recipe, base_dir=tmp_path)
    assert len(specs) == 9 and sum(s.length for s in specs) == 1_267_819
    assert all(s.repeat_time == 1 and not s.data_augment for s in specs)
    by_name = {s.name: s for s in specs}
    assert by_name["dvqa_train_200k"].root == tmp_path / "playground/data/dvqa/"
    assert by_name["geoqa+"].annotation == tmp_path / "playground/opensource/geoqa+.jsonl"


def test_cached_lengths_are_exact_for_image_samples(synth, tmp_path):
    ds = SupervisedDataset(synth / "meta.json", build_tiny_tokenizer(), num_image_token=16, image_size=28,
                           cache_dir=tmp_path / "cache", on_reject="raise")
    lengths = ds.lengths()
    assert lengths.tolist() == [ds[i]["input_ids"].numel() for i in range(len(ds))]
    assert list((tmp_path / "cache" / "lengths").glob("*.npy"))  # cached for the next run
    assert ds.lengths().tolist() == lengths.tolist()
