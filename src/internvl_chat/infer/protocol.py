"""The OpenAI Chat Completions wire format: checking requests and building responses.

Requests are checked by hand rather than with pydantic models so that every refusal
names the exact field (`messages[1].content[0].image_url.url`) and says what was wrong,
in OpenAI's error shape `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from .engine import ChatTurn, SamplingParams

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}
MAX_STOP_STRINGS = 4  # as OpenAI
SUPPORTED_ROLES = {"system", "developer", "user", "assistant"}
# Fields that change nothing about the answer: accepted and not used.
IGNORED_FIELDS = {"user", "metadata", "store", "service_tier", "parallel_tool_calls"}
# Fields this server implements (checked below).
HANDLED_FIELDS = {"model", "messages", "n", "max_tokens", "max_completion_tokens", "stop", "temperature", "top_p",
                  "seed", "stream", "stream_options"}
# Fields that would change the answer if honoured: accepted only at their no-op value, refused otherwise,
# so a client never gets an answer made without the option it asked for.
NEUTRAL_VALUES = {"frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0), "logit_bias": ({},),
                  "tools": ([],), "functions": ([],), "tool_choice": ("none",), "response_format": ({"type": "text"},),
                  "logprobs": (False,), "top_logprobs": (0,), "modalities": (["text"],), "reasoning_effort": (),
                  "prediction": (), "audio": (), "web_search_options": (), "function_call": ("none",)}
MESSAGE_FIELDS = {"role", "content", "name"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = ERROR_TYPES.get(status, "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclasses.dataclass
class ChatRequest:
    model: str
    turns: list[ChatTurn]
    system_message: str | None
    params: SamplingParams
    stream: bool
    include_usage: bool
    max_tokens_given: bool = True  # False: the server's default, which may shrink to fit the context


def _bad(message: str, param: str | None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def parse_json_body(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, and numbers too long to convert
        raise APIError(400, f"the request body is not valid JSON ({e})", code="invalid_json") from None
    except RecursionError:
        raise APIError(400, "the request body nests JSON too deeply", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(payload).__name__}",
                       code="invalid_json")
    return payload


def _refuse_unsupported(payload: dict) -> None:
    for name, value in payload.items():
        if name in HANDLED_FIELDS or name in IGNORED_FIELDS or value is None:
            continue
        if name not in NEUTRAL_VALUES:
            raise _bad(f"unrecognized request argument {name!r}", name, "unknown_parameter")
        neutral = NEUTRAL_VALUES[name]
        if not any(type(value) is type(v) and value == v for v in neutral):
            raise _bad(f"{name!r} is not supported by this server"
                       + (f" (only {neutral[0]!r} is accepted)" if neutral else ""), name, "unsupported_parameter")


def _number(payload: dict, name: str, default, lo: float, hi: float, integer: bool = False):
    value = payload.get(name)
    if value is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _bad(f"'{name}' must be {'an integer' if integer else 'a number'}, got {value!r}", name,
                   "invalid_type")
    if not lo <= value <= hi:
        raise _bad(f"'{name}' must be between {lo} and {hi}, got {value!r}", name)
    return value


def _content_parts(content: Any, param: str, load_image: Callable[[str, str], Any]) -> tuple[str, list]:
    """(text, images) of one message's content: a string, or a list of text / image_url parts."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _bad(f"{param} must be a string or a list of content parts", param, "invalid_type")
    texts, images = [], []
    for j, part in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(part, dict) or "type" not in part:
            raise _bad(f"{p} must be an object with a 'type'", p, "invalid_type")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise _bad(f"{p}.text must be a string", f"{p}.text", "invalid_type")
            texts.append(part["text"])
        elif part["type"] == "image_url":
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str):
                raise _bad(f"{p}.image_url.url must be a string", f"{p}.image_url.url", "invalid_type")
            images.append(load_image(url, f"{p}.image_url.url"))
        else:
            raise _bad(f"{p}: unsupported content part type {part['type']!r} (use 'text' or 'image_url')",
                       f"{p}.type")
    return "\n".join(texts), images


