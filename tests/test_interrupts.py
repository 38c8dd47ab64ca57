"""Ctrl-C: training saves a checkpoint like SIGTERM (a second Ctrl-C aborts); eval keeps what is done.

The signal goes to the whole process group, as a terminal's Ctrl-C does, so DataLoader
workers receive it too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from internvl_chat.train.checkpoint import latest_checkpoint
from internvl_chat.train.loop import StopSignal

ROOT = Path(__file__).resolve().parents[1]


def _start(args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "internvl_chat.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(cond, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended early (rc {proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("timed out")


def _rows(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_ctrl_c_during_training_saves_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = _start(["train", ROOT / "configs" / "tiny.yaml", f"output_dir={out}", "max_steps=500", "save_every=0",
                   "num_workers=2", "progress_bar=false", "tensorboard=false", "plot=false", "synthetic_train=16"])
    _wait_for(lambda: _rows(out / "metrics.jsonl") >= 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Ctrl-C: saving a checkpoint" in err and "preempted" in err and "Traceback" not in err
    ckpt = latest_checkpoint(out / "checkpoints")
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["reason"] == "preempted" and 2 <= state["step"] < 500
    assert not (out / "model").exists()  # an interrupted run is not exported


def test_second_ctrl_c_aborts_at_once():
    with StopSignal() as stop:
        stop._handle(signal.SIGINT, None)
        assert stop.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_during_eval_keeps_finished_predictions(tiny_model_dir, synth_eval_data, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "--model", tiny_model_dir, "--benchmarks", "synthetic", "--data-root", synth_eval_data,
            "--out", out, "--batch-size", "1", "--no-progress", "--device", "cpu", "--max-new-tokens", "4",
            "--limit", "8"]
    cache = out / "synthetic" / "predictions.jsonl"
    proc = _start(args)
    _wait_for(lambda: _rows(cache) >= 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: the predictions made so far are kept" in err and "Traceback" not in err
    kept = _rows(cache)
    assert 2 <= kept < 8 and cache.read_text().endswith("\n")
    done = subprocess.run([sys.executable, "-m", "internvl_chat.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"generated {8 - kept}, cached {kept}" in done.stdout
