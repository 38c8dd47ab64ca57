"""`internvl-chat chat | serve | web`: argument parsing only; the work is in chat_cli, server and web."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..runtime import add_dtype_argument, torch_dtype


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint folder (config.json, weights, tokenizer)")
    add_dtype_argument(p, "bf16", "fp16", "fp32", default="auto", auto="as saved")
    p.add_argument("--device", default=None,
                   help="cpu (default), cuda:N, or cuda / auto: split the model over all visible GPUs")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is fastest for tiny models on a busy machine)")


def _load_engine(args, max_batch_size: int = 16):
    import torch

    from .engine import InferenceEngine

    from ..validate import check_device, check_model_dir, check_positive

    check_model_dir(args.model)  # one line for a damaged folder, before any weight is read
    check_device(args.device)
    check_positive(args.threads, "--threads")
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    transformers.utils.logging.set_verbosity_error()  # keep the terminal for the conversation
    transformers.utils.logging.disable_progress_bar()
    dtype = None if args.dtype == "auto" else torch_dtype(args.dtype)
    return InferenceEngine.from_model_dir(args.model, dtype=dtype, device=args.device, max_batch_size=max_batch_size)


def _chat_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="internvl-chat chat", description="Chat with a model in the terminal.")
    _model_args(p)
    p.add_argument("--image", help="image to talk about")
    p.add_argument("--prompt", help="answer this one question, print the answer and exit")
    p.add_argument("--system", default=None, help="system message (default: the template's, 'Answer the questions.')")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (V1.2's documented setting)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    return p


def chat_main(argv: list[str] | None = None) -> int:
    from .chat_cli import ChatSession, interactive, one_shot
    from .engine import SamplingParams
    from ..image import ImageLoadError

    p = _chat_parser()
    args = p.parse_args(argv)
    from ..errors import UserError

    if args.temperature == 0 and (args.top_p != 1.0 or args.seed is not None):
        p.error("--top-p and --seed only apply when sampling (--temperature > 0); greedy decoding ignores them")
    try:
        params = SamplingParams(max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                                seed=args.seed)
    except ValueError as e:
        p.error(str(e))
    if args.image and not Path(args.image).is_file():  # before loading the model
        raise UserError(f"--image {args.image}: " + ("is a folder" if Path(args.image).is_dir() else "no such file"))
    session = ChatSession(_load_engine(args, max_batch_size=1), params, args.system)
    if args.image:
        try:
            session.load_image(args.image)
        except ImageLoadError as e:
            raise UserError(f"--image: {e}") from None
    if args.prompt is not None:
        try:
            return one_shot(session, args.prompt)
        except ValueError as e:
            raise UserError(f"--prompt: {e}") from None
    return interactive(session)


def _server_parser(prog: str, default_port: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="OpenAI-compatible server (POST /v1/chat/completions).")
    _model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=default_port)
    p.add_argument("--model-name", default=None, help="model id clients send (default: the folder's name)")
    p.add_argument("--api-key", default=os.environ.get("INTERNVL_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $INTERNVL_API_KEY; none = open)")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill up")
    p.add_argument("--max-queued", type=int, default=64, help="waiting requests beyond this get HTTP 429")
    p.add_argument("--max-image-bytes", type=int, default=10 * 1024 * 1024)
    p.add_argument("--max-image-pixels", type=int, default=4096 * 4096)
    p.add_argument("--max-images", type=int, default=4, help="images per request")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="default: the model's context length")
    p.add_argument("--max-output-tokens", type=int, default=1024, help="largest max_tokens a client may ask for")
    p.add_argument("--default-max-tokens", type=int, default=None,
                   help="max_tokens when a request gives none (default: 512, at most --max-output-tokens)")
    p.add_argument("--allow-image-url-prefix", action="append", default=[], metavar="PREFIX",
                   help="fetch remote images whose URL starts with PREFIX (repeatable; default: none)")
    p.add_argument("--allow-local-images", action="append", default=[], metavar="DIR",
                   help="read image paths / file:// URLs under DIR (repeatable; default: none)")
    p.add_argument("--log-level", default="info")
    return p


def _serve(args, web: bool) -> int:
    from ..errors import UserError
    from .image_sources import ImagePolicy
    from .server import ServerConfig, create_app, run_server

    from ..validate import check_device, check_model_dir, check_port, check_positive

    check_model_dir(args.model)
    check_device(args.device)
    if not isinstance(logging.getLevelName(args.log_level.upper()), int):
        raise UserError(f"--log-level {args.log_level!r}: use debug, info, warning or error")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # impossible settings are refused here, before the model loads (minutes for a 40B model)
    for name in ("max_batch_size", "max_queued", "max_image_bytes", "max_image_pixels", "max_images",
                 "max_output_tokens", "default_max_tokens", "max_prompt_tokens"):
        check_positive(getattr(args, name), "--" + name.replace("_", "-"))
    if args.max_wait_ms < 0:
        raise UserError(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")
    for d in args.allow_local_images:
        if not Path(d).is_dir():
            raise UserError(f"--allow-local-images {d}: no such folder")
    if args.default_max_tokens is not None and args.default_max_tokens > args.max_output_tokens:
        raise UserError(f"--default-max-tokens {args.default_max_tokens} is above --max-output-tokens "
                        f"{args.max_output_tokens}")
    if web:
        import importlib.util

        if importlib.util.find_spec("nicegui") is None:
            raise UserError("the web page needs NiceGUI: pip install -e '.[web]' (or serve without --web)")
    check_port(args.host, args.port)
    config = ServerConfig(
        model_name=args.model_name or Path(args.model).resolve().name, api_key=args.api_key,
        image=ImagePolicy(max_image_bytes=args.max_image_bytes, max_image_pixels=args.max_image_pixels,
                          allowed_url_prefixes=tuple(args.allow_image_url_prefix),
                          allowed_local_dirs=tuple(Path(d) for d in args.allow_local_images)),
        max_images_per_request=args.max_images, max_prompt_tokens=args.max_prompt_tokens,
        max_output_tokens=args.max_output_tokens,
        default_max_tokens=args.default_max_tokens or min(512, args.max_output_tokens),
        max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queued=args.max_queued, web=web,
    )
    app = create_app(_load_engine(args, args.max_batch_size), config)
    print(f"serving {config.model_name!r} on http://{args.host}:{args.port}"
          + (" (web page at /)" if web else ""), file=sys.stderr, flush=True)
    run_server(app, args.host, args.port, log_level=args.log_level)
    return 0


def serve_main(argv: list[str] | None = None) -> int:
    p = _server_parser("internvl-chat serve", 8000)
    p.add_argument("--web", action="store_true", help="also serve the web chat page at / (extra 'web')")
    args = p.parse_args(argv)
    return _serve(args, web=args.web)


def web_main(argv: list[str] | None = None) -> int:
    args = _server_parser("internvl-chat web", 7860).parse_args(argv)
    return _serve(args, web=True)