def _parse_messages(messages: list, load_image, max_images: int) -> tuple[list[ChatTurn], list[str]]:
    """The conversation turns and the system/developer texts of `messages`, checked."""
    system_parts: list[str] = []
    turns: list[ChatTurn] = []
    image_count = 0
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"{param} must be an object", param, "invalid_type")
        extra = sorted(k for k in msg if k not in MESSAGE_FIELDS and not (k == "refusal" and msg[k] is None))
        if extra:
            raise _bad(f"{param}: unsupported field(s) {', '.join(map(repr, extra))} (tool calls are not supported)",
                       f"{param}.{extra[0]}", "unsupported_parameter")
        role = msg.get("role")
        if not isinstance(role, str) or role not in SUPPORTED_ROLES:
            raise _bad(f"{param}.role must be one of {sorted(SUPPORTED_ROLES)}, got {role!r}", f"{param}.role")
        text, images = _content_parts(msg.get("content"), f"{param}.content", load_image)
        image_count += len(images)
        if image_count > max_images:
            raise _bad(f"{param}: more than {max_images} images in one request", f"{param}.content",
                       "too_many_images")
        if role in ("system", "developer"):
            if images:
                raise _bad(f"{param}: a {role} message cannot contain images", f"{param}.content")
            if turns:
                raise _bad(f"{param}: {role} messages must come before the conversation", f"{param}.role")
            system_parts.append(text)
        elif role == "assistant" and images:
            raise _bad(f"{param}: an assistant message cannot contain images", f"{param}.content")
        else:
            turns.append(ChatTurn(role, text, images))
    if not turns or turns[-1].role != "user":
        raise _bad("the last message must be a user message", f"messages[{len(messages) - 1}].role")
    return turns, system_parts


def _max_tokens(payload: dict, default_max_tokens: int, max_output_tokens: int) -> tuple[int, bool]:
    """(max_tokens, whether the client gave it): max_completion_tokens / max_tokens, checked."""
    max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
    max_tokens_given = max_tokens is not None
    if max_tokens is None:
        max_tokens = min(default_max_tokens, max_output_tokens)
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _bad(f"'max_tokens' must be a positive integer, got {max_tokens!r}", "max_tokens", "invalid_type")
    elif max_tokens > max_output_tokens:
        raise _bad(f"'max_tokens' is {max_tokens}, more than this server's limit of {max_output_tokens} output tokens",
                   "max_tokens", "max_tokens_exceeded")
    return max_tokens, max_tokens_given


def _stop_strings(payload: dict) -> list[str]:
    stop = payload.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > MAX_STOP_STRINGS:
        raise _bad(f"'stop' must be a non-empty string or a list of at most {MAX_STOP_STRINGS} non-empty strings",
                   "stop")
    return stop


def parse_chat_request(payload: dict, load_image: Callable[[str, str], Any], max_images: int,
                       max_output_tokens: int, default_max_tokens: int,
                       default_temperature: float = 0.0) -> ChatRequest:
    """Check a /v1/chat/completions payload; images are loaded through `load_image(url, param)`."""
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a string", "model", "missing_required_parameter")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list", "messages", "missing_required_parameter")
    _number(payload, "n", 1, 1, 1, integer=True)  # only one choice per request
    _refuse_unsupported(payload)

    turns, system_parts = _parse_messages(messages, load_image, max_images)
    max_tokens, max_tokens_given = _max_tokens(payload, default_max_tokens, max_output_tokens)
    stop = _stop_strings(payload)
    params = SamplingParams(
        max_new_tokens=max_tokens,
        temperature=float(_number(payload, "temperature", default_temperature, 0.0, 2.0)),
        top_p=float(_number(payload, "top_p", 1.0, 0.0, 1.0)),
        seed=_number(payload, "seed", None, -(2 ** 63), 2 ** 63 - 1, integer=True),
        stop=tuple(stop),
    )
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(f"'stream' must be true or false, got {stream!r}", "stream", "invalid_type")
    options = payload.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("'stream_options' must be an object", "stream_options", "invalid_type")
    if set(options) - {"include_usage"} or not isinstance(options.get("include_usage", False), bool):
        raise _bad("'stream_options' supports only include_usage (true or false)", "stream_options",
                   "unsupported_parameter")
    return ChatRequest(model=model, turns=turns, system_message="\n".join(system_parts) if system_parts else None,
                       params=params, stream=stream, include_usage=bool(options.get("include_usage", False)),
                       max_tokens_given=max_tokens_given)


# -- responses -----------------------------------------------------------------------------------------
def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(cid: str, model: str, text: str, finish_reason: str, prompt_tokens: int,
                    completion_tokens: int) -> dict:
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": finish_reason}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chunk_body(cid: str, model: str, delta: dict, finish_reason: str | None = None, usage_: dict | None = None,
               choices: bool = True) -> dict:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            if choices else []}
    if usage_ is not None:
        body["usage"] = usage_
    return body


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
