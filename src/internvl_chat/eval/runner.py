"""Batched, resumable, data-parallel evaluation.

For each benchmark: load the samples, drop those already in the prediction
cache (OUT/<benchmark>/predictions*.jsonl), generate the rest in batches with
`model.batch_chat`, append every prediction to this rank's cache file as soon
as its batch is done, then (rank 0, after a barrier) merge the caches and score.
An interrupted run therefore resumes where it stopped, and a finished one
re-scores (e.g. with another --flavour) without generating anything.

Under torchrun each rank takes a contiguous shard of the samples (as InternVL's
InferenceSampler does) and writes predictions.rank<R>.jsonl; rank 0 folds them
into predictions.jsonl.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image
from tqdm import tqdm

from ..conversation import encode_prompt, left_pad
from ..image import image_to_tensor
from ..runtime import DistInfo
from .benchmarks import Benchmark, BenchmarkDataError, BenchmarkResult, Sample, ScoreContext, get_benchmark
from .benchmarks.base import DOCS_LINK, LoadResult, default_oracle

BLANK_RGB = (124, 116, 104)  # ImageNet mean colour: an all-zero tensor after normalisation


class Generator(Protocol):
    def __call__(self, images: list[Image.Image], prompts: list[str], generation_config: dict) -> list[str]: ...


class ModelGenerator:
    """Wraps a chat model + tokenizer as a Generator (one 1-tile image per question, V1.2 style).

    Generation is V1.2's eval generation: InternVL's `model.chat` at v1.2.3
    (internvl/model/internvl_chat/modeling_internvl_chat.py) passes no stop tokens, so
    decoding stops only at the LLM's eos, `<|im_end|>` for Hermes-2, and returns the
    decoded text raw (no split, no strip). The raw text is what is cached; the
    scoring flavours post-process it as their own harness does (benchmarks' score()).
    """

    STOP_TOKEN = "<|im_end|>"

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.image_size = model.image_size
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype

    @torch.no_grad()
    def __call__(self, images: list[Image.Image], prompts: list[str], generation_config: dict) -> list[str]:
        tok = self.tokenizer
        pixel_values = torch.stack([image_to_tensor(img, size=self.image_size) for img in images])
        pixel_values = pixel_values.to(self.device, self.dtype)
        cfg = dict(generation_config)
        stop = tok.convert_tokens_to_ids(self.STOP_TOKEN)
        if isinstance(stop, int) and stop != tok.unk_token_id:
            cfg["eos_token_id"] = stop
        if tok.pad_token_id is not None:
            cfg.setdefault("pad_token_id", tok.pad_token_id)
        self.model.bind_tokenizer(tok)
        queries = [self.model.build_prompt(q, None, [1]) for q in prompts]
        # the one tokenization path (conversation.encode_prompt), left-padded as the original's batch_chat
        ids, mask = left_pad([encode_prompt(tok, q) for q in queries], tok)
        out = self.model.generate(pixel_values=pixel_values, input_ids=torch.tensor(ids, device=self.device),
                                  attention_mask=torch.tensor(mask, device=self.device), **cfg)
        return tok.batch_decode(out, skip_special_tokens=True)


@dataclass
class RunConfig:
    data_root: Path
    out_dir: Path
    batch_size: int = 16
    limit: int | None = None
    flavour: str = "internvl"
    judge: object | None = None
    blank_images: bool = False  # same questions with a uniform image: shows how much the model uses the image
    progress: bool = True
    max_new_tokens: int | None = None  # cap on the per-benchmark value (smoke runs); None = InternVL's settings
    oracle: bool = False  # predictions are the gold answers (checks data + scoring; no model)
    # what made the predictions (model_identity() + dtype); part of the cache key. None: an opaque generator
    model_identity: dict | None = None
    match_model: bool = True  # False: re-score a cache whatever model made it (the CLI without --model)
    regenerate: bool = False  # a cache made under other settings is deleted and redone instead of refused


@dataclass
class RunStats:
    generated: int = 0
    cached: int = 0
    seconds: float = 0.0
    samples: int = 0

    @property
    def samples_per_s(self) -> float | None:
        return self.generated / self.seconds if self.generated and self.seconds > 0 else None


@dataclass
class BenchmarkRun:
    benchmark: str
    result: BenchmarkResult | None  # None on ranks other than 0
    stats: RunStats = field(default_factory=RunStats)


class CacheError(ValueError):
    pass


def cache_dir(cfg: RunConfig, bench: Benchmark) -> Path:
    return Path(cfg.out_dir) / (bench.name + ("-blank" if cfg.blank_images else "") + ("-oracle" if cfg.oracle else ""))


def load_samples(bench: Benchmark, data_root: Path, limit: int | None = None) -> list[Sample]:
    """A benchmark's samples, checked: layout detected, ids unique, every image file present.

    Raises BenchmarkDataError (one line) on anything wrong, so a run fails before the model loads.
    """
    samples = bench.load(Path(data_root))
    layout = getattr(samples, "layout", "")
    if not samples:
        raise BenchmarkDataError(f"{bench.name}: the {layout or 'data'} under {data_root} holds no questions")
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise BenchmarkDataError(f"{bench.name}: sample id {s.id!r} occurs more than once ({layout})")
        seen.add(s.id)
    missing = [s for s in samples if s.image is not None and s.image.path is not None and not Path(s.image.path).exists()]
    if missing:
        raise BenchmarkDataError(f"{bench.name}: {len(missing)} of {len(samples)} images are missing from the {layout} "
                                 f"layout, first {missing[0].image.path} ({missing[0].image.origin}); see {DOCS_LINK}")
    return LoadResult(samples[:limit] if limit is not None else samples, layout, getattr(samples, "skipped", {}))


def validate(names: list[str], data_root: Path, limit: int | None = None) -> dict[str, list[Sample]]:
    """Load and check every requested benchmark's data (before any model is loaded)."""
    return {n: load_samples(get_benchmark(n), data_root, limit) for n in names}


def read_cache(directory: Path) -> dict[str, dict]:
    """All cached predictions of a benchmark, keyed by sample id.

    A run killed mid-write can leave one incomplete final line in a file; that
    line is dropped (its sample is generated again). Anything else malformed is an error.
    """
    records: dict[str, dict] = {}
    files = sorted(directory.glob("predictions*.jsonl")) if directory.is_dir() else []
    for path in files:
        lines = path.read_text(encoding="utf-8").split("\n")
        complete, tail = lines[:-1], lines[-1]  # text after the last newline was never finished
        for no, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                records[str(rec["id"])] = rec
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CacheError(f"{path}:{no}: not a prediction record ({e}); delete the line or the file") from e
        if tail.strip():
            print(f"[eval] {path}: dropping an unfinished last line (interrupted write); it will be regenerated")
    return records


def _drop_torn_tail(path: Path) -> None:
    """Cut an unfinished last line (a write interrupted by a kill) so appended records start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


CACHE_KEY = "cache_key.json"
CACHE_KEY_VERSION = 2  # bump when prompts or the prediction format change (2: V1.2 eval prompts per layout, raw responses stopped only at <|im_end|>)


def model_identity(model_dir: str | Path) -> dict:
    """What distinguishes one set of weights from another without reading 70 GB: the config's hash and the
    weight files' sizes and modification times (a retrained, re-exported or replaced model differs)."""
    import hashlib

    folder = Path(model_dir)
    files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" or p.name.endswith(".index.json"))
    return {"path": str(folder.resolve()),  # recorded for the report, not compared (a moved folder is the same model)
            "config_sha256": hashlib.sha256((folder / "config.json").read_bytes()).hexdigest(),
            "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def _data_identity(data_root: Path, bench: Benchmark) -> list:
    """The benchmark's top-level files (annotations, question tables); image folders are not walked."""
    folder = Path(data_root) / bench.data_dir if bench.data_dir else Path(data_root)
    if not folder.is_dir():  # some benchmarks also accept their files directly under --data-root
        folder = Path(data_root)
    if not folder.is_dir():
        return []
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.iterdir()) if p.is_file()]


