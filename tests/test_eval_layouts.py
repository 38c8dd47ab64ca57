"""Every upstream layout of every benchmark, on miniature files written in the upstream formats.

tests/data/eval/<layout>/ is a --data-root per layout (written by make_eval_data.py with pandas /
pyarrow as upstream writes them); layouts.json says how many samples each benchmark must score
and which rows upstream skips; reference_prompts.json holds the prompts InternVL v1.2.3's own
eval dataset classes build from the InternVL-layout files (make_reference_prompts.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_chat.eval.benchmarks import get_benchmark
from internvl_chat.eval.runner import RunConfig, evaluate, load_samples

DATA = Path(__file__).parent / "data" / "eval"
MANIFEST = json.loads((DATA / "layouts.json").read_text())
REFERENCE = json.loads((DATA / "reference_prompts.json").read_text())
CASES = [(layout, name) for layout, m in MANIFEST.items() for name in m["benchmarks"]]


def _max_headline(name: str, result) -> None:
    if not get_benchmark(name).has_answers:
        assert result.headline is None and result.submission
        assert result.metrics["submission_check"].startswith("ok"), result.metrics
        return
    if name == "mme":  # every subtask at its maximum: acc 100 + acc+ 100
        assert all(t["score"] == pytest.approx(200.0) for t in result.metrics["subtasks"].values()), result.metrics
        return
    assert result.headline == pytest.approx(100.0), (name, result.metrics)


@pytest.mark.parametrize("flavour", ["internvl", "vlmevalkit"])
@pytest.mark.parametrize("layout,name", CASES, ids=[f"{a}:{b}" for a, b in CASES])
def test_layout_loads_counts_and_oracle_scores_max(tmp_path, layout, name, flavour):
    m = MANIFEST[layout]
    cfg = RunConfig(data_root=DATA / layout, out_dir=tmp_path, flavour=flavour, oracle=True, progress=False)
    (run,) = evaluate([name], generate=None, cfg=cfg)
    result = run.result
    assert result.num_samples == m["benchmarks"][name]
    assert result.metrics["skipped_rows"] == m["skipped"].get(name, {})
    assert result.metrics["layout"]
    _max_headline(name, result)


def _groups() -> dict[str, list[tuple[str, str]]]:
    """Layouts holding the same rows: "<group>" for a layout's first benchmark, "<group>:<name>" for others."""
    out: dict[str, list[tuple[str, str]]] = {}
    for layout, name in CASES:
        if get_benchmark(name).has_answers:
            first = next(iter(MANIFEST[layout]["benchmarks"]))
            key = MANIFEST[layout]["group"] + ("" if name == first else f":{name}")
            out.setdefault(key, []).append((layout, name))
    return out


@pytest.mark.parametrize("group", sorted(_groups()))
def test_same_rows_give_the_same_prompt_in_every_layout_equal_to_v12(group):
    prompts = {}
    for layout, name in _groups()[group]:
        bench = get_benchmark(name)
        prompts[layout] = sorted(bench.prompt(s) for s in load_samples(bench, DATA / layout))
    first = next(iter(prompts.values()))
    for layout, got in prompts.items():
        assert got == first, f"{layout} prompts differ from {next(iter(prompts))}"
    if group in REFERENCE:  # derived by running InternVL v1.2.3's own dataset classes
        assert first == REFERENCE[group]


def test_reference_covers_the_internvl_layouts():
    assert {"mmbench", "mmbench:mmbench-dev-cn", "scienceqa", "mmvp", "pope", "textvqa-ocr", "gqa", "ai2d", "mmmu",
            "mathvista"} <= set(REFERENCE)


def test_textvqa_internvl_layout_scores_against_the_ten_annotations(tmp_path):
    # the jsonl's single `answer` is not the reference: the annotation's majority answer is
    cfg = RunConfig(data_root=DATA / "textvqa-internvl", out_dir=tmp_path, progress=False)
    samples = load_samples(get_benchmark("textvqa-val"), cfg.data_root)
    assert [len(s.answer) for s in samples] == [10, 10]
    result = get_benchmark("textvqa-val").score(samples, ["dakota digital", "copenhagen"], __import__(
        "internvl_chat.eval.benchmarks", fromlist=["ScoreContext"]).ScoreContext())
    # 2 of 10 humans said "dakota digital": VQA accuracy with leave-one-out = (2 * 1/3 + 8 * 2/3) / 10
    assert result.per_sample[0]["hit"] == pytest.approx(0.6)
    assert result.per_sample[1]["hit"] == pytest.approx(1.0)


def test_mathvista_tsv_without_precision_keeps_float_answers():
    samples = load_samples(get_benchmark("mathvista-testmini"), DATA / "mathvista-vlmevalkit")
    assert {s.answer: s.meta["precision"] for s in samples if s.meta["answer_type"] == "float"} == {"1.5": 1, "0.25": 2}


