"""The first run on a GPU: every GPU path once, each step's outcome in one JSON summary.

    bash scripts/gpu_first_run.sh                       # one GPU, under 10 minutes
    bash scripts/gpu_first_run.sh --cpu --out s.json    # the same steps on the CPU (smoke; tests use it)

Steps (each runs in a subprocess of its own with a timeout; a failure is recorded and the next step
runs; the summary is rewritten after every step, so an interrupted run still leaves one):
- environment: torch / transformers / flash-attn versions, the GPU;
- packed_losses: one packed batch with 2+ rows, per-sample losses of flash-attention (varlen) and
  SDPA against each sample alone, and flash-attention without the varlen offsets (the old bug);
- tiny_train_*: configs/tiny.yaml in fp32 and bf16, SDPA and flash-attention, and bf16 + packing
  (fp32 + flash-attention must be refused with a clear message);
- host_syncs: device-to-host synchronisations in one padded and one packed micro-batch (CUDA's
  sync debug mode; informational);
- throughput_1b_packing / throughput_1b_padding: bench/train_throughput.py --gpu-preset 1b
  (tokens/s, MFU, max_memory_reserved);
- chat / chat_auto / serve: a tiny model answering on the GPU (`--device cuda`, `--device auto`).
On the CPU (--cpu) the flash-attention steps are skipped, the packed-loss check uses the
pure-PyTorch flash stand-in, and the throughput step runs the tiny config for a few steps.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))  # bench/machine.py, also when loaded by path (tests)

# Head dim 16 (64 / 4 heads): flash-attention kernels want a multiple of 8; the preset's 48 / 4 = 12 is not.
TINY = ["model.preset_args={image_size: 56, llm_hidden: 64}"]
QUIET = ["progress_bar=false", "tensorboard=false", "plot=false", "save_every=0", "export=false", "resume=false"]


class Skip(Exception):
    pass


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def _tail(text: str, n: int = 1500) -> str:
    return text[-n:]


def _flash_installed() -> bool:
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


# -- steps -------------------------------------------------------------------------------------------
def step_environment(ctx) -> dict:
    import torch
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__, "cuda": torch.cuda.is_available(),
           "flash_attn": None}
    if _flash_installed():
        import flash_attn

        out["flash_attn"] = flash_attn.__version__
    if torch.cuda.is_available():
        out.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                   gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1))
    from machine import describe

    out["machine"] = describe()
    return out


def step_packed_losses(ctx) -> dict:
    """In a subprocess: see `packed_losses_main`."""
    done = _run([sys.executable, __file__, "--packed-losses-only", *(["--cpu"] if ctx.cpu else [])], ctx.timeout(240))
    if done.returncode != 0:
        raise RuntimeError(_tail(done.stderr))
    return json.loads(done.stdout.strip().splitlines()[-1])


def packed_losses_main(cpu: bool) -> dict:
    import torch

    from internvl_chat.data import Collator, per_sample_loss, preprocess
    from internvl_chat.model.presets import build_tiny_model
    from internvl_chat.model.varlen_reference import register_varlen_reference

    device = torch.device("cpu" if cpu else "cuda")
    dtype = torch.float32 if cpu else torch.bfloat16
    model, tok = build_tiny_model(llm_hidden=256, llm_layers=4, dtype=dtype)
    model = model.to(device)
    items = []
    for k in range(8):
        conv = [{"from": "human", "value": "describe the picture " * (k % 4 + 1)},
                {"from": "gpt", "value": "a red square on a blue ground " * (k % 3 + 1)}]
        items.append({**preprocess(conv, tok, "Hermes-2", model.num_image_token, 1024, text_only=True),
                      "pixel_values": torch.zeros(1, 3, 56, 56), "image_flags": torch.tensor([0]),
                      "dataset": "t", "id": str(k), "truncated": 0})
    budget = sum(int(it["input_ids"].numel()) for it in items) // 3 + 1
    batch = Collator(tok.pad_token_id, pack=True, token_budget=budget, mask="position_ids")(items)

    def losses(impl: str, inputs: dict, b) -> torch.Tensor:
        model.language_model.config._attn_implementation = impl
        with torch.no_grad():
            logits = model(**inputs, use_cache=False).logits
        return per_sample_loss(logits.float(), b.inputs["labels"].to(device), b.sample_index.to(device)).cpu()

    def alone() -> torch.Tensor:
        out = []
        for it in items:
            b = Collator(tok.pad_token_id)([it])
            out.append(losses("sdpa", b.to(device).inputs, b)[0])
        return torch.stack(out)

    flash = register_varlen_reference() if cpu else "flash_attention_2"
    ref = alone()
    inputs = batch.to(device).inputs
    packed = {"sdpa": losses("sdpa", inputs, batch), flash: losses(flash, inputs, batch),
              flash + " without varlen offsets (the old trainer)":
                  losses(flash, {k: v for k, v in inputs.items() if not k.startswith(("cu_seq_lens", "max_length"))},
                         batch)}
    return {"rows": int(batch.inputs["input_ids"].shape[0]), "samples": int(batch.num_samples), "dtype": str(dtype),
            "attention": flash, "alone_losses": [round(float(x), 5) for x in ref],
            "max_abs_diff_vs_alone": {k: float((v - ref).abs().max()) for k, v in packed.items()}}


def step_host_syncs(ctx) -> dict:
    """In a subprocess: see `host_syncs_main` (GPU only: CUDA's sync debug mode counts them)."""
    if ctx.cpu:
        raise Skip("counts CUDA synchronisations")
    done = _run([sys.executable, __file__, "--host-syncs-only"], ctx.timeout(180))
    if done.returncode != 0:
        raise RuntimeError(_tail(done.stderr))
    return json.loads(done.stdout.strip().splitlines()[-1])


def host_syncs_main() -> dict:
    """Device-to-host synchronisations in one training micro-batch (forward + backward) of a bf16 tiny
    model, padded and packed; informational: the next session sees which ones remain."""
    import warnings

    import torch

    from internvl_chat.data import Collator, preprocess
    from internvl_chat.model.presets import build_tiny_model

    model, tok = build_tiny_model(llm_hidden=256, llm_layers=2, dtype=torch.bfloat16)
    model = model.cuda().train()
    items = []
    for k in range(4):
        conv = [{"from": "human", "value": "describe " * (k + 1)}, {"from": "gpt", "value": "a square " * (k + 2)}]
        items.append({**preprocess(conv, tok, "Hermes-2", model.num_image_token, 512, text_only=True),
                      "pixel_values": torch.zeros(1, 3, 56, 56), "image_flags": torch.tensor([0]),
                      "dataset": "t", "id": str(k), "truncated": 0})
    out = {}
    for name, collate in (("padded", Collator(tok.pad_token_id)),
                          ("packed", Collator(tok.pad_token_id, pack=True, token_budget=512, mask="position_ids"))):
        batch = collate(items)
        model(**batch.to("cuda").inputs, use_cache=False, loss_only=True).loss.backward()  # warm
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            loss = model(**batch.to("cuda").inputs, use_cache=False, loss_only=True).loss
            loss.backward()
            torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message).splitlines()[0][:160] for w in caught if "synchroniz" in str(w.message)]
        out[name] = {"syncs": len(syncs), "first": syncs[:5]}
    return out


