"""The real server (uvicorn on loopback) driven by the official `openai` client and raw HTTP."""

import base64
import http.server
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import uvicorn
from PIL import Image

from internvl_chat.infer.engine import InferenceEngine
from internvl_chat.infer.image_sources import ImagePolicy
from internvl_chat.infer.server import ServerConfig, create_app
from internvl_chat.model.presets import build_tiny_model

MODEL = "tiny-internvl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackServer:
    """uvicorn in a thread on 127.0.0.1, stopped at teardown."""

    def __init__(self, app):
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("api_key", "unused")
        return openai.OpenAI(base_url=self.url + "/v1", max_retries=0, timeout=60, **kwargs)


def _png(color=(200, 30, 30), size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _data_url(data: bytes, mime="image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _messages(url: str, text: str = "What color is this image?") -> list:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny_model(seed=0)
    return model, tok


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    allowed_dir = tmp_path_factory.mktemp("allowed")
    (allowed_dir / "blue.png").write_bytes(_png((0, 0, 255)))
    config = ServerConfig(model_name=MODEL, max_output_tokens=64, default_max_tokens=16, max_prompt_tokens=60,
                          image=ImagePolicy(max_image_bytes=20_000, max_image_pixels=300 * 300,
                                            allowed_local_dirs=(allowed_dir,)),
                          max_batch_size=16, max_wait_ms=20)
    with LoopbackServer(create_app(InferenceEngine(*tiny), config)) as srv:
        srv.allowed_dir = allowed_dir
        yield srv


def _expected(tiny, text: str, color=(200, 30, 30), max_tokens=12) -> str:
    """What the model says alone, via its own `chat()`: the server must give the same greedy answer."""
    model, tok = tiny
    engine = InferenceEngine(model, tok)
    pv = engine.image_tensor(Image.open(io.BytesIO(_png(color))).convert("RGB")).unsqueeze(0)
    return model.chat(tok, pv, text, dict(max_new_tokens=max_tokens, do_sample=False))


def _assert_answers_correctly(server, tiny):
    reply = server.client().chat.completions.create(model=MODEL, messages=_messages(_data_url(_png())),
                                                    max_tokens=12, temperature=0)
    assert reply.choices[0].message.content.strip() == _expected(tiny, "What color is this image?")


def test_plain_reply_about_an_image(server, tiny):
    client = server.client()
    reply = client.chat.completions.create(model=MODEL, messages=_messages(_data_url(_png())), max_tokens=12,
                                           temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip() == _expected(tiny, "What color is this image?")
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 4 and reply.usage.completion_tokens <= 12
    assert reply.model == MODEL and reply.id.startswith("chatcmpl-")
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_streamed_reply_about_an_image(server, tiny):
    client = server.client()
    stream = client.chat.completions.create(model=MODEL, messages=_messages(_data_url(_png())), max_tokens=12,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert len(pieces) > 2  # really streamed, not one blob
    assert "".join(pieces).strip() == _expected(tiny, "What color is this image?")
    assert finish in ("stop", "length") and usage.completion_tokens <= 12


def test_32_concurrent_requests_all_answered_and_batched(server, tiny):
    client = server.client()
    colors = [(8 * i, 255 - 8 * i, 100) for i in range(32)]
    before = httpx.get(server.url + "/health").json()["batches_run"]

    def ask(i):
        r = client.chat.completions.create(model=MODEL, messages=_messages(_data_url(_png(colors[i]))),
                                           max_tokens=6, temperature=0)
        return r.choices[0].message.content

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, range(32)))
    health = httpx.get(server.url + "/health").json()
    assert health["batches_run"] - before < 32 and health["largest_batch"] > 1  # requests shared batches
    for i in (0, 17, 31):  # batched greedy answers equal the model answering alone
        assert answers[i].strip() == _expected(tiny, "What color is this image?", colors[i], max_tokens=6)


def _post_raw(server, body: bytes, headers=None) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", content=body,
                      headers={"content-type": "application/json", **(headers or {})}, timeout=30)


def test_malformed_json_gets_400(server, tiny):
    resp = _post_raw(server, b'{"model": "tiny-internvl", "messages": [')
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "invalid_json" and "not valid JSON" in err["message"]
    _assert_answers_correctly(server, tiny)


@pytest.mark.parametrize("url, code, words", [
    (_data_url(b"this is plain text, not a picture"), "invalid_image", "not a usable image"),
    (_data_url(b"%PDF-1.4 not an image", mime="application/pdf"), "invalid_image", "not an image type"),
    ("data:image/png;base64,@@@not-base64@@@", "invalid_image", "not valid base64"),
])
def test_non_image_payload_gets_400(server, tiny, url, code, words):
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(model=MODEL, messages=_messages(url), max_tokens=4)
    assert info.value.status_code == 400
    err = info.value.body
    assert err["code"] == code and words in err["message"]
    assert err["param"] == "messages[0].content[1].image_url.url"
    _assert_answers_correctly(server, tiny)


def test_oversized_image_gets_400(server, tiny):
    noisy = io.BytesIO()  # random pixels do not compress: > 20 kB limit
    Image.frombytes("RGB", (120, 120), bytes(range(256)) * 168 + bytes(192)).save(noisy, "BMP")
    big_pixels = _png(size=(400, 400))  # small file, but 160k pixels > 90k
    client = server.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=_messages(_data_url(noisy.getvalue(), "image/bmp")))
    assert info.value.body["code"] == "image_too_large" and "limit of 20000 bytes" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=_messages(_data_url(big_pixels)))
    assert info.value.body["code"] == "image_too_large" and "400x400 exceeds the limit of 90000 pixels" in \
        info.value.body["message"]
    _assert_answers_correctly(server, tiny)


