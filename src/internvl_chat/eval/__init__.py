"""Evaluation of InternVL-Chat-V1.2 on its benchmark table (`internvl-chat eval`, docs/eval.md).

- `benchmarks/`: one small module per benchmark (loader for the downloadable files,
  InternVL's V1.2 prompt, generation settings, scorer) behind `get_benchmark(name)`.
- `metrics/`: every scoring rule and flavour behind `metrics.score(metric, flavour, **input)`.
- `runner.py`: batched, resumable, data-parallel generation with a per-benchmark prediction cache.
- `report.py` / `published.py`: results.json, report.md and report.png against the release numbers.
- `judge.py`: the optional OpenAI-compatible LLM judge for answer extraction.

Nothing is imported here, so `internvl_chat.eval.metrics` stays light.
"""
