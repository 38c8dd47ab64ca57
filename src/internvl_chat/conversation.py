"""Chat templates that render prompts exactly as InternVL-Chat-V1.2 saw them.

Only the separator styles that InternVL's released models use are implemented.
`Hermes-2` is the V1.2 template: ChatML-like, but with *no* newline after
`<|im_end|>` and the system message "Answer the questions." (the Feb-2024
value; later InternVL releases changed it, which shifts benchmark numbers).
"""

from __future__ import annotations

import copy
import dataclasses
from enum import Enum


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
        out = [self.sep.strip()] if self.sep.strip() else []
        if self.sep2 and self.sep2.strip():
            out.append(self.sep2.strip())
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


register_conv_template(
    Conversation(
        name="Hermes-2",
        system_template="<|im_start|>system\n{system_message}",
        system_message="Answer the questions.",
        roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
        sep_style=SeparatorStyle.MPT,
        sep="<|im_end|>",
        stop_str="<|endoftext|>",
        stop_token_ids=(2, 6, 7, 8),  # Yi: <|endoftext|>, <|im_start|>, <|im_end|>, <|im_sep|>
    )
)

register_conv_template(
    Conversation(
        name="internlm2-chat",
        system_template="<|im_start|>system\n{system_message}",
        system_message="You are an AI assistant whose name is InternLM (书生·浦语).",
        roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
        sep_style=SeparatorStyle.MPT,
        sep="<|im_end|>",
        stop_str="<|endoftext|>",
        stop_token_ids=(2, 92541, 92542, 92543, 92540),
    )
)

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
