"""Chat templates that render prompts exactly as InternVL-Chat-V1.2 saw them.

Only the separator styles that InternVL's released models use are implemented.
`Hermes-2` is the V1.2 template: ChatML-like, but with *no* newline after
`<|im_end|>` and the system message "Answer the questions." (the Feb-2024
value; later InternVL releases changed it, which shifts benchmark numbers).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from enum import Enum

from .constants import IMAGE_PLACEHOLDER

_ROLE_INDEX = {"human": 0, "user": 0, "gpt": 1, "assistant": 1}


class SeparatorStyle(Enum):
    MPT = "mpt"  # system + sep, then role + message + sep per turn (Hermes-2, internlm2-chat)
    ADD_COLON_TWO = "add_colon_two"  # "ROLE: message" with alternating separators (vicuna)
    CHATML = "chatml"  # standard ChatML: a newline after every <|im_end|>


@dataclasses.dataclass
class Conversation:
    name: str
    system_template: str = "{system_message}"
    system_message: str = ""
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    messages: list[list] = dataclasses.field(default_factory=list)
    sep_style: SeparatorStyle = SeparatorStyle.MPT
    sep: str = "\n"
    sep2: str | None = None
    stop_str: str | None = None
    # Token ids of the *original* tokenizer (Yi for Hermes-2); tokenizers built
    # here map stop strings through `stop_token_ids_for(tokenizer)` instead.
    stop_token_ids: tuple[int, ...] = ()

    def append_message(self, role: str, message: str | None) -> None:
        """Add a turn; `message=None` leaves the slot the model should fill."""
        self.messages.append([role, message])

    def set_system_message(self, system_message: str) -> None:
        self.system_message = system_message

    def get_prompt(self) -> str:
        system = self.system_template.format(system_message=self.system_message)
        if self.sep_style is SeparatorStyle.MPT:
            out = system + self.sep
            for role, message in self.messages:
                out += role + message + self.sep if message else role
            return out
        if self.sep_style is SeparatorStyle.ADD_COLON_TWO:
            seps = (self.sep, self.sep2)
            out = system + seps[0]
            for i, (role, message) in enumerate(self.messages):
                out += f"{role}: {message}{seps[i % 2]}" if message else f"{role}:"
            return out
        if self.sep_style is SeparatorStyle.CHATML:
            out = "" if not system else system + self.sep + "\n"
            for role, message in self.messages:
                out += f"{role}\n{message}{self.sep}\n" if message else f"{role}\n"
            return out
        raise ValueError(f"unsupported separator style {self.sep_style!r}")

    @property
    def stop_strings(self) -> list[str]:
        """Strings after which generation must stop (the turn end, then stop_str)."""
        out = [s.strip() for s in (self.sep, self.sep2) if s and s.strip()]
        if self.stop_str and self.stop_str not in out:
            out.append(self.stop_str)
        return out

    def stop_token_ids_for(self, tokenizer) -> list[int]:
        """Ids of this template's stop strings that are single tokens in `tokenizer`."""
        ids = []
        for s in self.stop_strings + ["<|im_start|>", "<|im_sep|>"]:
            tid = tokenizer.convert_tokens_to_ids(s)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
                ids.append(tid)
        return ids

    def copy(self) -> "Conversation":
        return copy.deepcopy(self)


_TEMPLATES: dict[str, Conversation] = {}


def register_conv_template(template: Conversation, override: bool = False) -> None:
    if template.name in _TEMPLATES and not override:
        raise ValueError(f"conversation template {template.name!r} is already registered")
    _TEMPLATES[template.name] = template


def get_conv_template(name: str) -> Conversation:
    """A fresh copy of the template `name` (raises KeyError listing the known names)."""
    try:
        return _TEMPLATES[name].copy()
    except KeyError:
        raise KeyError(f"unknown conversation template {name!r}; known: {sorted(_TEMPLATES)}") from None


def template_names() -> list[str]:
    return sorted(_TEMPLATES)


# Hermes-2 (V1.2) and internlm2-chat differ only in their system message and the original tokenizers' stop ids
# (Yi's for Hermes-2: <|endoftext|>, <|im_start|>, <|im_end|>, <|im_sep|>).
_IM_TEMPLATES = {
    "Hermes-2": ("Answer the questions.", (2, 6, 7, 8)),
    "internlm2-chat": ("You are an AI assistant whose name is InternLM (书生·浦语).",
                       (2, 92541, 92542, 92543, 92540)),
}
for _name, (_system, _stop_ids) in _IM_TEMPLATES.items():
    register_conv_template(Conversation(
        name=_name, system_template="<|im_start|>system\n{system_message}", system_message=_system,
        roles=("<|im_start|>user\n", "<|im_start|>assistant\n"), sep_style=SeparatorStyle.MPT, sep="<|im_end|>",
        stop_str="<|endoftext|>", stop_token_ids=_stop_ids))

