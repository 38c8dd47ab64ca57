"""`make demo` / `python -m internvl_chat.demo`: the V1.2 recipe in miniature, end to end on a laptop CPU.

1. synthetic V1.2-style data (internvl_chat.data.synth), train split + held-out test split;
2. SmolLM2-135M-Instruct converted once to safetensors (cached in the run folder);
3. stage 0, InternViT pretraining: V1.2 starts from a pretrained InternViT-6B, and no vision
   weights can be had offline, so a small InternViT first learns to see the synthetic images
   inside a throwaway tiny chat model (cheap: its decoder is 2 layers x 128);
4. stage 1 with the training stack: that InternViT + a fresh MLP projector + SmolLM2, LLM frozen
   (V1.2's stage 1); what else trains is up to configs/demo/stage1.yaml (shipped: the projector);
5. stage 2: fine-tuning (configs/demo/stage2.yaml; shipped: full fine-tuning with per-module lr
   multipliers; a LoRA stage 2 is merged afterwards);
6. the evaluation harness on the held-out synthetic benchmark, and again with blank images;
7. a per-task table, a sample chat about a test image, report.json and a loss-curve PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import DemoConfig, DemoConfigError, load_demo_config
from .report import build_report, print_table, write_loss_curve
from .smollm2 import ScratchLLM, SmolLM2Unavailable, convert_to_safetensors, write_scratch_llm


def log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


@dataclass
class DemoPaths:
    root: Path

    def __getattr__(self, name: str) -> Path:  # root/<name>, e.g. paths.data, paths.stage1
        if name.startswith("_"):
            raise AttributeError(name)
        return self.root / name


def prepare_data(cfg: DemoConfig, paths: DemoPaths) -> Path:
    """Generate the synthetic data once per setting (a stamp file records which)."""
    from ..data import synth

    stamp = paths.data / "demo_settings.json"
    knobs = {"question_kinds": cfg.data.question_kinds, "single_question": cfg.data.single_question,
             "short_answer_suffix": cfg.data.short_answer_suffix, "fixed_choice_order": cfg.data.fixed_choice_order}
    wanted = {"n_train": cfg.data.n_train, "n_test": cfg.data.n_test, "image_size": cfg.data.image_size,
              "seed": cfg.data.seed, **knobs}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        log(f"synthetic data: reusing {paths.data}")
        return paths.data
    shutil.rmtree(paths.data, ignore_errors=True)
    t = time.time()
    counts = synth.generate(paths.data, n_train=cfg.data.n_train, n_test=cfg.data.n_test, seed=cfg.data.seed,
                            image_size=cfg.data.image_size, **knobs)
    stamp.write_text(json.dumps(wanted))
    log(f"synthetic data: {sum(c['train'] for c in counts.values())} training images and "
        f"{sum(c['test'] for c in counts.values())} held-out questions over {len(counts)} tasks "
        f"({', '.join(counts)}) in {time.time() - t:.0f} s -> {paths.data}")
    return paths.data


def prepare_llm(cfg: DemoConfig, paths: DemoPaths) -> tuple[Path, str]:
    """(LLM folder, name): SmolLM2 (converted once) or, if unavailable and allowed, a scratch Llama."""
    if cfg.llm.source in ("auto", "smollm2"):
        try:
            t = time.time()
            cached = (paths.smollm2 / "model.safetensors").is_file()
            out = convert_to_safetensors(paths.smollm2)
            log(f"LLM: SmolLM2-135M-Instruct {'cached' if cached else 'converted from GGUF'} in "
                f"{time.time() - t:.0f} s -> {out}")
            return out, "SmolLM2-135M-Instruct"
        except SmolLM2Unavailable as e:
            if cfg.llm.source == "smollm2":
                raise
            print(f"[demo] {e}\n[demo] Continuing with the from-scratch LLM now (llm.source=auto).", flush=True)
    spec = ScratchLLM(hidden_size=cfg.llm.scratch_hidden, num_layers=cfg.llm.scratch_layers,
                      vocab_size=cfg.llm.scratch_vocab)
    out = write_scratch_llm(paths.scratch_llm, spec)
    log(f"LLM: from-scratch Llama ({spec.num_layers} layers x {spec.hidden_size}) -> {out}")
    return out, f"scratch Llama {spec.num_layers}x{spec.hidden_size}"


def extract_vision(model_dir: Path, out: Path) -> Path:
    """Save the InternViT of a trained chat model as a stand-alone InternViT folder (the released layout)."""
    import torch

    from ..model.loading import load_model

    model = load_model(model_dir, torch.float32)
    shutil.rmtree(out, ignore_errors=True)
    model.vision_model.save_pretrained(out)
    return out


def run_stage(name: str, cfg: DemoConfig, paths: DemoPaths, model_overrides: list[str]) -> tuple[Path, float]:
    """Train one stage in this process with the training stack; returns (exported model, minutes).

    The image size is the data's (data.image_size), whatever the stage file says.
    """
    from ..train.config import load_config
    from ..train.loop import train

    stage = getattr(cfg, name)
    out = getattr(paths, name)
    shutil.rmtree(out, ignore_errors=True)  # a demo run always trains from the start
    overrides = model_overrides + [
        "data.source=meta", f"data.meta_path={paths.data / 'meta.json'}", f"logging.output_dir={out}",
    ] + list(stage.overrides)
    train_cfg = load_config(cfg.stage_config_path(stage), overrides)
    train_cfg.model.force_image_size = cfg.data.image_size
    if train_cfg.model.preset:
        train_cfg.model.preset_args = dict(train_cfg.model.preset_args, image_size=cfg.data.image_size)
    log(f"{name}: {cfg.stage_config_path(stage).name} ({' '.join(stage.overrides) or 'no overrides'})")
    t = time.time()
    result = train(train_cfg)
    minutes = (time.time() - t) / 60
    if result.status != "completed" or result.export_dir is None:
        raise RuntimeError(f"{name} did not finish: {result.status}: {result.message}")
    log(f"{name}: {result.step} steps in {minutes:.1f} min -> {result.export_dir}")
    return Path(result.export_dir), minutes


def _has_lora(model_dir: Path) -> bool:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return bool(config.get("use_llm_lora") or config.get("use_backbone_lora"))


def merge_lora_export(src: str | Path, dst: str | Path) -> Path:
    """Write `src` (an export with use_llm_lora / use_backbone_lora > 0) to `dst` with the adapters merged,
    as `internvl-chat merge-lora` does, in fp32 whatever the export's dtype; a plain export is refused."""
    import torch

    from ..train.lora import merge_lora_checkpoint

    if not _has_lora(src):
        raise ValueError(f"{src} has no LoRA adapters (use_llm_lora and use_backbone_lora are 0)")
    shutil.rmtree(dst, ignore_errors=True)
    merge_lora_checkpoint(src, dst, dtype=torch.float32)
    return Path(dst)


