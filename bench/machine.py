"""What a measurement ran on: CPU, cores, load, GPU, versions and the git commit (benchmarks print this)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

_REPO = Path(__file__).resolve().parents[1]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if commit != "unknown" and _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+uncommitted"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "python": platform.python_version(), "torch": torch.__version__, "commit": commit, "load": load}


def describe() -> str:
    i = machine_info()
    return (f"machine: {i['cpu']}, {i['cores']} cores (torch threads {i['torch_threads']}), GPU {i['gpu']}, "
            f"load average {i['load']}\nsoftware: python {i['python']}, torch {i['torch']}, commit {i['commit']}")
