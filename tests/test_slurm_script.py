"""Break 5: the Slurm script under stand-in `srun` / `scontrol`: the stop signal comes early (B:USR1,
minutes before the limit) and reaches the training step, torchrun gives the workers more than its
default 30 s, srun gets --cpus-per-task, and the script requeues itself after the checkpoint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm" / "train.sbatch"

FAKE_SRUN = """#!/bin/bash
# Stand-in srun: record the arguments, then play a training step that checkpoints on SIGUSR1.
printf '%s\\n' "$@" > "$LOG_DIR/srun_args"
trap 'echo usr1 >> "$LOG_DIR/events"; sleep 0.2; echo saved >> "$LOG_DIR/events"; exit 0' USR1
echo started >> "$LOG_DIR/events"
for i in $(seq 1 300); do sleep 0.05; done
echo finished >> "$LOG_DIR/events"
"""
FAKE_SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$LOG_DIR/events"
if [ "$1" = show ] && [ "$2" = hostnames ]; then echo node001; echo node002; fi
"""


def _stand_ins(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOG_DIR=str(tmp_path), SLURM_JOB_ID="4242",
                SLURM_NNODES="2", SLURM_GPUS_ON_NODE="8", SLURM_CPUS_PER_TASK="48", SLURM_JOB_NODELIST="node[001-002]")


def _events(tmp_path: Path) -> list[str]:
    f = tmp_path / "events"
    return f.read_text().split("\n")[:-1] if f.is_file() else []


def _start(tmp_path: Path, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(["bash", str(SCRIPT), "configs/x.yaml", "output_dir=o"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 10
    while "started" not in _events(tmp_path) and time.time() < deadline:
        time.sleep(0.05)
    if "started" not in _events(tmp_path):
        proc.kill()
        raise AssertionError(f"srun stand-in never started: {proc.communicate()[0]} {_events(tmp_path)}")
    return proc


def test_signal_is_early_and_goes_to_the_batch_shell():
    text = SCRIPT.read_text()
    lead = int(re.search(r"^#SBATCH --signal=B:USR1@(\d+)$", text, re.M).group(1))
    grace = int(re.search(r"STOP_GRACE_S=\$\{STOP_GRACE_S:-(\d+)\}", text).group(1))
    assert lead >= 600  # minutes, not seconds: a 40B checkpoint is ~600 GiB
    assert 30 < grace < lead  # workers get more than torchrun's 30 s, and finish before the limit


def test_usr1_checkpoints_then_requeues_with_cpus_and_grace_passed(tmp_path):
    env = _stand_ins(tmp_path)
    proc = _start(tmp_path, env)
    os.kill(proc.pid, signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    events = _events(tmp_path)
    assert events.index("usr1") < events.index("saved") < events.index("scontrol requeue 4242"), events
    assert "finished" not in events
    args = (tmp_path / "srun_args").read_text().split("\n")
    assert "--cpus-per-task=48" in args
    assert "--shutdown-timeout=840" in args and "--nnodes=2" in args and "--nproc_per_node=8" in args
    assert "--rdzv_endpoint=node001:29500" in args


def test_a_run_that_ends_normally_is_not_requeued(tmp_path):
    env = _stand_ins(tmp_path)
    (tmp_path / "bin" / "srun").write_text('#!/bin/bash\necho started >> "$LOG_DIR/events"\nexit 3\n')
    proc = subprocess.run(["bash", str(SCRIPT), "configs/x.yaml"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 3
    assert not any(e.startswith("scontrol requeue") for e in _events(tmp_path))


def test_requeues_stop_after_max_requeues(tmp_path):
    env = dict(_stand_ins(tmp_path), SLURM_RESTART_COUNT="20")
    proc = _start(tmp_path, env)
    os.kill(proc.pid, signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "not requeueing" in out
    assert not any(e.startswith("scontrol requeue") for e in _events(tmp_path))