register_conv_template(
    Conversation(
        name="vicuna_v1.1",
        system_message="A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        roles=("USER", "ASSISTANT"),
        sep_style=SeparatorStyle.ADD_COLON_TWO,
        sep=" ",
        sep2="</s>",
    )
)

# Plain ChatML (newline after <|im_end|>), e.g. for SmolLM2-Instruct's own format.
register_conv_template(
    Conversation(
        name="chatml",
        system_template="<|im_start|>system\n{system_message}",
        system_message="You are a helpful assistant.",
        roles=("<|im_start|>user", "<|im_start|>assistant"),
        sep_style=SeparatorStyle.CHATML,
        sep="<|im_end|>",
        stop_str="<|endoftext|>",
    )
)


# -- the one prompt renderer and the one tokenization path ---------------------------------------------------
@dataclasses.dataclass
class RenderedPrompt:
    text: str
    # [start, end) character spans of each assistant reply *including* its closing separator (`<|im_end|>`):
    # what training supervises.
    reply_spans: list[tuple[int, int]]


def _expand_images(text: str, blocks, used: list[int]) -> str:
    """Replace `<image>` placeholders: a str block replaces all of them; a sequence replaces them in order
    (placeholders beyond it stay text, as the original's `replace(..., 1)` loop leaves them)."""
    if blocks is None or IMAGE_PLACEHOLDER not in text:
        return text
    if isinstance(blocks, str):
        return text.replace(IMAGE_PLACEHOLDER, blocks)
    while IMAGE_PLACEHOLDER in text and used[0] < len(blocks):
        text = text.replace(IMAGE_PLACEHOLDER, blocks[used[0]], 1)
        used[0] += 1
    return text


def render_prompt(turns: Sequence, template_name: str = "Hermes-2", system_message: str | None = None,
                  image_blocks: str | Sequence[str] | None = None,
                  add_generation_prompt: bool = False) -> RenderedPrompt:
    """Render a conversation exactly as V1.2 saw it, in training and at inference alike.

    `turns`: (role, text) pairs or {"from", "value"} dicts, roles human/user then gpt/assistant alternating.
    `add_generation_prompt` (inference) appends the assistant role after a final user turn, so the model
    continues from there; training renders the turns as they are, as the original did. `image_blocks` expands `<image>` placeholders (see `_expand_images`).
    """
    conv = get_conv_template(template_name)
    if system_message is not None:
        conv.set_system_message(system_message)
    spans, used = [], [0]
    for j, turn in enumerate(turns):
        role, text = (turn["from"], turn["value"]) if isinstance(turn, dict) else turn
        idx = _ROLE_INDEX.get(role)
        if idx is None or idx != j % 2:
            raise ValueError(f"turn {j}: role {role!r} out of order (user and assistant turns alternate, user first)")
        text = _expand_images(text, image_blocks, used)
        if idx == 1:
            conv.append_message(conv.roles[1], None)
            start = len(conv.get_prompt())  # what the template writes before the reply = the generation prompt
            conv.messages[-1][1] = text
            spans.append((start, len(conv.get_prompt())))
        else:
            conv.append_message(conv.roles[0], text)
    if add_generation_prompt:
        if len(turns) % 2 == 0:
            raise ValueError("a generation prompt follows a user turn; the conversation ends with an assistant turn")
        conv.append_message(conv.roles[1], None)
    prompt = conv.get_prompt()
    for start, end in spans:  # every template here is append-only; make sure of it
        if end > len(prompt):
            raise AssertionError(f"template {template_name!r} is not append-only ({start}, {end}, {len(prompt)})")
    return RenderedPrompt(prompt, spans)


def encode_prompt(tokenizer, text: str) -> list[int]:
    """The ids of a rendered prompt: the tokenizer's default special-token handling, as the original's
    training (`tokenizer(conversation)`) and `chat` (`tokenizer(query)`) both used."""
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def left_pad(rows: list[list[int]], tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """Left-pad prompt ids for batched generation, as the original's batch_chat (padding_side='left'):
    -> (input_ids, attention_mask) as lists of equal-length rows."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(r) for r in rows)
    ids = [[pad] * (width - len(r)) + list(r) for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return ids, mask


def encode_prompt_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """`encode_prompt` plus [start, end) character offsets of every token (zero-width for inserted ones)."""
    if hasattr(tokenizer, "encode_with_offsets"):  # sentencepiece tokenizers (slow-Llama-exact ids)
        return tokenizer.encode_with_offsets(text)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"{type(tokenizer).__name__} gives no character offsets; load it with load_tokenizer")
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
