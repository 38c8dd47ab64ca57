"""An OpenAI-compatible HTTP server: POST /v1/chat/completions (plain and SSE streaming), GET /v1/models, GET /health.

Every refusal is a 4xx JSON body in OpenAI's error shape; nothing a client sends can stop
the server. Concurrent requests are batched by `RequestBatcher`; image decoding and
tokenization run in the thread pool so the event loop keeps streaming meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batcher import QueueFullError, RequestBatcher
from .engine import GenerationRequest, InferenceEngine
from .image_sources import ImagePolicy, resolve_image_url
from .protocol import (APIError, ChatRequest, chunk_body, completion_body, new_completion_id, parse_chat_request,
                       parse_json_body, sse, usage)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServerConfig:
    model_name: str = "internvl-chat"
    api_key: str | None = None  # when set, /v1/* needs "Authorization: Bearer <key>"
    max_body_bytes: int = 32 * 1024 * 1024
    image: ImagePolicy = dataclasses.field(default_factory=ImagePolicy)
    max_images_per_request: int = 4
    max_prompt_tokens: int | None = None  # None: the model's context length
    max_output_tokens: int = 1024
    default_max_tokens: int = 512
    default_temperature: float = 0.0  # V1.2's documented setting is greedy decoding
    max_batch_size: int = 16
    max_wait_ms: float = 10.0
    max_queued: int = 64
    web: bool = False  # mount the web chat page at /


class ChatService:
    """What the HTTP routes and the web page share: the engine, the batcher and the limits."""

    def __init__(self, engine: InferenceEngine, config: ServerConfig):
        self.engine, self.config = engine, config
        self.batcher = RequestBatcher(engine, config.max_batch_size, config.max_wait_ms, config.max_queued)
        context = engine.max_context
        self.max_prompt_tokens = min(config.max_prompt_tokens or context, context)
        # no token is longer than this, so more characters than limit x this is over the limit for sure:
        # refuse such text before spending time tokenizing it
        self.max_token_chars = max(len(t) for t in engine.tokenizer.get_vocab())

    def prepare(self, payload: dict) -> tuple[ChatRequest, GenerationRequest]:
        """Check a request and turn it into engine input (blocking: decodes images, tokenizes)."""
        chat = parse_chat_request(
            payload, lambda url, param: resolve_image_url(url, param, self.config.image),
            max_images=self.config.max_images_per_request, max_output_tokens=self.config.max_output_tokens,
            default_max_tokens=self.config.default_max_tokens, default_temperature=self.config.default_temperature)
        if chat.model != self.config.model_name:
            raise APIError(404, f"model {chat.model!r} does not exist; this server serves {self.config.model_name!r}",
                           param="model", code="model_not_found")
        n_chars = sum(len(t.text) for t in chat.turns) + len(chat.system_message or "")
        if n_chars > self.max_prompt_tokens * self.max_token_chars:
            raise APIError(400, f"the messages have {n_chars} characters, far more than this server's limit of "
                                f"{self.max_prompt_tokens} prompt tokens", param="messages",
                           code="context_length_exceeded")
        try:
            gen = self.engine.prepare(chat.turns, chat.params, chat.system_message)
        except ValueError as e:
            raise APIError(400, str(e), param="messages", code="invalid_value") from None
        n_prompt, n_images = len(gen.input_ids), sum(len(t.images) for t in chat.turns)
        if n_prompt > self.max_prompt_tokens:
            raise APIError(400, f"the prompt is {n_prompt} tokens ({n_images} images x "
                                f"{self.engine.model.num_image_token} tokens included); this server accepts at most "
                                f"{self.max_prompt_tokens} prompt tokens", param="messages",
                           code="context_length_exceeded")
        room = self.engine.max_context - n_prompt
        if not chat.max_tokens_given and gen.params.max_new_tokens > room >= 1:
            gen.params = dataclasses.replace(gen.params, max_new_tokens=room)
        if n_prompt + gen.params.max_new_tokens > self.engine.max_context:
            raise APIError(400, f"the prompt ({n_prompt} tokens) plus max_tokens ({gen.params.max_new_tokens}) "
                                f"exceeds the model's context of {self.engine.max_context} tokens", param="max_tokens",
                           code="context_length_exceeded")
        return chat, gen

    def submit(self, request: GenerationRequest) -> asyncio.Future:
        """Queue a request (429 when the queue is full); setting `request.cancelled` frees its batch row."""
        request.cancelled = threading.Event()
        try:
            return self.batcher.submit(request)
        except QueueFullError as e:
            raise APIError(429, f"the server is busy: {e}", code="queue_full") from None

    def submit_streaming(self, request: GenerationRequest) -> tuple[asyncio.Future, AsyncIterator[str]]:
        """`submit`, and the reply's pieces of text as they decode (the iterator ends when the future is done)."""
        loop, pieces, end = asyncio.get_running_loop(), asyncio.Queue(), object()
        request.on_text = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)
        future = self.submit(request)
        # the result is set after every on_text call was scheduled on the loop, so `end` arrives last
        future.add_done_callback(lambda _: pieces.put_nowait(end))

        async def stream():
            while (piece := await pieces.get()) is not end:
                yield piece
        return future, stream()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"the request body is {declared} bytes, more than the limit of {limit} bytes",
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"the request body is more than the limit of {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_auth(request: Request, api_key: str | None) -> None:
    if not api_key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise APIError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")


