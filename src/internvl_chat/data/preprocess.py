"""Conversation -> (input_ids, labels), token for token as V1.2's `preprocess_mpt`.

The original tokenizes the whole prompt once, then re-tokenizes each round and
each instruction separately to count tokens, and wipes every label of a sample
when the counts disagree ("tokenization mismatch"). Here the prompt is
tokenized once with offsets; a token is supervised when its characters overlap
an assistant reply or the `<|im_end|>` that closes it. Where the original finds
no mismatch the two agree exactly; where it does, this still gives the right
labels instead of dropping the sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN, image_block
from ..conversation import get_conv_template
from .formats import ROLES, RecordError


@dataclass
class TokenizedSample:
    input_ids: torch.Tensor  # (N,) after truncation
    labels: torch.Tensor  # (N,)
    full_length: int  # tokens before truncation

    @property
    def truncated(self) -> int:
        return self.full_length - int(self.input_ids.numel())


def render_with_spans(conversations: list[dict], template_name: str) -> tuple[str, list[tuple[int, int]]]:
    """Render the template; return the prompt and the [start, end) character spans
    of each assistant reply including its closing separator."""
    conv = get_conv_template(template_name)
    role_of = {"human": conv.roles[0], "gpt": conv.roles[1]}
    spans = []
    for j, turn in enumerate(conversations):
        if turn["from"] == "gpt":
            # What the template writes before the reply = the generation prompt at this point.
            conv.append_message(role_of["gpt"], None)
            start = len(conv.get_prompt())
            conv.messages[-1][1] = turn["value"]
            end = len(conv.get_prompt())
            spans.append((start, end))
        else:
            conv.append_message(role_of[turn["from"]], turn["value"])
    prompt = conv.get_prompt()
    for start, end in spans:  # every template we render is append-only; make sure of it
        assert end <= len(prompt), (start, end, len(prompt))
    return prompt, spans


def _normalise_turns(conversations: list[dict], text_only: bool) -> list[dict]:
    turns = list(conversations)
    if turns and turns[0].get("from") == "gpt":
        turns = turns[1:]  # the original skips a leading assistant turn
    out = []
    for j, turn in enumerate(turns):
        expected = ROLES[j % 2]
        if turn.get("from") != expected:
            raise RecordError("role order", f"role order: turn {j} is {turn.get('from')!r}, expected {expected!r}")
        value = turn["value"]
        if text_only:  # as the original: placeholders of a text-only sample are removed
            value = value.replace(IMAGE_PLACEHOLDER, "").replace("<query>", "")
        out.append({"from": turn["from"], "value": value})
    return out


def tokenize_conversation(conversations, tokenizer, template_name: str, num_image_token: int, max_length: int,
                          text_only: bool = False) -> TokenizedSample:
    """Like `preprocess`, also reporting the untruncated length. Raises RecordError on an unusable sample."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("preprocess needs a fast tokenizer (character offsets); got " + type(tokenizer).__name__)
    turns = _normalise_turns(conversations, text_only)
    block = image_block(num_image_token)
    turns = [{"from": t["from"], "value": t["value"].replace(IMAGE_PLACEHOLDER, block)} for t in turns]
    prompt, spans = render_with_spans(turns, template_name)
    enc = tokenizer(prompt, return_offsets_mapping=True, truncation=False)
    ids = torch.tensor(enc["input_ids"], dtype=torch.long)
    offsets = torch.tensor(enc["offset_mapping"], dtype=torch.long).view(-1, 2)
    supervised = torch.zeros(ids.numel(), dtype=torch.bool)
    for a, b in spans:
        # Overlap of positive width: zero-width tokens (BOS, trimmed whitespace) are never supervised.
        supervised |= torch.maximum(offsets[:, 0], torch.tensor(a)) < torch.minimum(offsets[:, 1], torch.tensor(b))
    labels = torch.where(supervised, ids, torch.full_like(ids, IGNORE_INDEX))
    full_length = int(ids.numel())
    if full_length > max_length:
        image_ids = [tokenizer.convert_tokens_to_ids(t) for t in (IMG_START_TOKEN, IMG_CONTEXT_TOKEN, IMG_END_TOKEN)]
        in_image = torch.isin(ids, torch.tensor(image_ids))
        if in_image[max_length:].any():
            raise RecordError("over length", f"over length: {full_length} tokens > {max_length} "
                                             "(truncation would cut the image block)")
        ids, labels = ids[:max_length], labels[:max_length]
    if not (labels != IGNORE_INDEX).any():
        if full_length > max_length:
            raise RecordError("over length", f"over length: {full_length} tokens > {max_length} "
                                             "(no answer token left after truncation)")
        raise RecordError("no supervised tokens", f"no supervised tokens ({full_length} tokens)")
    return TokenizedSample(input_ids=ids, labels=labels, full_length=full_length)


def preprocess(conversations, tokenizer, template_name: str, num_image_token: int, max_length: int,
               text_only: bool = False) -> dict[str, torch.Tensor]:
    """Tokenize one conversation (list of {"from": "human"|"gpt", "value"}) with labels.

    `<image>` becomes `<img>` + `<IMG_CONTEXT>` x num_image_token + `</img>`; the
    assistant replies and their closing end token are supervised, all else is -100.
    Returns 1-D LongTensors {"input_ids", "labels"}, at most `max_length` long.
    """
    sample = tokenize_conversation(conversations, tokenizer, template_name, num_image_token, max_length, text_only)
    return {"input_ids": sample.input_ids, "labels": sample.labels}
