"""Batched generation for InternVL-Chat: left-padded batches, a KV cache, per-request sampling and streaming.

The loop is written out (rather than calling `generate()`) because a server batch mixes
requests with different temperatures, top_p, seeds, stop strings, token budgets and
stream callbacks, and each row must be able to finish or be cancelled on its own.
Under greedy decoding a row's tokens are the same as when it runs alone: left padding
plus position ids counted from each row's first real token make every row see exactly
the sequence it would see unpadded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from ..constants import IMAGE_PLACEHOLDER, IMG_CONTEXT_TOKEN, image_block
from ..conversation import encode_prompt, get_conv_template, left_pad, render_prompt
from ..image import image_to_tensor

RESERVED_TEXT = (IMAGE_PLACEHOLDER, "<img>", "</img>", IMG_CONTEXT_TOKEN)


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How one request decodes. temperature 0 means greedy (top_p and seed are then unused)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0  # 0 keeps only the most likely token
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 <= self.top_p <= 1:
            raise ValueError(f"top_p must be in [0, 1], got {self.top_p}")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")


@dataclasses.dataclass
class ChatTurn:
    """One message of a conversation; a user turn's images are shown before its text, as V1.2 was trained."""

    role: str  # 'system' | 'user' | 'assistant'
    text: str
    images: list = dataclasses.field(default_factory=list)  # PIL images (or, for prompts only, tensors)


@dataclasses.dataclass
class GenerationRequest:
    input_ids: list[int]
    pixel_values: torch.Tensor | None = None  # (n_images, 3, H, W) in the order of the image blocks
    params: SamplingParams = dataclasses.field(default_factory=SamplingParams)
    on_text: Callable[[str], None] | None = None  # called with each new piece of text (from the engine's thread)
    cancelled: threading.Event | None = None  # set it to stop this row early (client went away)


@dataclasses.dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    finish_reason: str  # 'stop' | 'length' | 'cancelled'
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