def cache_key(cfg: RunConfig, bench: Benchmark, gen_cfg: dict) -> dict:
    return {"version": CACHE_KEY_VERSION, "benchmark": bench.name, "blank_images": cfg.blank_images,
            "model": cfg.model_identity, "generation": gen_cfg, "data": _data_identity(cfg.data_root, bench)}


def _key_differences(old: dict, new: dict, match_model: bool) -> list[str]:
    names = {"version": "cache format", "model": "model (config or weight files)", "generation": "generation settings",
             "data": "benchmark data files", "benchmark": "benchmark", "blank_images": "blank-image pass"}
    diffs = []
    for k, what in names.items():
        if k == "model" and not match_model:
            continue
        a, b = old.get(k), new.get(k)
        if k == "model" and isinstance(a, dict) and isinstance(b, dict):
            a, b = ({x: v for x, v in d.items() if x != "path"} for d in (a, b))
        if a != b:
            if k == "generation":
                a, b = a or {}, b or {}
                changed = sorted(x for x in set(a) | set(b) if a.get(x) != b.get(x))
                diffs.append(f"{what} ({', '.join(f'{x}: {a.get(x)} -> {b.get(x)}' for x in changed)})")
            else:
                diffs.append(what)
    return diffs


def _prepare_cache(directory: Path, key: dict, cfg: RunConfig, dist: DistInfo) -> None:
    """Never mix predictions made under other settings: refuse (or, with regenerate, delete and redo them)."""
    key_path = directory / CACHE_KEY
    has_predictions = any(directory.glob("predictions*.jsonl"))
    stale = None
    if has_predictions:
        if not key_path.is_file():
            stale = "no record of the model and settings that made them (an older version wrote them)"
        else:
            try:
                old = json.loads(key_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise CacheError(f"{key_path}: unreadable ({e}); delete {directory}") from None
            diffs = _key_differences(old, json.loads(json.dumps(key)), cfg.match_model)
            if diffs:
                stale = "they were made with another " + "; another ".join(diffs)
    if stale and not cfg.regenerate:
        raise CacheError(f"{directory} holds predictions that cannot be reused: {stale}. Use a new --out, "
                         f"or pass --regenerate to delete them and generate again")
    if stale and dist.is_main:
        for p in list(directory.glob("predictions*.jsonl")) + [directory / "scores.json"]:
            p.unlink(missing_ok=True)
        print(f"[eval] {directory}: regenerating ({stale})")
    dist.barrier()
    # every rank records the key before it writes a prediction (same content; write-then-rename per rank);
    # re-scoring without a model keeps the record of the model that made the predictions
    if stale or not key_path.is_file() or cfg.match_model:
        tmp = directory / f"{CACHE_KEY}.{dist.rank}.tmp"
        tmp.write_text(json.dumps(key, indent=1), encoding="utf-8")
        os.replace(tmp, key_path)


def _check_cached_prompt(rec: dict, prompt: str, directory: Path) -> None:
    if rec.get("prompt") != prompt:
        raise CacheError(
            f"{directory}: cached prediction for sample {rec['id']!r} was made with a different prompt "
            f"({rec.get('prompt')!r:.80} vs {prompt!r:.80}); use a fresh --out or delete the cache")


def _shard(items: list, rank: int, world: int) -> list:
    """Contiguous shard `rank` of `world` (sizes differ by at most one)."""
    base, extra = divmod(len(items), world)
    start = rank * base + min(rank, extra)
    return items[start:start + base + (1 if rank < extra else 0)]


def _load_images(batch: list[Sample], blank: bool, size: int) -> list[Image.Image]:
    if blank:
        return [Image.new("RGB", (size, size), BLANK_RGB) for _ in batch]
    return [s.image.load() for s in batch]


def run_benchmark(bench: Benchmark, generate: Generator, cfg: RunConfig, dist: DistInfo | None = None,
                  image_size: int = 448, samples: list[Sample] | None = None) -> BenchmarkRun:
    dist = dist or DistInfo()
    if samples is None:
        samples = load_samples(bench, Path(cfg.data_root), cfg.limit)
    oracle = (bench.oracle or default_oracle) if cfg.oracle else None
    prompts = {s.id: bench.prompt(s) for s in samples}
    directory = cache_dir(cfg, bench)
    directory.mkdir(parents=True, exist_ok=True)
    gen_cfg = bench.generation_config()
    if cfg.max_new_tokens is not None:
        gen_cfg["max_new_tokens"] = min(gen_cfg["max_new_tokens"], cfg.max_new_tokens)
        gen_cfg["min_new_tokens"] = min(gen_cfg["min_new_tokens"], gen_cfg["max_new_tokens"])
    _prepare_cache(directory, cache_key(cfg, bench, gen_cfg), cfg, dist)
    cached = read_cache(directory)
    for sid, rec in cached.items():
        if sid in prompts:
            _check_cached_prompt(rec, prompts[sid], directory)

    mine = [s for s in _shard(samples, dist.rank, dist.world_size) if s.id not in cached]
    stats = RunStats(cached=sum(1 for s in samples if s.id in cached), samples=len(samples))
    name = "predictions.jsonl" if dist.world_size == 1 else f"predictions.rank{dist.rank}.jsonl"
    bar = tqdm(total=len(mine), desc=f"{bench.name}" + (f" [rank {dist.rank}]" if dist.world_size > 1 else ""),
               unit="q", disable=not cfg.progress, dynamic_ncols=True)
    start = time.perf_counter()
    _drop_torn_tail(directory / name)
    with open(directory / name, "a", encoding="utf-8") as out:
        for i in range(0, len(mine), cfg.batch_size):
            batch = mine[i: i + cfg.batch_size]
            if oracle is not None:  # --oracle: the gold answers stand in for the model
                preds = [oracle(s) for s in batch]
            else:
                images = _load_images(batch, cfg.blank_images, image_size)
                preds = generate(images, [prompts[s.id] for s in batch], gen_cfg)
            if len(preds) != len(batch):
                raise RuntimeError(f"{bench.name}: generator returned {len(preds)} outputs for {len(batch)} prompts")
            for s, p in zip(batch, preds):
                out.write(json.dumps({"id": s.id, "prompt": prompts[s.id], "prediction": p}, ensure_ascii=False) + "\n")
            out.flush()  # a kill loses at most the batch in flight
            stats.generated += len(batch)
            bar.update(len(batch))
    stats.seconds = time.perf_counter() - start
    bar.close()

    dist.barrier()
    run_name = directory.name  # "<benchmark>" or "<benchmark>-blank"
    if not dist.is_main:
        return BenchmarkRun(run_name, None, stats)
    cached = read_cache(directory)
    missing = [s.id for s in samples if s.id not in cached]
    if missing:
        raise RuntimeError(f"{bench.name}: {len(missing)} samples have no prediction after generation (first: {missing[0]})")
    if dist.world_size > 1:
        _consolidate(directory, cached)
        stats.generated = stats.samples - stats.cached  # all ranks together (rank 0's clock for the rate)
    preds = [cached[s.id]["prediction"] for s in samples]
    if cfg.flavour == "vlmevalkit":
        # VLMEvalKit calls the checkpoint's own chat(), which returns response.split(sep)[0].strip();
        # InternVL's V1.2 scripts score the raw decoded text (see ModelGenerator)
        preds = [p.strip() for p in preds]
    # submission files go to OUT/, those of the blank-image pass into its own folder so neither overwrites the other
    ctx = ScoreContext(flavour=cfg.flavour, judge=cfg.judge, out_dir=directory if cfg.blank_images else Path(cfg.out_dir))
    result = bench.score(samples, preds, ctx)
    layout, skipped = getattr(samples, "layout", ""), dict(getattr(samples, "skipped", {}))
    result.metrics["layout"] = layout
    result.metrics["skipped_rows"] = skipped
    if skipped:
        result.notes.append("skipped rows (as upstream): " + ", ".join(f"{n} {why}" for why, n in skipped.items()))
    if result.submission and bench.check_submission is not None:
        result.metrics["submission_check"] = bench.check_submission(result.submission, samples)
    (directory / "scores.json").write_text(json.dumps(asdict(result), indent=1, ensure_ascii=False, default=str))
    return BenchmarkRun(run_name, result, stats)


def _consolidate(directory: Path, records: dict[str, dict]) -> None:
    """Fold the per-rank files into predictions.jsonl (write-then-rename, so a kill leaves a readable cache)."""
    tmp = directory / "predictions.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records.values():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, directory / "predictions.jsonl")
    for p in directory.glob("predictions.rank*.jsonl"):
        p.unlink()


def evaluate(names: list[str], generate: Generator, cfg: RunConfig, dist: DistInfo | None = None,
             image_size: int = 448, data: dict[str, list[Sample]] | None = None) -> list[BenchmarkRun]:
    """`data`: what `validate` returned, when the caller checked the data already (the CLI does, first)."""
    if data is None:
        data = validate(names, Path(cfg.data_root), cfg.limit)  # every benchmark's data, before any generation
    return [run_benchmark(get_benchmark(n), generate, cfg, dist, image_size=image_size, samples=data[n]) for n in names]