def _train(ctx, name: str, overrides: list[str]) -> dict:
    out = ctx.work / name
    steps = 2 if ctx.cpu else 4
    cmd = [sys.executable, "-m", "internvl_chat.train", str(ROOT / "configs" / "tiny.yaml"), f"output_dir={out}",
           f"max_steps={steps}", "data.synthetic_train=8", *TINY, *QUIET, *overrides]
    t0 = time.perf_counter()
    done = _run(cmd, ctx.timeout(180))
    result = {"overrides": overrides, "seconds": round(time.perf_counter() - t0, 1), "returncode": done.returncode}
    metrics = out / "metrics.jsonl"
    if metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        result["losses"] = [round(r["loss"], 5) for r in rows]
    if done.returncode != 0:
        result["stderr"] = _tail(done.stderr)
    return result


def _tiny_case(dtype: str, attn: str | None, packing: bool = False):
    def step(ctx) -> dict:
        if attn == "flash_attention_2" and (ctx.cpu or not _flash_installed()):
            raise Skip("needs a GPU with flash-attn installed")
        overrides = [f"parallel.dtype={dtype}"] + ([f"model.attn_implementation={attn}"] if attn else [])
        overrides += ["data.packing=true", "group_by_length=false"] if packing else []
        result = _train(ctx, f"tiny_{dtype}_{attn or 'default'}{'_packing' if packing else ''}", overrides)
        if dtype == "fp32" and attn == "flash_attention_2":
            # Must be refused up front with the reason, not crash inside flash-attn.
            result["expected"] = "refused: flash-attention needs bf16/fp16 on CUDA"
            if result["returncode"] == 0 or "needs a CUDA device and bf16/fp16" not in result.get("stderr", ""):
                raise RuntimeError(f"fp32 + flash_attention_2 was not refused clearly: {result}")
            return result
        if result["returncode"] != 0:
            raise RuntimeError(result.get("stderr", "training failed"))
        return result
    return step


