"""Runner: batched generation with the tiny model, the prediction cache (resume, re-score, kill -9),
data-parallel shards, the report files and the CLI."""

from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_eval_fixtures import write_all

from internvl_chat.data.synth import generate as synth_generate
from internvl_chat.eval.benchmarks import benchmark_names
from internvl_chat.eval.report import ReportInfo, write_report
from internvl_chat.eval.runner import CacheError, DistInfo, ModelGenerator, RunConfig, evaluate, read_cache

REPO = Path(__file__).resolve().parents[1]


class CountingGenerator:
    """A scripted model: answers `answer_fn(prompt)` and counts how many prompts it saw."""

    def __init__(self, answer_fn=lambda prompt: "A"):
        self.answer_fn, self.calls, self.batch_sizes = answer_fn, 0, []

    def __call__(self, images, prompts, generation_config):
        assert len(images) == len(prompts) and all(img.mode == "RGB" for img in images)
        self.calls += len(prompts)
        self.batch_sizes.append(len(prompts))
        return [self.answer_fn(p) for p in prompts]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the tiny model is faster on one thread, and the test machines' cores are shared
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    from internvl_chat.model.presets import build_tiny_model

    return build_tiny_model(seed=0)


@pytest.fixture(scope="module")
def all_data(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("all_data"))


@pytest.fixture()
def synth(tmp_path):
    synth_generate(tmp_path / "synth", n_train=0, n_test=5, image_size=56)
    return tmp_path / "synth"


def test_every_benchmark_end_to_end_with_the_tiny_model(tiny, all_data, tmp_path):
    """Fixture -> load -> InternVL prompt -> batched generation with the tiny model -> score -> report."""
    model, tok = tiny
    cfg = RunConfig(data_root=all_data, out_dir=tmp_path / "out", batch_size=4, progress=False, max_new_tokens=6)
    names = benchmark_names()
    runs = evaluate(names, ModelGenerator(model, tok), cfg)
    assert [r.benchmark for r in runs] == names
    for run in runs:
        assert run.stats.generated == run.stats.samples > 0
        cached = read_cache(tmp_path / "out" / run.benchmark)
        assert len(cached) == run.stats.samples
        assert all(isinstance(rec["prediction"], str) for rec in cached.values())
        if run.result.submission is None:
            assert isinstance(run.result.headline, float), run.benchmark
        else:
            assert Path(run.result.submission).is_file()
    paths = write_report(runs, tmp_path / "out", ReportInfo(model="tiny", flavour="internvl", judge=None))
    results = json.loads(paths["json"].read_text())
    assert set(results["benchmarks"]) == set(names)
    md = paths["md"].read_text()
    assert "| MME | perception | sum of 10 subtasks | 1672.1 |" in md and "rule-based (no LLM judge)" in md
    assert "| MMBench | test | circular accuracy (server) | 82.2 | submission: `mmbench-test-en_submission.xlsx`" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_generates_only_missing_and_rescore_generates_nothing(synth, tmp_path):
    answer = lambda p: "A" if "option" in p else "two"  # noqa: E731
    out = tmp_path / "out"
    full = CountingGenerator(answer)
    ref = evaluate(["synthetic"], full, RunConfig(synth, tmp_path / "ref", batch_size=3, progress=False))[0]
    assert full.calls == 20 and full.batch_sizes == [3] * 6 + [2]

    # a run that stopped after 7 predictions: keep the first 7 lines of a finished cache
    lines = (tmp_path / "ref" / "synthetic" / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "synthetic").mkdir(parents=True)
    (out / "synthetic" / "predictions.jsonl").write_text("".join(lines[:7]) + lines[7][:25])  # + a torn line
    shutil.copy(tmp_path / "ref" / "synthetic" / "cache_key.json", out / "synthetic")  # same settings made them
    resumed = CountingGenerator(answer)
    run = evaluate(["synthetic"], resumed, RunConfig(synth, out, batch_size=3, progress=False))[0]
    assert resumed.calls == 13 and run.stats.cached == 7 and run.stats.generated == 13
    assert run.result.metrics == ref.result.metrics

    again = CountingGenerator(answer)
    run = evaluate(["synthetic"], again, RunConfig(synth, out, batch_size=3, progress=False, flavour="vlmevalkit"))[0]
    assert again.calls == 0 and run.stats.cached == 20
    assert run.result.headline == ref.result.headline


def test_cache_made_with_another_prompt_is_refused(synth, tmp_path):
    out = tmp_path / "out"
    evaluate(["synthetic"], CountingGenerator(), RunConfig(synth, out, progress=False, limit=3))
    path = out / "synthetic" / "predictions.jsonl"
    rec = json.loads(path.read_text().splitlines()[0])
    rec["prompt"] = "a different prompt"
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(CacheError, match="different prompt"):
        evaluate(["synthetic"], CountingGenerator(), RunConfig(synth, out, progress=False, limit=3))


def test_corrupt_cache_line_names_file_and_line(tmp_path):
    d = tmp_path / "mme"
    d.mkdir()
    (d / "predictions.jsonl").write_text('{"id": "1", "prompt": "p", "prediction": "x"}\n{oops\n{"id": "3"}\n')
    with pytest.raises(CacheError, match=r"predictions.jsonl:2"):
        read_cache(d)


