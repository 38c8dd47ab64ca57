"""Generation throughput on the tiny model: engine at batch 1 and 16, and the server under concurrent clients.

    .venv/bin/python bench/generate_throughput.py [--new-tokens 64] [--clients 16] [--requests-per-client 4]

Prints the machine, versions and git commit, then completion tokens per second for:
- the engine at batch 1 and batch 16 (one image per request, greedy),
- `model.batch_chat` (transformers' generate) at batch 16, as a reference,
- the OpenAI-compatible server on loopback with N concurrent clients (official openai client).
"""

from __future__ import annotations

import argparse
import base64
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from PIL import Image

from internvl_chat.infer.engine import ChatTurn, InferenceEngine, SamplingParams
from machine import describe
from internvl_chat.model.presets import build_tiny_model

QUESTIONS = ["what color is the image", "describe the picture", "how many objects are there",
             "what is on the left side of the image and why"]


def _image(i: int) -> Image.Image:
    return Image.new("RGB", (64, 48), ((37 * i) % 256, (91 * i) % 256, 128))


def _never_stop(engine: InferenceEngine) -> None:
    """A random tiny model may emit a stop token any time; for a fixed token count, stop only on length."""
    engine.stop_ids = set()


def bench_engine(engine: InferenceEngine, batch: int, new_tokens: int, rounds: int) -> float:
    requests = [engine.prepare([ChatTurn("user", QUESTIONS[i % 4], [_image(i)])],
                               SamplingParams(max_new_tokens=new_tokens)) for i in range(batch)]
    engine.generate(requests[:1])  # warm-up
    tokens, start = 0, time.perf_counter()
    for _ in range(rounds):
        engine.features = type(engine.features)(engine.features.capacity)  # count the ViT every round
        tokens += sum(r.completion_tokens for r in engine.generate(requests))
    return tokens / (time.perf_counter() - start)


def bench_hf_batch_chat(model, tokenizer, engine: InferenceEngine, batch: int, new_tokens: int) -> float:
    pixel_values = torch.stack([engine.image_tensor(_image(i)) for i in range(batch)])
    questions = [QUESTIONS[i % 4] for i in range(batch)]
    cfg = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    model.batch_chat(tokenizer, pixel_values[:1], questions[:1], cfg)  # warm-up
    start = time.perf_counter()
    model.batch_chat(tokenizer, pixel_values, questions, cfg)
    return batch * new_tokens / (time.perf_counter() - start)


def bench_server(engine: InferenceEngine, clients: int, per_client: int, new_tokens: int) -> tuple[float, float]:
    import openai
    import uvicorn

    from internvl_chat.infer.server import ServerConfig, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(engine, ServerConfig(model_name="tiny", max_batch_size=16, max_wait_ms=10))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)

    def url(i):
        buf = io.BytesIO()
        _image(i).save(buf, "PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    def one_client(c):
        tokens, latencies = 0, []
        for k in range(per_client):
            t0 = time.perf_counter()
            r = client.chat.completions.create(model="tiny", max_tokens=new_tokens, temperature=0, messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url(c * per_client + k)}},
                                             {"type": "text", "text": QUESTIONS[k % 4]}]}])
            latencies.append(time.perf_counter() - t0)
            tokens += r.usage.completion_tokens
        return tokens, latencies

    try:
        one_client(0)  # warm-up
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one_client, range(clients)))
        elapsed = time.perf_counter() - start
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    latencies = sorted(x for _, lat in results for x in lat)
    return sum(t for t, _ in results) / elapsed, latencies[len(latencies) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests-per-client", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the tiny model's ops are too small to split, and on a "
                        "shared machine thread synchronisation costs more than it gains)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())
    model, tokenizer = build_tiny_model(seed=0)
    model = model.to(args.device)
    engine = InferenceEngine(model, tokenizer, max_batch_size=16)
    _never_stop(engine)
    print(f"tiny model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{model.num_image_token} image tokens, {args.new_tokens} new tokens per request")
    b1 = bench_engine(engine, 1, args.new_tokens, args.rounds)
    b16 = bench_engine(engine, 16, args.new_tokens, args.rounds)
    hf16 = bench_hf_batch_chat(model, tokenizer, engine, 16, args.new_tokens)
    print(f"engine batch 1:                 {b1:8.0f} tokens/s")
    print(f"engine batch 16:                {b16:8.0f} tokens/s")
    print(f"model.batch_chat batch 16 (HF): {hf16:8.0f} tokens/s  (reference)")
    srv, p50 = bench_server(engine, args.clients, args.requests_per_client, args.new_tokens)
    print(f"server, {args.clients} concurrent clients:   {srv:8.0f} tokens/s  (median latency {p50 * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