def merge_if_lora(model_dir: Path, paths: DemoPaths) -> Path:
    """Stage 2 may train the LLM with LoRA; fold the adapters so the harness loads a plain model."""
    if not _has_lora(model_dir):
        return model_dir
    merge_lora_export(model_dir, paths.model)
    log(f"merged LoRA adapters -> {paths.model}")
    return paths.model


def evaluate(cfg: DemoConfig, model_dir: Path, paths: DemoPaths) -> tuple[dict, dict]:
    """Run `internvl-chat eval` on the held-out synthetic split, with real and with blank images."""
    from ..eval.cli import main as eval_main

    shutil.rmtree(paths.eval, ignore_errors=True)
    argv = ["--model", str(model_dir), "--benchmarks", "synthetic", "--data-root", str(paths.data),
            "--out", str(paths.eval), "--blank-images", "--batch-size", str(cfg.eval.batch_size),
            "--dtype", cfg.eval.dtype, "--device", "cpu", "--no-progress"]
    log("evaluating: internvl-chat eval " + " ".join(argv))
    rc = eval_main(argv)
    if rc != 0:
        raise RuntimeError(f"internvl-chat eval exited with {rc}")
    scores = json.loads((paths.eval / "synthetic" / "scores.json").read_text())
    blank = json.loads((paths.eval / "synthetic-blank" / "scores.json").read_text())
    return scores["metrics"], blank["metrics"]