def _throughput(packing: bool):
    def step(ctx) -> dict:
        if ctx.cpu:
            cmd = [sys.executable, "bench/train_throughput.py", "--steps", "1", "--warmup", "1", "progress_bar=false",
                   f"data.packing={str(packing).lower()}"]
        else:
            cmd = [sys.executable, "bench/train_throughput.py", "--gpu-preset", "1b", "--steps", "8", "--warmup", "3",
                   "progress_bar=false", f"data.packing={str(packing).lower()}"]
        done = _run(cmd, ctx.timeout(240))
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
        if done.returncode != 0 or not line:
            raise RuntimeError(_tail(done.stderr + done.stdout))
        fields = dict(kv.split("=", 1) for kv in line[-1].split()[1:])
        return {"result": fields, "report": [x for x in done.stdout.splitlines() if x and not x.startswith("RESULT")]}
    return step


def _model_dir(ctx) -> Path:
    path = ctx.work / "tiny_model"
    if not (path / "config.json").is_file():
        make = f"from internvl_chat.model.presets import init_model_dir; init_model_dir('tiny', {str(path)!r}, llm_hidden=64)"
        done = _run([sys.executable, "-c", make], ctx.timeout(120))  # head dim 16: flash-attention can run it
        if done.returncode != 0:
            raise RuntimeError(_tail(done.stderr))
    return path


def _chat(device_flag: str, dtype: str = "auto"):
    def step(ctx) -> dict:
        device = "cpu" if ctx.cpu else device_flag
        cmd = [sys.executable, "-m", "internvl_chat.cli", "chat", "--model", str(_model_dir(ctx)), "--device", device,
               "--dtype", dtype, "--prompt", "What is in the picture?", "--max-tokens", "8"]
        done = _run(cmd, ctx.timeout(120))
        if done.returncode != 0:
            raise RuntimeError(_tail(done.stderr))
        return {"device": device, "dtype": dtype, "answer": done.stdout.strip()[:200]}
    return step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_serve(ctx) -> dict:
    device = "cpu" if ctx.cpu else "cuda"
    port = _free_port()
    cmd = [sys.executable, "-m", "internvl_chat.cli", "serve", "--model", str(_model_dir(ctx)), "--device", device,
           "--port", str(port)]
    log = open(ctx.work / "serve.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        body = json.dumps({"model": _model_dir(ctx).name, "max_tokens": 8,
                           "messages": [{"role": "user", "content": "Say something."}]}).encode()
        deadline = time.time() + ctx.timeout(120)
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(_tail((ctx.work / "serve.log").read_text()))
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=60) as resp:
                    answer = json.loads(resp.read())
                return {"device": device, "answer": answer["choices"][0]["message"]["content"][:200]}
            except urllib.error.HTTPError as e:  # the server is up and refused the request: a real failure
                raise RuntimeError(f"HTTP {e.code}: {e.read()[:500]!r}") from None
            except (ConnectionError, urllib.error.URLError):  # not listening yet
                time.sleep(0.5)
        raise RuntimeError("the server did not answer in time")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _plan_case(ctx) -> tuple[list[str], list[str]]:
    """(config overrides, plan flags) for the plan check: the 1b preset on a GPU, a small tiny variant on CPU."""
    if ctx.cpu:
        overrides = ["num_threads=1", "model.preset_args={image_size: 112, llm_hidden: 128, vit_hidden: 64, "
                     "llm_layers: 3, vit_layers: 3}"]
        return overrides, ["--gpu-memory", "1024", "--peak-tflops", "1"]
    import torch
    from train_throughput import gpu_preset

    preset_args, extra = gpu_preset("1b")
    gib = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
    overrides = ["model.preset=tiny", "model.path=null", "model.vision_path=null", "model.llm_path=null", *extra,
                 "global_batch_size=2", f"model.preset_args={json.dumps(preset_args)}"]
    return overrides, ["--gpu-memory", f"{gib:.1f}", "--peak-tflops", "989"]