def _finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def create_app(engine_or_model_dir, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app for an InferenceEngine, or for a model folder (loaded here)."""
    config = config or ServerConfig()
    engine = engine_or_model_dir
    if isinstance(engine, (str, Path)):
        engine = InferenceEngine.from_model_dir(engine, max_batch_size=config.max_batch_size)
    service = ChatService(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.batcher.start()
        try:
            yield
        finally:
            await service.batcher.stop()

    app = FastAPI(title="internvl-chat", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        err = APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                       code="not_found" if exc.status_code == 404 else None)
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception):
        log.exception("internal error")
        err = APIError(500, f"internal server error ({type(exc).__name__}: {exc})", code="internal_error")
        return JSONResponse(err.body(), status_code=500)

    @app.get("/health")
    async def health():
        b = service.batcher
        return {"status": "ok", "model": config.model_name, "queued": b.queued, "batches_run": b.batches_run,
                "largest_batch": b.largest_batch}

    @app.get("/v1/models")
    async def models(request: Request):
        _check_auth(request, config.api_key)
        return {"object": "list", "data": [{"id": config.model_name, "object": "model", "created": 0,
                                            "owned_by": "internvl-chat"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        _check_auth(request, config.api_key)
        payload = parse_json_body(await _read_body(request, config.max_body_bytes))
        chat, gen = await run_in_threadpool(service.prepare, payload)
        cid = new_completion_id()
        if chat.stream:
            future, pieces = service.submit_streaming(gen)  # queue full -> 429 before any byte of the stream
            return StreamingResponse(_stream(config.model_name, chat, gen, future, pieces, cid),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            result = await service.submit(gen)
        finally:
            gen.cancelled.set()  # no effect once finished; frees the batch row if the client went away
        return completion_body(cid, config.model_name, result.text, _finish_reason(result.finish_reason),
                               result.prompt_tokens, result.completion_tokens)

    if config.web:
        from .web import mount_web_ui

        mount_web_ui(app, service)
    return app


async def _stream(model: str, chat: ChatRequest, gen: GenerationRequest, future: asyncio.Future,
                  pieces: AsyncIterator[str], cid: str):
    try:
        yield sse(chunk_body(cid, model, {"role": "assistant", "content": ""}))
        async for piece in pieces:
            yield sse(chunk_body(cid, model, {"content": piece}))
        result = future.result()
        yield sse(chunk_body(cid, model, {}, _finish_reason(result.finish_reason)))
        if chat.include_usage:
            yield sse(chunk_body(cid, model, {}, usage_=usage(result.prompt_tokens, result.completion_tokens),
                                 choices=False))
    except Exception as e:  # the status line is already sent: report the failure as an event
        log.exception("generation failed while streaming")
        yield sse(APIError(500, f"generation failed ({type(e).__name__}: {e})", code="internal_error").body())
    finally:
        gen.cancelled.set()  # a client that went away frees its batch row at the next token
    yield sse("[DONE]")


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the server is reachable from other machines", host)
    started = time.time()
    uvicorn.run(app, host=host, port=port, log_level=log_level)
    log.info("server ran for %.0f s", time.time() - started)
