"""scripts/gpu_first_run.sh: its CPU smoke mode runs as is, writes one JSON summary, records every
step's outcome, and keeps going after a failing step."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_first_run", ROOT / "bench" / "gpu_first_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_smoke_through_the_shell_script(tmp_path):
    out = tmp_path / "summary.json"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_first_run.sh"), "--cpu", "--out", str(out),
                           "--only", "environment,tiny_train_bf16_flash,packed_losses,plan_vs_measured"],
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = json.loads(out.read_text())["steps"]
    assert list(steps) == ["environment", "packed_losses", "tiny_train_bf16_flash", "plan_vs_measured"]
    assert steps["environment"]["status"] == "ok" and steps["environment"]["cuda"] is False
    assert steps["tiny_train_bf16_flash"]["status"] == "skipped"
    diffs = steps["packed_losses"]["max_abs_diff_vs_alone"]
    assert steps["packed_losses"]["rows"] >= 2
    assert diffs["sdpa"] < 1e-4 and diffs["varlen_reference"] < 1e-4
    assert diffs["varlen_reference without varlen offsets (the old trainer)"] > 1e-3
    plan = steps["plan_vs_measured"]  # on CPU: the plan's peak against the tracked real step
    assert plan["status"] == "ok" and 0.85 < plan["planned_over_tracked"] < 1.15, plan
    assert plan["planned_peak_gib"] > 0 and "cuda_max_allocated_gib" not in plan


def test_a_failing_step_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    mod = _module()

    def boom(ctx):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(mod, "STEPS", [("boom", boom), ("environment", mod.step_environment)])
    out = tmp_path / "s.json"
    assert mod.main(["--cpu", "--out", str(out)]) == 1
    summary = json.loads(out.read_text())
    assert summary["steps"]["boom"]["status"] == "failed" and "illegal memory" in summary["steps"]["boom"]["error"]
    assert summary["steps"]["environment"]["status"] == "ok" and summary["failed"] == ["boom"]


def test_without_a_gpu_the_gpu_mode_says_to_use_cpu(tmp_path, capsys):
    assert _module().main(["--out", str(tmp_path / "s.json")]) == 2
    assert "--cpu" in capsys.readouterr().err
