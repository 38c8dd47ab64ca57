"""The CLI error contract (errors.py, validate.py) through the real entry point `internvl_chat.cli.main`.

A user's mistake: exit 2, one line on stderr naming what and where, no traceback, and
found before any weights are loaded. A bug: exit 1 with its traceback. A few cases also
run as real subprocesses (and one under torchrun) to show the same from the outside.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_chat.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
TINY_YAML = str(ROOT / "configs" / "tiny.yaml")


def run_cli(capsys, *argv) -> tuple[int, str]:
    rc = cli_main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def assert_user_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, lines[0])


# -- damaged model folders: every command that loads a model ---------------------------------------------
def _damage(kind: str, good: Path, tmp: Path) -> Path:
    d = tmp / kind
    if kind == "missing":
        return d
    if kind == "a-file":
        d.write_text("x")
        return d
    shutil.copytree(good, d)
    st = d / "model.safetensors"
    if kind == "truncated":
        with open(st, "r+b") as f:
            f.truncate(st.stat().st_size // 2)
    elif kind == "corrupt-header":
        data = bytearray(st.read_bytes())
        data[8:20] = b"\x00garbage\xff\xfe\x00\x01"
        st.write_bytes(bytes(data))
    elif kind == "huge-header-length":
        data = bytearray(st.read_bytes())
        data[:8] = struct.pack("<Q", 1 << 60)
        st.write_bytes(bytes(data))
    elif kind == "bad-config":
        (d / "config.json").write_text('{"llm_config": ')
    elif kind == "not-internvl-config":
        (d / "config.json").write_text('{"model_type": "llama"}')
    elif kind == "no-weights":
        st.unlink()
    elif kind == "index-missing-shard":
        st.rename(d / "model-00001-of-00002.safetensors")
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    elif kind == "pickle-only":
        st.rename(d / "pytorch_model.bin")
    elif kind == "no-tokenizer":
        for p in d.glob("tokenizer*"):
            p.unlink()
    return d


DAMAGE = {"missing": "does not exist", "a-file": "is a file", "truncated": "damaged or incomplete",
          "corrupt-header": "safetensors", "huge-header-length": "not a safetensors file",
          "bad-config": "not valid JSON", "not-internvl-config": "not an InternVL-Chat configuration",
          "no-weights": "init --preset v1_2", "index-missing-shard": "model-00002-of-00002.safetensors",
          "pickle-only": "safetensors only", "no-tokenizer": "no tokenizer files"}


@pytest.fixture(scope="module")
def damaged(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("damaged")
    return {k: _damage(k, tiny_model_dir, tmp) for k in DAMAGE}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_model_folder_is_one_line_in_every_command(kind, damaged, synth_eval_data, tmp_path, capsys):
    model = damaged[kind]
    commands = [
        ["chat", "--model", model, "--prompt", "hi"],
        ["serve", "--model", model, "--port", "1"],  # the folder is checked before the port
        ["web", "--model", model],
        ["eval", "--model", model, "--benchmarks", "synthetic", "--data-root", synth_eval_data,
         "--out", tmp_path / "o"],
        ["merge-lora", "--model", model, "--output", tmp_path / "merged"],
        ["train", TINY_YAML, "model.preset=null", f"model.path={model}", f"output_dir={tmp_path / 't'}"],
    ]
    for argv in commands:
        rc, err = run_cli(capsys, *argv)
        assert_user_error(rc, err, DAMAGE[kind], f"internvl-chat {argv[0]}")
    assert not (tmp_path / "merged").exists() and not (tmp_path / "t").exists()  # nothing was started


def test_config_only_folder_from_init_v1_2_is_refused(tmp_path, capsys):
    assert cli_main(["init", "--preset", "v1_2", "--output", str(tmp_path / "v12")]) == 0
    capsys.readouterr()
    rc, err = run_cli(capsys, "chat", "--model", tmp_path / "v12", "--prompt", "hi")
    assert_user_error(rc, err, "no weights", "init --preset v1_2")


# -- devices, ports, server settings: refused before the model loads ------------------------------------
def test_missing_device_is_one_line(tiny_model_dir, synth_eval_data, tmp_path, capsys):
    import torch

    missing = "cuda:0" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    for argv in (["chat", "--model", tiny_model_dir, "--prompt", "hi", "--device", missing],
                 ["serve", "--model", tiny_model_dir, "--device", missing],
                 ["eval", "--model", tiny_model_dir, "--benchmarks", "synthetic", "--data-root", synth_eval_data,
                  "--out", tmp_path / "o", "--device", missing],
                 ["chat", "--model", tiny_model_dir, "--prompt", "hi", "--device", "tpu:7"]):
        rc, err = run_cli(capsys, *argv)
        assert_user_error(rc, err, "--device")


def test_impossible_server_settings_refused_at_start(tiny_model_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, err = run_cli(capsys, "serve", "--model", tiny_model_dir, "--port", port)
        assert_user_error(rc, err, f"127.0.0.1:{port}", "another --port")
    for flags, words in ((["--port", "70000"], "out of range"), (["--port", "0"], "out of range"),
                         (["--max-batch-size", "0"], "--max-batch-size"), (["--max-queued", "-1"], "--max-queued"),
                         (["--max-output-tokens", "0"], "--max-output-tokens"),
                         (["--max-wait-ms", "-5"], "--max-wait-ms"),
                         (["--allow-local-images", "/nonexistent/dir"], "no such folder"),
                         (["--log-level", "loud"], "--log-level"), (["--host", "no.such.host.invalid"], "--host")):
        rc, err = run_cli(capsys, "serve", "--model", tiny_model_dir, *flags)
        assert_user_error(rc, err, words)


def test_chat_missing_image_is_refused_before_loading(tiny_model_dir, tmp_path, capsys):
    rc, err = run_cli(capsys, "chat", "--model", tiny_model_dir, "--image", tmp_path / "nope.png", "--prompt", "hi")
    assert_user_error(rc, err, "nope.png", "no such file")


# -- merge-lora: never claims a write that did not happen ------------------------------------------------
def test_merge_lora_refuses_existing_output(tiny_model_dir, tmp_path, capsys):
    target = tmp_path / "existing.txt"
    target.write_text("keep me")
    rc, err = run_cli(capsys, "merge-lora", "--model", tiny_model_dir, "--output", target)
    assert_user_error(rc, err, "existing file")
    assert target.read_text() == "keep me"
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    rc, err = run_cli(capsys, "merge-lora", "--model", tiny_model_dir, "--output", full)
    assert_user_error(rc, err, "not empty")
    assert sorted(p.name for p in full.iterdir()) == ["notes.txt"]
    rc, err = run_cli(capsys, "merge-lora", "--model", tiny_model_dir, "--output", tmp_path / "plain")
    assert rc == 0 and "wrote an unchanged copy" in err
    assert (tmp_path / "plain" / "model.safetensors").is_file() and (tmp_path / "plain" / "tokenizer.json").is_file()


# -- train: config mistakes are one line, before any rank starts ----------------------------------------
TRAIN_CASES = [
    (["meta_path=/some/file.json"], "data.source=synthetic does not read it"),
    (["per_device_batch_size=3"], "not divisible"),
    (["optim.lr=-1e-5"], "optim.lr must be > 0"),
    (["max_steps=-1"], "max_steps must be >= 0"),
    (["output_dir="], "output_dir is empty"),
    (["data.source=meta", "meta_path=/nonexistent/meta.json"], "data.meta_path /nonexistent/meta.json does not exist"),
    (["model.preset=null", "model.path=/nonexistent/model"], "model.path /nonexistent/model does not exist"),
    (["max_reject_fraction=2"], "max_reject_fraction"),
    (["num_train_epochs=0", "max_steps=0"], "num_train_epochs must be > 0"),
    (["optim.lr=abc"], "cannot use 'abc' as float"),
    (["optim.lrr=1"], "unknown key optim.lrr"),
    (["data.base_dir=/data"], "data.base_dir is set but data.source=synthetic does not use it"),
    (["lora_dropout=0.1"], "no LoRA is on"),
    (["model.mlp_path=/p.pth"], "only used when composing from parts"),
    (["model.preset_args={llm_hiden: 64}"], "model.preset_args: unknown key(s) llm_hiden"),
    (["model.preset_args={llm_hidden: wide}"], "model.preset_args:"),
    (["model.preset_args={llm_config: {model_type: llama, rms_norm_eps: abc}}"], "rms_norm_eps"),
]


@pytest.mark.parametrize("overrides,words", TRAIN_CASES, ids=[c[1][:30] for c in TRAIN_CASES])
def test_train_config_mistakes_are_one_line(overrides, words, tmp_path, capsys):
    out = tmp_path / "run"
    args = [f"output_dir={out}"] + overrides if not any(o.startswith("output_dir=") for o in overrides) else overrides
    rc, err = run_cli(capsys, "train", TINY_YAML, *args)
    assert_user_error(rc, err, words)
    assert not out.exists()


def test_train_output_dir_is_a_file_and_missing_annotation(tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("x")
    rc, err = run_cli(capsys, "train", TINY_YAML, f"output_dir={f}")
    assert_user_error(rc, err, "is an existing file")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"ds": {"root": "images", "annotation": "gone.jsonl"}}))
    rc, err = run_cli(capsys, "train", TINY_YAML, f"output_dir={tmp_path / 'r'}", "data.source=meta",
                      f"meta_path={meta}")
    assert_user_error(rc, err, "annotation file(s) not found", "gone.jsonl")


def test_train_resume_into_another_schedule_is_refused(tmp_path, capsys):
    step = tmp_path / "run" / "checkpoints" / "step_4"
    step.mkdir(parents=True)
    (step / ".metadata").write_bytes(b"")
    (step / "trainer_state.json").write_text(json.dumps({"total_steps": 4, "world_size": 1}))
    rc, err = run_cli(capsys, "train", TINY_YAML, f"output_dir={tmp_path / 'run'}", "max_steps=9")
    assert_user_error(rc, err, "holds a run of 4 steps", "asks for 9", "checkpoint.resume=false")


def test_train_where_every_sample_is_rejected_does_not_complete(tmp_path, capsys):
    """All images missing and rejects allowed: no step updates the model, so no 'completed', no export."""
    ann = tmp_path / "data.jsonl"
    rows = [{"id": i, "image": f"missing_{i}.png",
             "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]}
            for i in range(16)]
    ann.write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"ds": {"root": str(tmp_path), "annotation": str(ann)}}))
    out = tmp_path / "run"
    rc, err = run_cli(capsys, "train", TINY_YAML, f"output_dir={out}", "data.source=meta", f"meta_path={meta}",
                      "max_steps=2", "max_reject_fraction=1.0", "progress_bar=false", "tensorboard=false", "plot=false")
    assert rc == 1, err
    assert "no step updated the model" in err and "Traceback" not in err
    assert not (out / "model").exists()


# -- data check ------------------------------------------------------------------------------------------
def test_data_check_bad_tokenizer_is_one_line(tmp_path, capsys):
    meta = tmp_path / "meta.json"
    meta.write_text("{}")
    rc, err = run_cli(capsys, "data", "check", meta, "--tokenizer", "/nonexistent")
    assert_user_error(rc, err, "--tokenizer /nonexistent does not exist")
    (tmp_path / "empty").mkdir()
    rc, err = run_cli(capsys, "data", "check", meta, "--tokenizer", tmp_path / "empty")
    assert_user_error(rc, err, "no tokenizer files")
    rc, err = run_cli(capsys, "data", "check", meta, "--rejects", tmp_path)
    assert_user_error(rc, err, "is a folder")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text('{"model": {"type": "Nope"}}')  # JSON, but not a tokenizer
    rc, err = run_cli(capsys, "data", "check", meta, "--tokenizer", tmp_path / "bad")
    assert_user_error(rc, err, "cannot load it")


def test_data_check_stops_cleanly_on_ctrl_c_keeping_what_was_checked(tmp_path, capsys, monkeypatch):
    from internvl_chat.data import check

    ann = tmp_path / "a.jsonl"
    ann.write_text("".join('{"id": %d, "conversations": "oops"}\n' % i for i in range(10)))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"ds": {"root": ".", "annotation": "a.jsonl"}}))
    real = check.check_line

    def interrupt_at_line_5(raw, line_no, *a, **k):
        if line_no == 5:
            raise KeyboardInterrupt
        return real(raw, line_no, *a, **k)

    monkeypatch.setattr(check, "check_line", interrupt_at_line_5)
    rejects = tmp_path / "rejects.jsonl"
    rc, err = run_cli(capsys, "data", "check", meta, "--rejects", rejects, "--no-progress")
    assert rc == 130 and "interrupted after 4 records" in err and "Traceback" not in err
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [1, 2, 3, 4]


# -- eval: predictions made under other settings are never mixed in ---------------------------------------
def test_eval_cache_is_keyed_by_model_and_generation_settings(tiny_model_dir, synth_eval_data, tmp_path, capsys):
    from internvl_chat.model.presets import init_model_dir

    out = tmp_path / "out"
    base = ["eval", "--benchmarks", "synthetic", "--data-root", synth_eval_data, "--out", out, "--limit", "3",
            "--batch-size", "3", "--no-progress", "--device", "cpu"]
    rc = cli_main([str(a) for a in base + ["--model", tiny_model_dir, "--max-new-tokens", "1"]])
    assert rc == 0
    assert "generated 3, cached 0" in capsys.readouterr().out
    # the same model with the full generation settings: refused, naming what differs
    rc, err = run_cli(capsys, *base, "--model", tiny_model_dir)
    assert_user_error(rc, err, "max_new_tokens: 1 -> 16", "--regenerate")
    # another model into the same folder: refused
    other = init_model_dir("tiny", tmp_path / "other", seed=1)
    capsys.readouterr()
    rc, err = run_cli(capsys, *base, "--model", other, "--max-new-tokens", "1")
    assert_user_error(rc, err, "another model")
    rc = cli_main([str(a) for a in base + ["--model", other, "--max-new-tokens", "1", "--regenerate"]])
    assert rc == 0 and "generated 3, cached 0" in capsys.readouterr().out
    # same settings again: every prediction reused; without --model: re-scored from the cache
    assert cli_main([str(a) for a in base + ["--model", other, "--max-new-tokens", "1"]]) == 0
    assert "generated 0, cached 3" in capsys.readouterr().out
    assert cli_main([str(a) for a in base + ["--max-new-tokens", "1"]]) == 0
    assert "generated 0, cached 3" in capsys.readouterr().out
    assert f"{Path(other).resolve()} (from the cache)" in (out / "report.md").read_text()
    # the same weights moved elsewhere are the same model
    moved = shutil.copytree(other, tmp_path / "moved", copy_function=shutil.copy2)
    assert cli_main([str(a) for a in base + ["--model", moved, "--max-new-tokens", "1"]]) == 0
    assert "generated 0, cached 3" in capsys.readouterr().out
    # a changed data file is another data set
    test_file = next(Path(synth_eval_data).rglob("test.jsonl"))
    os.utime(test_file, ns=(test_file.stat().st_atime_ns, test_file.stat().st_mtime_ns + 10**9))
    rc, err = run_cli(capsys, *base, "--model", other, "--max-new-tokens", "1")
    assert_user_error(rc, err, "benchmark data files")


# -- the contract itself ---------------------------------------------------------------------------------
def test_debug_shows_the_traceback_and_bugs_keep_theirs(tmp_path, capsys, monkeypatch):
    rc, err = run_cli(capsys, "chat", "--debug", "--model", tmp_path / "nope", "--prompt", "hi")
    assert rc == 2 and "Traceback" in err and "does not exist" in err.strip().splitlines()[-1]
    import internvl_chat.model.presets as presets

    def broken(argv):
        raise RuntimeError("a bug")

    monkeypatch.setattr(presets, "cli_main", broken)
    rc, err = run_cli(capsys, "init", "--output", tmp_path / "x")
    assert rc == 1 and "Traceback" in err and "RuntimeError: a bug" in err and "internal error" in err


def _subprocess(args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "internvl_chat.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_real_entry_point_exit_codes(damaged, tmp_path):
    done = _subprocess(["chat", "--model", damaged["truncated"], "--prompt", "hi"])
    assert_user_error(done.returncode, done.stderr, "damaged or incomplete")
    done = _subprocess(["chat", "--model", damaged["truncated"], "--prompt", "hi"], env={"INTERNVL_CHAT_DEBUG": "1"})
    assert done.returncode == 2 and "Traceback" in done.stderr


def test_torchrun_reports_a_config_error_once(tmp_path):
    """Under torchrun every rank finds the error before init; only rank 0 prints it (torchrun adds its summary)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--nproc_per_node=2", "-m", "internvl_chat.train", TINY_YAML,
                           f"output_dir={tmp_path / 'r'}", "per_device_batch_size=8"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    ours = [ln for ln in done.stderr.splitlines() if "internvl-chat train: error:" in ln]
    assert len(ours) == 1 and "not divisible" in ours[0] and "world_size=2" in ours[0], done.stderr
    assert "internvl_chat/" not in done.stderr  # no traceback from any rank of ours
    assert "exitcode  : 2" in done.stderr