def step_plan_vs_measured(ctx) -> dict:
    """`internvl-chat plan` for one GPU against the same step measured on real tensors (plan_check): the
    tracked peak, and on a GPU torch.cuda.max_memory_allocated(). A plan below the allocator's peak by more
    than 15 % is a failure: that is the direction that turns a "fits" into an out-of-memory."""
    overrides, flags = _plan_case(ctx)
    config = str(ROOT / "configs" / "tiny.yaml")
    plan_json, measured_json = ctx.work / "plan.json", ctx.work / "plan_check.json"
    done = _run([sys.executable, "-m", "internvl_chat.cli", "plan", config, *overrides, "--world-size", "1",
                 *flags, "--no-suggest", "--json", str(plan_json)], ctx.timeout(400))
    if not plan_json.is_file():
        raise RuntimeError(_tail(done.stderr + done.stdout))
    done = _run([sys.executable, "-m", "internvl_chat.train.plan_check", config, *overrides,
                 "--out", str(measured_json)], ctx.timeout(300))
    if done.returncode != 0:
        raise RuntimeError(_tail(done.stderr))
    planned = json.loads(plan_json.read_text())["per_gpu"]
    measured = json.loads(measured_json.read_text())["0"]
    gib = lambda b: round(b / 2 ** 30, 3)  # noqa: E731
    result = {"planned_peak_gib": gib(planned["peak_bytes"]), "measured_tracked_peak_gib": gib(measured["peak_bytes"]),
              "planned_over_tracked": round(planned["peak_bytes"] / measured["peak_bytes"], 3)}
    if "cuda_max_allocated_bytes" in measured:
        allocated = measured["cuda_max_allocated_bytes"]
        result["cuda_max_allocated_gib"] = gib(allocated)
        result["planned_over_allocated"] = round(planned["peak_bytes"] / allocated, 3)
        if planned["peak_bytes"] < 0.85 * allocated:
            raise RuntimeError(f"the plan is too optimistic: {result}")
    return result


STEPS = [
    ("environment", step_environment),
    ("packed_losses", step_packed_losses),
    ("host_syncs", step_host_syncs),
    ("tiny_train_fp32_sdpa", _tiny_case("fp32", "sdpa")),
    ("tiny_train_fp32_default", _tiny_case("fp32", None)),
    ("tiny_train_fp32_flash_refused", _tiny_case("fp32", "flash_attention_2")),
    ("tiny_train_bf16_sdpa", _tiny_case("bf16", "sdpa")),
    ("tiny_train_bf16_flash", _tiny_case("bf16", "flash_attention_2")),
    ("tiny_train_bf16_flash_packing", _tiny_case("bf16", "flash_attention_2", packing=True)),
    ("chat", _chat("cuda")),  # the tiny model is saved in fp32: SDPA
    ("chat_bf16", _chat("cuda", "bfloat16")),  # flash-attention where installed
    ("chat_auto", _chat("auto")),
    ("serve", step_serve),
    ("throughput_1b_packing", _throughput(True)),
    ("throughput_1b_padding", _throughput(False)),
    ("plan_vs_measured", step_plan_vs_measured),
]


class Context:
    def __init__(self, cpu: bool, work: Path, budget_s: float):
        self.cpu, self.work, self.deadline = cpu, work, time.time() + budget_s

    def timeout(self, wanted: float) -> float:
        left = self.deadline - time.time()
        if left < 5:
            raise Skip("time budget spent")
        return min(wanted, left)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_first_run.json", help="the JSON summary")
    p.add_argument("--cpu", "--dry-run", dest="cpu", action="store_true", help="smoke-run every step on the CPU")
    p.add_argument("--budget-s", type=float, default=570, help="stop starting steps after this long")
    p.add_argument("--only", default=None, help="comma-separated step names")
    p.add_argument("--packed-losses-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--host-syncs-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.packed_losses_only:
        print(json.dumps(packed_losses_main(args.cpu)))
        return 0
    if args.host_syncs_only:
        print(json.dumps(host_syncs_main()))
        return 0
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the CPU smoke run", file=sys.stderr)
        return 2
    wanted = set(args.only.split(",")) if args.only else None
    out = Path(args.out)
    summary = {"mode": "cpu" if args.cpu else "gpu", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "steps": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_first_run_") as tmp:
        ctx = Context(args.cpu, Path(tmp), args.budget_s)
        for name, fn in STEPS:
            if wanted and name not in wanted:
                continue
            t0 = time.perf_counter()
            try:
                record = {"status": "ok", **fn(ctx)}
            except Skip as e:
                record = {"status": "skipped", "reason": str(e)}
            except Exception as e:  # recorded, and the next step runs: one report for the whole machine
                record = {"status": "failed", "error": _tail(f"{type(e).__name__}: {e}", 3000)}
            record["seconds"] = round(time.perf_counter() - t0, 1)
            summary["steps"][name] = record
            print(f"[gpu_first_run] {name}: {record['status']} ({record['seconds']} s)", file=sys.stderr, flush=True)
            out.write_text(json.dumps(summary, indent=2))
    failed = [n for n, r in summary["steps"].items() if r["status"] == "failed"]
    summary["failed"] = failed
    out.write_text(json.dumps(summary, indent=2))
    print(f"[gpu_first_run] wrote {out}; {len(failed)} failed: {', '.join(failed) or '-'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
