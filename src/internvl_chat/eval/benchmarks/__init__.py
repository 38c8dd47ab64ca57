"""One small module per benchmark; `get_benchmark(name)` / `benchmark_names()` find them."""

from .base import (
    Benchmark,
    BenchmarkDataError,
    BenchmarkResult,
    ImageSource,
    Sample,
    ScoreContext,
)
from .registry import benchmark_names, get_benchmark

__all__ = [
    "Benchmark", "BenchmarkDataError", "BenchmarkResult", "ImageSource", "Sample", "ScoreContext",
    "benchmark_names", "get_benchmark",
]
