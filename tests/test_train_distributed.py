"""Multi-process behaviour through the real entry points: `torchrun --nproc_per_node=2 -m
internvl_chat.train` (gloo, FSDP2) and `python -m internvl_chat.train`.

- 1 process and 2 processes with the same global batch give the same losses (drop path is 0,
  the tiny config's setting, so no rank-dependent randomness enters the comparison);
- a run killed with SIGKILL and re-run resumes and reproduces the uninterrupted losses exactly;
- SIGTERM (torchrun) and SIGUSR1 (one process) leave a complete checkpoint and exit cleanly.
About 1.5-2 minutes in all on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # a dependency of peft
import pytest

from internvl_chat.data import synth
from internvl_chat.train import load_config, train
from internvl_chat.train.checkpoint import complete_checkpoints
from internvl_chat.train.monitor import read_metrics

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TORCHRUN = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
QUIET = ["num_threads=1", "progress_bar=false", "tensorboard=false", "plot=false", "num_workers=0", "export=false"]
STEPS = 12


@pytest.fixture(scope="module")
def meta(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synth.generate(root, n_train=32, n_test=0, seed=0, image_size=56)  # 128 samples: 16 steps of 8
    return root / "meta.json"


def args(out: Path, meta: Path, *extra: str) -> list[str]:
    return [str(ROOT / "configs" / "tiny.yaml"), f"output_dir={out}", "data.source=meta", f"meta_path={meta}",
            f"max_steps={STEPS}", *QUIET, *extra]


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def run_torchrun(out: Path, meta: Path, *extra: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = TORCHRUN + ["-m", "internvl_chat.train", *args(out, meta, *extra)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


def wait_for_step(proc: subprocess.Popen, metrics: Path, step: int, timeout: float = 180) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = read_metrics(metrics) if metrics.is_file() else []
        if rows and rows[-1]["step"] >= step:
            return rows[-1]["step"]
        if proc.poll() is not None:
            raise AssertionError(f"run ended (rc {proc.returncode}) before step {step}")
        time.sleep(0.02)
    raise AssertionError(f"no step {step} within {timeout} s")


@pytest.fixture(scope="module")
def reference_2proc(tmp_path_factory, meta) -> list[float]:
    """The uninterrupted 2-process run: 1 sample per device x 4 accumulation x 2 processes = 8."""
    out = tmp_path_factory.mktemp("ref2")
    run_torchrun(out, meta, "per_device_batch_size=1", "save_every=3")
    got = losses(out)
    assert len(got) == STEPS
    return got


def test_one_process_and_two_processes_give_the_same_losses(tmp_path, meta, reference_2proc):
    # One process, 8 samples per device and no accumulation: the same global batch of 8.
    cfg = load_config(args(tmp_path, meta)[0], args(tmp_path, meta)[1:] + ["per_device_batch_size=8"])
    assert train(cfg).status == "completed"
    single = losses(tmp_path)
    assert len(single) == STEPS
    assert max(abs(a - b) for a, b in zip(single, reference_2proc)) < 1e-4
    assert single[-1] < single[0]  # it learns


def test_sigkill_then_rerun_resumes_and_reproduces_the_losses_exactly(tmp_path, meta, reference_2proc):
    cmd = TORCHRUN + ["-m", "internvl_chat.train", *args(tmp_path, meta, "per_device_batch_size=1", "save_every=3")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        killed_at = wait_for_step(proc, tmp_path / "metrics.jsonl", 5)
    finally:
        # torchrun starts its workers in sessions of their own: kill each of them and torchrun by pid.
        launcher = psutil.Process(proc.pid)
        for p in launcher.children(recursive=True) + [launcher]:
            p.kill()
        proc.wait()
    assert killed_at < STEPS
    saved = [step for step, _ in complete_checkpoints(tmp_path / "checkpoints")]
    assert saved and max(saved) <= killed_at

    resumed = run_torchrun(tmp_path, meta, "per_device_batch_size=1", "save_every=3")
    assert f"resuming from {tmp_path / 'checkpoints' / f'step_{max(saved)}'}" in resumed.stderr
    assert losses(tmp_path) == reference_2proc  # bit-identical, step by step
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def _signal_run(cmd: list[str], out: Path, sig: int) -> tuple[subprocess.Popen, int, str]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        sent_after = wait_for_step(proc, out / "metrics.jsonl", 2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, sent_after, err


def test_sigterm_under_torchrun_saves_a_complete_checkpoint(tmp_path, meta):
    cmd = TORCHRUN + ["-m", "internvl_chat.train",
                      *args(tmp_path, meta, "per_device_batch_size=1", "max_steps=1000", "save_every=1000",
                            "data.packing=true", "data.max_seq_length=256")]  # also exercises 2-rank packing
    _, sent_after, err = _signal_run(cmd, tmp_path, signal.SIGTERM)
    assert "stop signal received: saved a checkpoint" in err, err[-3000:]
    last = read_metrics(tmp_path / "metrics.jsonl")[-1]["step"]
    (step, folder), = complete_checkpoints(tmp_path / "checkpoints")
    assert step == last >= sent_after
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["reason"] == "preempted" and state["step"] == step
    assert {p.name for p in folder.iterdir()} >= {".metadata", "rank_0.json", "rank_1.json", "trainer_state.json"}
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_sigusr1_single_process_saves_and_exits_zero(tmp_path, meta):
    cmd = [PY, "-m", "internvl_chat.train", *args(tmp_path, meta, "max_steps=1000", "save_every=1000")]
    proc, _, err = _signal_run(cmd, tmp_path, signal.SIGUSR1)
    assert proc.returncode == 0, err[-3000:]
    last = read_metrics(tmp_path / "metrics.jsonl")[-1]["step"]
    assert [s for s, _ in complete_checkpoints(tmp_path / "checkpoints")] == [last]