def test_too_many_tokens_gets_400(server, tiny):
    client = server.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=_messages(_data_url(_png())), max_tokens=65)
    assert info.value.body["code"] == "max_tokens_exceeded"
    assert "limit of 64 output tokens" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=_messages(_data_url(_png()), "count " * 80))
    assert info.value.body["code"] == "context_length_exceeded"
    assert "at most 60 prompt tokens" in info.value.body["message"]
    _assert_answers_correctly(server, tiny)


def test_remote_url_and_local_path_refused_unless_allow_listed(server, tiny):
    client = server.client()
    for url in ("https://example.com/cat.png", "http://127.0.0.1:9/cat.png"):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=MODEL, messages=_messages(url))
        assert info.value.body["code"] == "image_url_not_allowed"
        assert "remote image URLs are refused" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=_messages("/etc/passwd"))
    assert info.value.body["code"] == "image_url_not_allowed" and "local image paths are refused" in \
        info.value.body["message"]
    # a path inside the allow-listed folder works
    reply = client.chat.completions.create(model=MODEL, messages=_messages(str(server.allowed_dir / "blue.png")),
                                           max_tokens=12, temperature=0)
    assert reply.choices[0].message.content.strip() == _expected(tiny, "What color is this image?", (0, 0, 255))
    _assert_answers_correctly(server, tiny)


def test_allow_listed_remote_prefix_is_fetched(tiny, tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "red.png").write_bytes(_png())
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    prefix = f"http://127.0.0.1:{files.server_address[1]}/"
    try:
        config = ServerConfig(model_name=MODEL, image=ImagePolicy(allowed_url_prefixes=(prefix,)))
        with LoopbackServer(create_app(InferenceEngine(*tiny), config)) as srv:
            reply = srv.client().chat.completions.create(model=MODEL, messages=_messages(prefix + "red.png"),
                                                         max_tokens=12, temperature=0)
            assert reply.choices[0].message.content.strip() == _expected(tiny, "What color is this image?")
            with pytest.raises(openai.BadRequestError) as info:
                srv.client().chat.completions.create(model=MODEL, messages=_messages(prefix + "missing.png"))
            assert "HTTP 404" in info.value.body["message"]
    finally:
        files.shutdown()