def test_data_parallel_shards_merge_on_rank_0(synth, tmp_path):
    out = tmp_path / "out"
    gens = [CountingGenerator(lambda p: "B"), CountingGenerator(lambda p: "B")]
    # ranks run one after the other here; the barrier is a no-op
    r1 = evaluate(["synthetic"], gens[1], RunConfig(synth, out, progress=False), DistInfo(rank=1, world_size=2))[0]
    assert r1.result is None and gens[1].calls == 10
    assert (out / "synthetic" / "predictions.rank1.jsonl").is_file()
    r0 = evaluate(["synthetic"], gens[0], RunConfig(synth, out, progress=False), DistInfo(rank=0, world_size=2))[0]
    assert gens[0].calls == 10 and r0.result.num_samples == 20
    assert sorted(p.name for p in (out / "synthetic").glob("predictions*")) == ["predictions.jsonl"]
    assert len(read_cache(out / "synthetic")) == 20


def test_blank_images_run_separately_and_report_both(synth, tmp_path):
    seen = []

    def gen(images, prompts, cfg):
        seen.extend(img.getpixel((0, 0)) for img in images)
        return ["A"] * len(prompts)

    out = tmp_path / "out"
    runs = evaluate(["synthetic"], gen, RunConfig(synth, out, progress=False))
    runs += evaluate(["synthetic"], gen, RunConfig(synth, out, progress=False, blank_images=True))
    assert [r.benchmark for r in runs] == ["synthetic", "synthetic-blank"]
    assert len(set(seen[20:])) == 1 and len(set(seen[:20])) > 1  # the blank pass shows one colour only
    md = write_report(runs, out, ReportInfo(model="m", flavour="internvl", judge=None))["md"].read_text()
    assert "Synthetic (held-out) (blank images)" in md


def test_blank_pass_keeps_submission_files_apart(all_data, tmp_path):
    out = tmp_path / "out"
    normal = evaluate(["vizwiz-test"], CountingGenerator(lambda p: "soup"), RunConfig(all_data, out, progress=False))
    blank = evaluate(["vizwiz-test"], CountingGenerator(lambda p: "no"),
                     RunConfig(all_data, out, progress=False, blank_images=True))
    assert normal[0].result.submission == str(out / "vizwiz-test_submission.json")
    assert blank[0].result.submission == str(out / "vizwiz-test-blank" / "vizwiz-test_submission.json")
    assert json.loads(open(normal[0].result.submission).read())[0]["answer"] == "soup"


def _cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "internvl_chat.cli", "eval", *args], cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_killed_run_resumes_with_only_missing_samples_and_same_scores(tmp_path):
    """SIGKILL an evaluation mid-run, restart it: only the missing samples are generated, scores are unchanged."""
    from internvl_chat.model import InternVLChatModel
    from internvl_chat.model.presets import init_model_dir
    from transformers import AutoTokenizer

    model_dir = init_model_dir("tiny", tmp_path / "model", seed=0)
    data = tmp_path / "synth"
    synth_generate(data, n_train=0, n_test=6, image_size=56)  # 24 questions
    out = tmp_path / "out"
    args = ["--model", str(model_dir), "--benchmarks", "synthetic", "--data-root", str(data), "--out", str(out),
            "--batch-size", "1", "--no-progress"]
    cache = out / "synthetic" / "predictions.jsonl"
    proc = _cli(args)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if cache.exists() and cache.read_text().count("\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    done = cache.read_text().count("\n")
    assert 3 <= done < 24

    proc = _cli(args)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert f"synthetic: 24 samples, generated {24 - done}, cached {done}" in stdout
    resumed = json.loads((out / "results.json").read_text())["benchmarks"]["synthetic"]

    # uninterrupted reference run, in-process, same weights and batch size
    model = InternVLChatModel.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    ref = evaluate(["synthetic"], ModelGenerator(model, tok), RunConfig(data, tmp_path / "ref", batch_size=1,
                                                                       progress=False))[0]
    assert resumed["metrics"] == json.loads(json.dumps(ref.result.metrics))
    ref_preds = read_cache(tmp_path / "ref" / "synthetic")
    assert {k: v["prediction"] for k, v in read_cache(out / "synthetic").items()} == \
        {k: v["prediction"] for k, v in ref_preds.items()}


def test_cli_rescores_cached_run_without_a_model_and_rejects_bad_args(synth, tmp_path, capsys):
    from internvl_chat.eval.cli import main

    out = tmp_path / "out"
    evaluate(["synthetic"], CountingGenerator(lambda p: "A"), RunConfig(synth, out, progress=False))
    assert main(["--benchmarks", "synthetic", "--data-root", str(synth), "--out", str(out), "--no-progress",
                 "--flavour", "vlmevalkit"]) == 0
    captured = capsys.readouterr().out
    assert "generated 0, cached 20" in captured and "scoring flavour: **vlmevalkit**" in captured
    with pytest.raises(SystemExit):
        main(["--benchmarks", "nope", "--data-root", str(synth), "--out", str(out)])
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--benchmarks", "mme", "--data-root", str(synth), "--out", str(out)])  # nothing cached, no model
    with pytest.raises(SystemExit):
        main(["--model", "m", "--benchmarks", "mme", "--data-root", str(synth), "--out", str(out),
              "--judge-url", "http://x/v1"])