def test_a_mistake_only_a_peer_rank_sees_is_still_reported(monkeypatch, capsys):
    """Rank 0 reports at once; another rank waits (for rank 0 to say the shared mistake and torchrun to stop
    it), then says its own, tagged with its rank, so a mistake no other rank sees is never silent."""
    from internvl_chat import errors

    waited = []
    monkeypatch.setattr(errors.time, "sleep", waited.append)

    def fail(argv):
        raise errors.UserError("shard 3 of the data is missing")

    monkeypatch.setenv("RANK", "0")
    assert errors.run_command(fail, [], "internvl-chat train") == errors.EXIT_USER
    assert capsys.readouterr().err == "internvl-chat train: error: shard 3 of the data is missing\n"
    assert waited == []
    monkeypatch.setenv("RANK", "3")
    assert errors.run_command(fail, [], "internvl-chat train") == errors.EXIT_USER
    assert capsys.readouterr().err == "internvl-chat train: error (rank 3): shard 3 of the data is missing\n"
    assert waited == [errors.PEER_REPORT_WAIT_S] and errors.PEER_REPORT_WAIT_S >= 5


OTHER_CASES = [
    (["init", "--output", "{file}"], "is an existing file"),
    (["init", "--output", "{model}"], "already holds a model"),
    (["data", "synth", "--out", "{file}", "--n", "2"], "is an existing file"),
    (["data", "synth", "--out", "{tmp}/s", "--n", "-1"], "--n must be at least 0"),
    (["data", "synth", "--out", "{tmp}/s", "--n", "1", "--tasks", "bogus"], "unknown synthetic tasks"),
    (["data", "stats", "{tmp}/missing.json"], "meta file not found"),
    (["data", "stats", "{data}/meta.json", "--json", "{tmp}"], "is a folder"),
    (["data", "check", "{data}/meta.json", "--num-image-token", "-1"], "--num-image-token must be at least 1"),
    (["data", "check", "{data}/meta.json", "--max-length", "0"], "--max-length must be at least 1"),
    (["eval", "--model", "{model}", "--benchmarks", "synthetic", "--data-root", "{data}", "--out", "{tmp}/o",
      "--limit", "-1"], "--limit must be at least 1"),
    (["eval", "--model", "{model}", "--benchmarks", "synthetic", "--data-root", "{tmp}/nowhere", "--out", "{tmp}/o"],
     "no such folder"),
    (["eval", "--model", "{model}", "--benchmarks", "synthetic", "--data-root", "{data}", "--out", "{file}"],
     "is an existing file"),
    (["chat", "--model", "{model}", "--prompt", "hi", "--max-tokens", "0"], "max_new_tokens must be >= 1"),
    (["chat", "--model", "{model}", "--prompt", "hi", "--threads", "0"], "--threads must be at least 1"),
    (["chat", "--model", "{model}", "--prompt", "hi", "--top-p", "0.5"], "only apply when sampling"),
    (["serve", "--model", "{model}", "--max-output-tokens", "10", "--default-max-tokens", "20"],
     "above --max-output-tokens"),
    (["train", "{tmp}/missing.yaml"], "config file not found"),
    (["train", "{file}"], "set exactly one of"),
]


@pytest.mark.parametrize("argv,words", OTHER_CASES, ids=[" ".join(c[0][:3]) + ":" + c[1][:20] for c in OTHER_CASES])
def test_other_commands_follow_the_contract(argv, words, tiny_model_dir, synth_eval_data, tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("")
    fill = dict(file=f, model=tiny_model_dir, tmp=tmp_path, data=synth_eval_data)
    argv = [a.format(**fill) for a in argv]
    rc, err = run_cli(capsys, *argv)
    assert_user_error(rc, err, words)


def test_argument_mistakes_are_one_line(capsys):
    rc, err = run_cli(capsys, "chat", "--model")
    assert_user_error(rc, err, "--model: expected one argument", "see internvl-chat chat --help")
    rc, err = run_cli(capsys, "eval", "--batch-size", "x")
    assert_user_error(rc, err, "invalid int value: 'x'")
    rc, err = run_cli(capsys, "data", "frobnicate")
    assert_user_error(rc, err, "invalid choice")
    rc, err = run_cli(capsys, "nope")
    assert rc == 2 and "unknown command 'nope'" in err
