"""Every benchmark, registered explicitly: each module lists its `BENCHMARKS`; this file collects them.

To add a benchmark: write `eval/benchmarks/<name>.py` with a `BENCHMARKS` list (see any
module here), add the module to `_MODULES` below, and its scoring flavours to
`eval.metrics.BENCHMARK_FLAVOURS`. Benchmark modules import `base`; nothing imports back.
"""

from __future__ import annotations

from . import ai2d, chartqa, docvqa, gqa, mathvista, mmbench, mme, mmmu, mmvp, pope, scienceqa, seed, synthetic
from . import textvqa, vizwiz
from .base import Benchmark

# release-table order
_MODULES = (mmmu, mathvista, mmbench, mmvp, mme, scienceqa, pope, textvqa, seed, vizwiz, gqa, chartqa, docvqa, ai2d,
            synthetic)


def _collect() -> dict[str, Benchmark]:
    out: dict[str, Benchmark] = {}
    for module in _MODULES:
        for benchmark in module.BENCHMARKS:
            if benchmark.name in out:
                raise ValueError(f"benchmark {benchmark.name!r} is registered twice ({module.__name__})")
            out[benchmark.name] = benchmark
    return out


REGISTRY: dict[str, Benchmark] = _collect()


def get_benchmark(name: str) -> Benchmark:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def benchmark_names() -> list[str]:
    return list(REGISTRY)