class _FeatureCache:
    """Vision features keyed by the image tensor's bytes, so a repeated image (a multi-turn chat
    re-sending it, or many clients asking about one picture) goes through the ViT once."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()

    @staticmethod
    def key(image: torch.Tensor) -> str:
        t = image.detach().to("cpu").contiguous()
        return hashlib.sha1(t.numpy().tobytes() + str(tuple(t.shape)).encode()).hexdigest()

    def get(self, key: str) -> torch.Tensor | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: str, value: torch.Tensor) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class _Row:
    """Decoding state of one request inside a batch: its tokens, text, stop checks and streaming."""

    def __init__(self, req: GenerationRequest, tokenizer, stop_ids: set[int], seed_fallback: int, device):
        self.req, self.tokenizer, self.stop_ids = req, tokenizer, stop_ids
        self.tokens: list[int] = []
        self.text = ""
        self.emitted = 0
        self.finish_reason: str | None = None
        seed = req.params.seed if req.params.seed is not None else seed_fallback
        self.generator = torch.Generator(device=device).manual_seed(seed) if req.params.temperature > 0 else None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> None:
        if self.req.cancelled is not None and self.req.cancelled.is_set():
            self._finish("cancelled")
            return
        if token in self.stop_ids:
            self._finish("stop")
            return
        self.tokens.append(token)
        # a trailing U+FFFD is an unfinished multi-byte character: wait for its next byte
        self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True).rstrip("\ufffd")
        for s in self.req.params.stop:
            idx = self.text.find(s, max(0, self.emitted - len(s)))
            if idx != -1:
                self.text = self.text[:idx]
                self._finish("stop")
                return
        if len(self.tokens) >= self.req.params.max_new_tokens:
            self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
            self._finish("length")
            return
        self._emit(self._safe_length())

    def _safe_length(self) -> int:
        """Hold back a tail that could still become a stop string, so streamed text never shows one."""
        held = 0
        for s in self.req.params.stop:
            for k in range(min(len(s) - 1, len(self.text)), 0, -1):
                if self.text.endswith(s[:k]):
                    held = max(held, k)
                    break
        return len(self.text) - held

    def _emit(self, upto: int) -> None:
        if upto > self.emitted and self.req.on_text is not None:
            self.req.on_text(self.text[self.emitted:upto])
        self.emitted = max(self.emitted, upto)

    def _finish(self, reason: str) -> None:
        self.finish_reason = reason
        self._emit(len(self.text))


def _choose_tokens(logits: torch.Tensor, rows: Sequence[_Row]) -> list[int]:
    """Greedy rows take the argmax; sampling rows draw from temperature/top-p-filtered probabilities."""
    chosen = logits.argmax(dim=-1).tolist()
    for i, row in enumerate(rows):
        p = row.req.params
        if row.done or p.temperature <= 0:
            continue
        probs = torch.softmax(logits[i].float() / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            # keep the smallest prefix whose mass reaches top_p (always at least the top token)
            outside = sorted_probs.cumsum(0) - sorted_probs >= p.top_p
            outside[0] = False
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        chosen[i] = int(torch.multinomial(probs, 1, generator=row.generator).item())
    return chosen


class InferenceEngine:
    """Owns a model + tokenizer; turns chat turns into prompts and generates for batches of requests."""

    def __init__(self, model, tokenizer, max_batch_size: int = 16, feature_cache_size: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.template_name = model.template
        self.image_size = model.image_size
        self.pad2square = bool(getattr(model.config, "pad2square", False))
        self.img_context_token_id = model.bind_tokenizer(tokenizer)
        self.stop_ids = set(get_conv_template(self.template_name).stop_token_ids_for(tokenizer))
        if tokenizer.eos_token_id is not None:
            self.stop_ids.add(tokenizer.eos_token_id)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.max_context = int(model.config.llm_config.max_position_embeddings)
        self.features = _FeatureCache(feature_cache_size)
        self.vit_images_encoded = 0  # how many images went through the ViT (not served from the cache)
        self._seed_counter = 0

    @classmethod
    def from_model_dir(cls, path, dtype: torch.dtype | None = None, device: str | None = None, **kwargs):
        from ..model.loading import load_model_and_tokenizer

        return cls(*load_model_and_tokenizer(Path(path), dtype, device), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -- prompts ---------------------------------------------------------------------------------------
    def build_prompt(self, turns: Sequence[ChatTurn], system_message: str | None = None) -> str:
        """The V1.2 prompt for a conversation ending with a user turn; image blocks are expanded."""
        if not turns or turns[-1].role != "user":
            raise ValueError("the conversation must end with a user message")
        default_system = getattr(self.model.config, "system_message", None) or \
            get_conv_template(self.template_name).system_message
        rendered_turns = []
        for turn in turns:
            for reserved in RESERVED_TEXT:
                if reserved in turn.text:
                    raise ValueError(f"{turn.role} message text contains the reserved marker {reserved!r}")
            if turn.role == "user":
                rendered_turns.append(("user", (IMAGE_PLACEHOLDER + "\n") * len(turn.images) + turn.text))
            elif turn.role == "assistant":
                if turn.images:
                    raise ValueError("assistant messages cannot carry images")
                rendered_turns.append(("assistant", turn.text))
            else:
                raise ValueError(f"unknown role {turn.role!r} (system messages go in system_message)")
        return render_prompt(rendered_turns, self.template_name,
                             system_message if system_message is not None else default_system,
                             image_blocks=image_block(self.model.num_image_token), add_generation_prompt=True).text

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    def image_tensor(self, image: Image.Image) -> torch.Tensor:
        return image_to_tensor(image, size=self.image_size, pad2square=self.pad2square)

    def prepare(self, turns: Sequence[ChatTurn], params: SamplingParams | None = None,
                system_message: str | None = None, **kwargs) -> GenerationRequest:
        ids = self.encode(self.build_prompt(turns, system_message))
        return GenerationRequest(input_ids=ids, pixel_values=self.pixel_values(turns), params=params or SamplingParams(),
                                 **kwargs)

    def pixel_values(self, turns: Sequence[ChatTurn]) -> torch.Tensor | None:
        """(n_images, 3, H, W): every image of the turns, in order, preprocessed for the model; None if none."""
        images = [img for t in turns for img in t.images]
        return torch.stack([self.image_tensor(im) for im in images]) if images else None

    # -- vision ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _image_features(self, requests: Sequence[GenerationRequest]) -> torch.Tensor | None:
        """Features for every image of the batch, in order; each distinct image is encoded once."""
        keys, todo = [], {}
        for req in requests:
            for image in (req.pixel_values if req.pixel_values is not None else []):
                key = _FeatureCache.key(image)
                keys.append(key)
                if self.features.get(key) is None and key not in todo:
                    todo[key] = image
        if not keys:
            return None
        if todo:
            vit_dtype = next(self.model.vision_model.parameters()).dtype
            batch = torch.stack(list(todo.values())).to(self.device, vit_dtype)
            feats = self.model.extract_feature(batch)
            self.vit_images_encoded += len(todo)
            for key, f in zip(todo, feats):
                self.features.put(key, f)
        return torch.stack([self.features.get(k) for k in keys])

    # -- decoding --------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult] = []
        for start in range(0, len(requests), self.max_batch_size):
            results += self._generate_batch(requests[start:start + self.max_batch_size])
        return results

    def _check(self, req: GenerationRequest, index: int) -> None:
        n_ctx = sum(1 for t in req.input_ids if t == self.img_context_token_id)
        n_img = 0 if req.pixel_values is None else len(req.pixel_values)
        if n_ctx != n_img * self.model.num_image_token:
            raise ValueError(f"request {index}: {n_ctx} {IMG_CONTEXT_TOKEN} tokens but {n_img} images "
                             f"x {self.model.num_image_token} tokens each")
        if len(req.input_ids) + req.params.max_new_tokens > self.max_context:
            raise ValueError(f"request {index}: prompt ({len(req.input_ids)} tokens) + max_new_tokens "
                             f"({req.params.max_new_tokens}) exceeds the model context of {self.max_context}")

    @torch.no_grad()
    def _generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        for i, req in enumerate(requests):
            self._check(req, i)
        device, lm = self.device, self.model.language_model
        # left padding: every row's last prompt token is at the same column
        ids, mask = (torch.tensor(t, device=device) for t in left_pad([r.input_ids for r in requests], self.tokenizer))
        embeds, _ = self.model.embed_inputs(ids, visual_features=self._image_features(requests))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        rows = []
        for r in requests:
            self._seed_counter += 1
            rows.append(_Row(r, self.tokenizer, self.stop_ids, torch.initial_seed() + self._seed_counter, device))
        out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        step_positions = positions[:, -1:]
        while True:
            chosen = _choose_tokens(out.logits[:, -1, :], rows)
            for row, token in zip(rows, chosen):
                if not row.done:
                    row.push(token)
            if all(row.done for row in rows):
                break
            feed = torch.tensor([[t if not row.done else self.pad_id] for row, t in zip(rows, chosen)], device=device)
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=device)], dim=1)
            step_positions = step_positions + 1
            out = lm(input_ids=feed, attention_mask=mask, position_ids=step_positions, cache=out.cache,
                     use_cache=True)
        return [GenerationResult(text=row.text, token_ids=row.tokens, finish_reason=row.finish_reason,
                                 prompt_tokens=len(row.req.input_ids)) for row in rows]


def generate_batch(model, tokenizer, questions: Sequence[str], pixel_values_list=None, max_new_tokens: int = 64,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                   max_batch_size: int = 16, system_message: str | None = None) -> list[str]:
    """Answers to independent single-turn questions, like `model.batch_chat` but with the engine's loop.

    `pixel_values_list[i]` is None (text only) or an (n, 3, H, W) tensor of question i's images.
    Answers are stripped, as `chat()` strips them.
    """
    engine = InferenceEngine(model, tokenizer, max_batch_size=max_batch_size)
    pixel_values_list = list(pixel_values_list) if pixel_values_list is not None else [None] * len(questions)
    if len(pixel_values_list) != len(questions):
        raise ValueError(f"{len(questions)} questions but {len(pixel_values_list)} pixel_values entries")
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature if do_sample else 0.0,
                            top_p=top_p, seed=seed)
    requests = []
    for q, pv in zip(questions, pixel_values_list):
        images = [] if pv is None else list(pv)
        if images:
            q = q.removeprefix(IMAGE_PLACEHOLDER + "\n")  # batch_chat's own prefix; build_prompt adds it back
        prompt = engine.build_prompt([ChatTurn("user", q, images)], system_message)
        requests.append(GenerationRequest(engine.encode(prompt), pv, params))
    return [r.text.strip() for r in engine.generate(requests)]
