"""Time and memory of `internvl-chat plan` on the 40B V1.2 recipe (or any config), on this CPU.

    python bench/plan_time.py                                    # V1.2 recipe, 8 x A100-80G
    python bench/plan_time.py --world-size 64 --config configs/internvl_chat_v1_2_hermes2_yi34b.yaml

Prints the machine, wall-clock and CPU seconds (the CPU figure is what a busy shared machine does
not inflate), the peak resident memory of the process, the plan's verdict, and a RESULT line.
No suggestion search: one plan.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from machine import describe  # noqa: E402
from internvl_chat.train import load_config  # noqa: E402
from internvl_chat.train.plan import GIB, Target, plan  # noqa: E402
from internvl_chat.train.plan_report import GPUS  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "internvl_chat_v1_2_hermes2_yi34b.yaml"))
    p.add_argument("--world-size", type=int, default=8)
    p.add_argument("--gpu", default="a100-80g", choices=sorted(GPUS))
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    print(describe())
    gpu = GPUS[args.gpu]
    cfg = load_config(args.config, args.overrides)
    wall, cpu = time.perf_counter(), time.process_time()
    result = plan(cfg, Target(args.world_size, gpu.memory_bytes, gpu.peak_flops, args.gpu))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    print(f"{result.params_total / 1e9:.2f}B parameters, {args.world_size} x {args.gpu}: tracked peak "
          f"{result.memory.peak_bytes / GIB:.1f} GiB, required {result.required_bytes / GIB:.1f} GiB, "
          f"fits {result.fits}")
    print(f"RESULT wall_s={wall:.1f} cpu_s={cpu:.1f} max_rss_gib={rss_gib:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