def sample_chat(cfg: DemoConfig, model_dir: Path, paths: DemoPaths) -> dict:
    """Ask the trained model a few questions about one held-out image, as `internvl-chat chat` would."""
    import torch
    from ..image import image_to_tensor, load_image
    from ..model.loading import load_model_and_tokenizer

    lines = (paths.data / "test.jsonl").read_text(encoding="utf-8").splitlines()
    records = {rec["id"]: rec for rec in map(json.loads, lines)}
    if cfg.eval.chat_image not in records:
        raise KeyError(f"eval.chat_image {cfg.eval.chat_image!r} is not a sample id of {paths.data / 'test.jsonl'}")
    image_path = paths.data / records[cfg.eval.chat_image]["image"]
    model, tokenizer = load_model_and_tokenizer(model_dir, torch.float32)
    pixel_values = image_to_tensor(load_image(image_path), size=model.image_size).unsqueeze(0)
    turns = [{"question": q, "answer": model.chat(tokenizer, pixel_values, q, dict(max_new_tokens=48, do_sample=False))}
             for q in cfg.eval.chat_questions]
    return {"image": str(image_path), "turns": turns}


def _started_at() -> float:
    """`make demo` exports its start time (epoch seconds) so that setup counts; otherwise: now."""
    raw = os.environ.get("DEMO_STARTED_AT", "").strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        raise SystemExit(f"[demo] DEMO_STARTED_AT={raw!r} is not a time in seconds since the epoch") from None
    return value if 0 < value <= time.time() else time.time()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m internvl_chat.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="demo YAML (default configs/demo/demo.yaml)")
    p.add_argument("--out", default="runs/demo", help="run folder (data, LLM cache, stages, eval, report)")
    p.add_argument("--llm", choices=["auto", "smollm2", "scratch"], default=None,
                   help="language model: SmolLM2 (auto falls back to scratch with an explanation)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. data.n_train=8 stage1.max_steps=2")
    args = p.parse_args(argv)
    started = _started_at()
    t_main = time.time()
    try:
        cfg = load_demo_config(args.config, args.overrides + ([f"llm.source={args.llm}"] if args.llm else []))
    except DemoConfigError as e:
        print(f"[demo] {e}", file=sys.stderr)
        return 2
    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    paths = DemoPaths(Path(args.out).resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    try:
        prepare_data(cfg, paths)
        llm_dir, llm_name = prepare_llm(cfg, paths)
    except SmolLM2Unavailable as e:
        print(f"[demo] {e}", file=sys.stderr)
        return 3
    stage0_model, m0 = run_stage("stage0", cfg, paths, [])
    vit_dir = extract_vision(stage0_model, paths.internvit)
    stage1_model, m1 = run_stage("stage1", cfg, paths, [f"model.vision_path={vit_dir}", f"model.llm_path={llm_dir}"])
    stage2_model, m2 = run_stage("stage2", cfg, paths, [f"model.path={stage1_model}"])
    final = merge_if_lora(stage2_model, paths)
    metrics, blank = evaluate(cfg, final, paths)
    chat = sample_chat(cfg, final, paths)
    curve = write_loss_curve([paths.stage0 / "metrics.jsonl", paths.stage1 / "metrics.jsonl",
                              paths.stage2 / "metrics.jsonl"],
                             ["stage 0: InternViT pretraining (tiny decoder)", "stage 1: LLM frozen",
                              "stage 2: fine-tuning"], paths.root / "loss_curve.png")
    report = build_report(metrics, blank, chat, llm_name=llm_name, model_dir=final, train_minutes=m0 + m1 + m2,
                          stage_minutes={"stage0": m0, "stage1": m1, "stage2": m2}, setup_minutes=(t_main - started) / 60,
                          total_minutes=(time.time() - started) / 60, loss_curve=curve, settings=cfg)
    (paths.root / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    log(f"wrote {paths.root / 'report.json'} and {curve}")
    return 0