def test_other_bad_requests_are_4xx_with_the_field_named(server, tiny):
    client = server.client()
    cases = [
        (dict(model="gpt-4o", messages=_messages(_data_url(_png()))), openai.NotFoundError, "model_not_found"),
        (dict(model=MODEL, messages=[]), openai.BadRequestError, "missing_required_parameter"),
        (dict(model=MODEL, messages=[{"role": "tool", "content": "x"}]), openai.BadRequestError, "invalid_value"),
        (dict(model=MODEL, messages=_messages(_data_url(_png())), temperature=5), openai.BadRequestError,
         "invalid_value"),
        (dict(model=MODEL, messages=[{"role": "user", "content": "hi <IMG_CONTEXT>"}]), openai.BadRequestError,
         "invalid_value"),
    ]
    for kwargs, error, code in cases:
        with pytest.raises(error) as info:
            client.chat.completions.create(**kwargs)
        assert info.value.body["code"] == code, kwargs
    resp = _post_raw(server, b"[1, 2]")
    assert resp.status_code == 400 and "must be a JSON object" in resp.json()["error"]["message"]
    assert httpx.get(server.url + "/v1/nothing").status_code == 404
    _assert_answers_correctly(server, tiny)


def test_text_only_multi_turn_with_system_and_stop(server, tiny):
    model, tok = tiny
    messages = [{"role": "system", "content": "Answer the questions."},
                {"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
                {"role": "user", "content": "what is the capital of france"}]
    client = server.client()
    full = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0)
    text = full.choices[0].message.content
    expected = model.chat(tok, None, "what is the capital of france", dict(max_new_tokens=12, do_sample=False),
                          history=[("hello", "hi")])
    assert text.strip() == expected
    stop = text[4:7]
    cut = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[:text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_api_key_and_queue_limit(tiny):
    config = ServerConfig(model_name=MODEL, api_key="s3cret", max_queued=1, max_batch_size=1, max_wait_ms=0)
    with LoopbackServer(create_app(InferenceEngine(*tiny), config)) as srv:
        with pytest.raises(openai.AuthenticationError) as info:
            srv.client(api_key="wrong").models.list()
        assert info.value.body["code"] == "invalid_api_key"
        client = srv.client(api_key="s3cret")
        assert [m.id for m in client.models.list().data] == [MODEL]

        def ask(_):
            try:
                client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count"}],
                                               max_tokens=200, temperature=0)
                return "ok"
            except openai.RateLimitError as e:
                assert e.body["code"] == "queue_full" and "busy" in e.body["message"]
                return "busy"

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(ask, range(8)))
        assert "busy" in outcomes and "ok" in outcomes
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=3)
        assert reply.choices[0].message.content is not None


def test_a_bad_request_does_not_fail_its_batch(tiny):
    import asyncio

    from internvl_chat.infer.batcher import RequestBatcher
    from internvl_chat.infer.engine import ChatTurn, GenerationRequest, SamplingParams

    engine = InferenceEngine(*tiny)
    good = [engine.prepare([ChatTurn("user", q)], SamplingParams(max_new_tokens=4)) for q in ("hi", "count to ten")]
    bad = GenerationRequest(good[0].input_ids, None, SamplingParams(max_new_tokens=5000))  # beyond the context

    async def run():
        batcher = RequestBatcher(engine, max_batch_size=8, max_wait_ms=50)
        await batcher.start()
        try:
            futures = [batcher.submit(r) for r in (good[0], bad, good[1])]
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await batcher.stop()

    first, failed, second = asyncio.run(run())
    assert isinstance(failed, ValueError) and "exceeds the model context" in str(failed)
    assert first.token_ids == engine.generate([good[0]])[0].token_ids
    assert second.token_ids == engine.generate([good[1]])[0].token_ids
