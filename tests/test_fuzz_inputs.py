"""Fuzz-style: hundreds of generated malformed inputs at the server and at `data check`.

Server: every reply to a malformed request is a 4xx in OpenAI's error shape (never a 500),
and the server still answers a good request afterwards. Data check: every record is
either counted good or listed in the rejects file with its line; nothing is lost and no
record stops the check.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import random

import httpx
import pytest
from PIL import Image

from internvl_chat.infer.engine import InferenceEngine
from internvl_chat.infer.server import ServerConfig, create_app
from test_infer_server import LoopbackServer

MODEL = "tiny-internvl"
SEED = 1234


def _png(size=(32, 24), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


PNG_URL = "data:image/png;base64," + base64.b64encode(_png()).decode()
JUNK = [None, True, False, -1, 0, 1, 2.5, -1e30, 1e30, 2 ** 70, -(2 ** 70), "", " ", "x" * 5000, "\u0000", "\ud7ff",
        "<IMG_CONTEXT>", "<|im_end|>", [], {}, [[[]]], {"a": 1}, [None], ["a"], {"type": "text"},
        {"type": "image_url"}, {"url": 1}, "data:image/png;base64,!!!", "data:image/png;base64,",
        "data:text/plain;base64,aGVsbG8=", "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode(),
        "data:image/png;base64," + base64.b64encode(_png((1, 1), "L")).decode(),
        "data:image/png;base64," + base64.b64encode(_png((3000, 1), "RGBA")).decode(),
        "file:///etc/passwd", "/etc/passwd", "http://127.0.0.1:1/x.png", "https://example.com/a.png", "user",
        "assistant", "system", "tool", "image_url", "text", MODEL]


def _valid() -> dict:
    return {"model": MODEL, "max_tokens": 2, "temperature": 0,
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                                      {"type": "image_url", "image_url": {"url": PNG_URL}}]}]}


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _set(root, path, value):
    node = root
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _mutate(rng: random.Random, payload: dict) -> dict:
    p = copy.deepcopy(payload)
    for _ in range(rng.randint(1, 3)):
        paths = [x for x in _paths(p) if x]
        path = rng.choice(paths)
        action = rng.random()
        try:
            if action < 0.6:
                _set(p, path, copy.deepcopy(rng.choice(JUNK)))
            elif action < 0.8:
                parent = p
                for q in path[:-1]:
                    parent = parent[q]
                del parent[path[-1]]
            else:
                parent = p
                for q in path[:-1]:
                    parent = parent[q]
                target = parent[path[-1]]
                if isinstance(target, dict):
                    target[rng.choice(["logit_bias", "tools", "frequency_penalty", "bogus", "n", "tool_calls",
                                       "stream_options", "response_format"])] = copy.deepcopy(rng.choice(JUNK))
                else:
                    p[rng.choice(["bogus_option", "presence_penalty", "logprobs", "top_p", "seed", "stop", "n",
                                  "stream", "max_completion_tokens"])] = copy.deepcopy(rng.choice(JUNK))
        except (KeyError, IndexError, TypeError):
            pass
    return p


RAW_BODIES = [b"", b"{", b"[]", b"null", b'"x"', b"1", b"\xff\xfe\x00", b"{" * 100_000, b"[" * 5000 + b"]" * 5000,
              b'{"model": 1' + b"1" * 6000 + b"}", b'{"max_tokens": ' + b"9" * 5000 + b"}", b'{"a": NaN}',
              b'{"model": "tiny-internvl", "messages": [{"role": "user", "content": "hi"}], "max_tokens": Infinity}',
              json.dumps({"model": MODEL, "messages": "hi"}).encode(), "{\"model\": \"\u00e9\"}".encode("latin-1")]


@pytest.fixture(scope="module")
def fuzz_server():
    from internvl_chat.model.presets import build_tiny_model

    model, tok = build_tiny_model(seed=0)
    config = ServerConfig(model_name=MODEL, max_output_tokens=8, default_max_tokens=2, max_prompt_tokens=200,
                          max_batch_size=8, max_wait_ms=5)
    with LoopbackServer(create_app(InferenceEngine(model, tok), config)) as srv:
        yield srv


def _check_reply(resp: httpx.Response, what) -> None:
    assert resp.status_code < 500, (what, resp.status_code, resp.text[:500])
    if resp.status_code >= 400:
        err = resp.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"], (what, err)


def test_server_survives_hundreds_of_malformed_requests(fuzz_server):
    rng = random.Random(SEED)
    url = fuzz_server.url + "/v1/chat/completions"
    statuses = []
    with httpx.Client(timeout=60) as client:
        for i in range(300):
            payload = _mutate(rng, _valid())
            body = json.dumps(payload, allow_nan=True).encode()
            resp = client.post(url, content=body, headers={"content-type": "application/json"})
            _check_reply(resp, payload)
            statuses.append(resp.status_code)
        for body in RAW_BODIES:
            resp = client.post(url, content=body, headers={"content-type": "application/json"})
            _check_reply(resp, body[:80])
            assert resp.status_code in (400, 413), (body[:80], resp.status_code)
        for method, path in (("GET", "/v1/chat/completions"), ("PUT", "/v1/models"), ("POST", "/health"),
                             ("GET", "/v1/../../etc/passwd"), ("DELETE", "/v1/chat/completions")):
            _check_reply(client.request(method, fuzz_server.url + path), (method, path))
        good = client.post(url, json=_valid())
        assert good.status_code == 200 and good.json()["choices"][0]["message"]["role"] == "assistant"
    assert sum(s >= 400 for s in statuses) > 200  # the mutations are mostly refusals, not lucky passes


def test_unsupported_options_are_refused_not_ignored(fuzz_server):
    url = fuzz_server.url + "/v1/chat/completions"
    cases = {"frequency_penalty": 0.5, "logit_bias": {"12": 5}, "tools": [{"type": "function"}],
             "response_format": {"type": "json_object"}, "logprobs": True, "reasoning_effort": "high",
             "made_up_option": 1, "stream_options": {"include_usage": True, "x": 1}}
    with httpx.Client(timeout=60) as client:
        for name, value in cases.items():
            resp = client.post(url, json={**_valid(), name: value})
            assert resp.status_code == 400, (name, resp.text)
            assert resp.json()["error"]["code"] in ("unsupported_parameter", "unknown_parameter"), name
        resp = client.post(url, json={**_valid(), "frequency_penalty": 0, "user": "me", "logprobs": False})
        assert resp.status_code == 200, resp.text  # the options' no-op values are fine
        msgs = _valid()["messages"]
        msgs[1]["tool_calls"] = []
        resp = client.post(url, json={**_valid(), "messages": msgs})
        assert resp.status_code == 400 and "tool_calls" in resp.json()["error"]["message"]


def _record(i: int) -> dict:
    return {"id": i, "image": "img.png", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                                          {"from": "gpt", "value": "A square."}]}


def test_data_check_keeps_every_malformed_record(tmp_path, capsys):
    from internvl_chat.cli import main as cli_main
    from internvl_chat.data.check import check_meta
    from internvl_chat.model.tokenizer import build_tiny_tokenizer

    Image.new("RGB", (28, 28), (10, 200, 10)).save(tmp_path / "img.png")
    rng = random.Random(SEED)
    lines = []
    for i in range(300):
        kind = rng.random()
        if kind < 0.15:
            lines.append(json.dumps(_record(i)).encode())
        elif kind < 0.25:
            lines.append(rng.choice([b"{", b"[1]", b"\xff\xfe", b"   ", b"null", b'{"id": 1' + b"1" * 6000 + b"}",
                                     b'{"conversations": NaN}', b"\x00\x00", b"[" * 3000]))
        else:
            lines.append(json.dumps(_mutate(rng, _record(i)), allow_nan=True).encode())
    (tmp_path / "ann.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"fuzz": {"root": ".", "annotation": "ann.jsonl"}}))
    rejects = tmp_path / "rejects.jsonl"
    rc = cli_main(["data", "check", str(meta), "--rejects", str(rejects), "--no-progress", "--num-image-token", "4",
                   "--max-length", "256"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    rejected = [json.loads(x) for x in rejects.read_text().splitlines()]
    report = check_meta(meta, build_tiny_tokenizer(), num_image_token=4, max_length=256, progress=False)
    lines_rejected = [r["line"] for r in rejected]
    assert len(set(lines_rejected)) == len(lines_rejected)  # each record once
    assert report.datasets[0].lines == 300 and report.datasets[0].ok + len(rejected) == 300  # nothing lost
    assert all(r["reason"] for r in rejected)
    good = {i + 1 for i, raw in enumerate(lines) if raw == json.dumps(_record(i)).encode()}
    assert good and not good & set(lines_rejected)  # valid records are never rejected