def test_mmbench_cells_read_like_pandas():
    samples = {s.id: s for s in load_samples(get_benchmark("mmbench-dev-en"), DATA / "mmbench-vlmevalkit")}
    assert samples["1"].hint is None  # "null" is missing to pandas
    assert samples["2"].hint == " "  # whitespace-only is kept
    assert samples["0"].choices == {"A": "2", "B": "3", "C": "4.0", "D": "5.0"}  # numeric columns with a gap


def _copy(layout: str, tmp_path: Path) -> Path:
    dst = tmp_path / layout
    shutil.copytree(DATA / layout, dst)
    return dst


MISSING_ONE_FILE = [
    ("textvqa-internvl", "textvqa-val", "textvqa/textvqa_val_annotations.json", "textvqa_val_annotations.json"),
    ("mathvista-official", "mathvista-testmini", "mathvista/data/query.json", "data/query.json"),
    ("gqa-internvl", "gqa-testdev", "gqa/images/n161313.jpg", "n161313.jpg"),
    ("pope-internvl", "pope", "pope/coco/coco_pope_random.json", "coco/coco_pope_random.json"),
    ("mmvp-official", "mmvp", "mmvp/Questions.csv", "MMVP.tsv"),
]


def _eval_args(root: Path, tmp_path: Path, name: str) -> list[str]:
    # a model directory that does not exist: any attempt to load it would fail differently
    return ["--model", str(tmp_path / "no-model"), "--benchmarks", f"{name},ai2d-test",
            "--data-root", str(root), "--out", str(tmp_path / "out"), "--no-progress"]


def test_missing_file_through_the_real_cli_is_one_line_exit_2_no_traceback(tmp_path):
    layout, name, remove, expect = MISSING_ONE_FILE[0]
    root = _copy(layout, tmp_path)
    (root / remove).unlink()
    proc = subprocess.run([sys.executable, "-m", "internvl_chat.cli", "eval", *_eval_args(root, tmp_path, name)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert expect in lines[0] and "docs/eval.md" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("predictions*.jsonl"))


@pytest.mark.parametrize("layout,name,remove,expect", MISSING_ONE_FILE[1:], ids=[c[0] for c in MISSING_ONE_FILE[1:]])
def test_missing_file_is_one_line_exit_2_before_the_model(tmp_path, capsys, monkeypatch, layout, name, remove, expect):
    from internvl_chat.eval import cli

    def no_model(*a, **k):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(cli.LazyModelGenerator, "__call__", no_model)
    root = _copy(layout, tmp_path)
    (root / remove).unlink()
    from internvl_chat.cli import main as cli_main

    assert cli_main(["eval", *_eval_args(root, tmp_path, name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0] and "docs/eval.md" in err[0], err


def test_unknown_layout_names_what_was_found_and_expected(tmp_path):
    (tmp_path / "ai2d").mkdir()
    (tmp_path / "ai2d" / "questions.csv").write_text("x\n")
    with pytest.raises(Exception) as e:
        load_samples(get_benchmark("ai2d-test"), tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "questions.csv" in msg and "AI2D_TEST.tsv" in msg and "test.jsonl" in msg


def test_model_generator_stops_only_at_im_end_and_keeps_the_raw_response(monkeypatch):
    """V1.2's model.chat passes no stop tokens (eos = <|im_end|>) and returns the decoded text unstripped."""
    import torch
    from PIL import Image

    from internvl_chat.eval.runner import ModelGenerator
    from internvl_chat.model.presets import build_tiny_model

    model, tok = build_tiny_model(seed=0)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    answer = tok("B\n", add_special_tokens=False)["input_ids"]
    seen = {}

    def fake_generate(**kw):
        seen.update(kw)
        return torch.tensor([answer + [im_end]])

    monkeypatch.setattr(model, "generate", fake_generate)
    out = ModelGenerator(model, tok)([Image.new("RGB", (8, 8))], ["Which?"], {"max_new_tokens": 4, "do_sample": False})
    assert seen["eos_token_id"] == im_end  # not also <|endoftext|>, <|im_start|>, <|im_sep|>
    assert out == [tok.decode(answer, skip_special_tokens=True)] and out[0] != out[0].strip()


def test_raw_response_reaches_internvl_scoring_and_vlmevalkit_strips_it(tmp_path):
    # SEED's V1.2 calculation compares the first character of the raw response with the letter
    samples = load_samples(get_benchmark("seed-image"), DATA / "seed-vlmevalkit")
    gold = {get_benchmark("seed-image").prompt(s): s.answer for s in samples}

    def leading_space(images, prompts, cfg):
        return [" " + gold[p] for p in prompts]

    for flavour, expected in (("internvl", 0.0), ("vlmevalkit", 100.0)):
        cfg = RunConfig(data_root=DATA / "seed-vlmevalkit", out_dir=tmp_path / flavour, flavour=flavour, progress=False)
        (run,) = evaluate(["seed-image"], leading_space, cfg)
        assert run.result.headline == pytest.approx(expected), flavour
