"""Conversation -> (input_ids, labels), token for token as V1.2's `preprocess_mpt`.

Ids: the prompt is rendered by `conversation.render_prompt` and tokenized once by `encode_prompt` (for
sentencepiece folders these are transformers 4.37 slow-LlamaTokenizer ids, see model/sentencepiece_tokenizer.py).

Labels: the original (InternVL 75960d8) splits the prompt on `<|im_end|>` into rounds, re-tokenizes each
round and each instruction part separately, and masks by those counts; when the counts do not add up to
the number of (non-pad) tokens it prints "tokenization mismatch" and wipes every label of the sample.
Here the same counting is done, so where the original finds no mismatch the labels are the original's,
position for position. Where it would find one, the sample is not dropped: the documented rule applies
instead, a token is supervised iff its characters overlap an assistant reply or the `<|im_end|>` that
closes it (character offsets of the one tokenization). See docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN, image_block
from ..conversation import SeparatorStyle, encode_prompt, encode_prompt_with_offsets, get_conv_template, render_prompt
from .formats import ROLES, RecordError


@dataclass
class TokenizedSample:
    input_ids: torch.Tensor  # (N,) after truncation
    labels: torch.Tensor  # (N,)
    full_length: int  # tokens before truncation

    @property
    def truncated(self) -> int:
        return self.full_length - int(self.input_ids.numel())


def original_labels(ids: list[int], prompt: str, tokenizer, template_name: str) -> list[int] | None:
    """Labels by the original's counting (preprocess_mpt), or None where it reports a tokenization mismatch."""
    conv = get_conv_template(template_name)
    if conv.sep_style is not SeparatorStyle.MPT:
        return None  # the original counted this way only for its MPT-style templates (Hermes-2, internlm2-chat)
    sep, marker = conv.sep, conv.sep + conv.roles[1]  # "<|im_end|>", "<|im_end|><|im_start|>assistant\n"

    pieces = prompt.split(sep)
    # Round 1 = system + user + reply; then user + reply per round (each without its closing separator).
    rounds = [sep.join(pieces[:3])] + [sep.join(pieces[k:k + 2]) for k in range(3, len(pieces), 2)]
    texts = []  # (round text, instruction text) of the rounds the original walks before it stops
    for text in rounds:
        parts = text.split(marker)
        if text == "" or len(parts) != 2:
            break
        texts.append((text, parts[0] + marker))
    flat = [t for pair in texts for t in pair]
    counter = getattr(tokenizer, "count_tokens", None)
    if counter is not None:
        counts = [counter(t) for t in flat]
    else:  # one batched call: each text is still tokenized on its own
        counts = [len(x) for x in tokenizer(flat)["input_ids"]] if flat else []
    labels = list(ids)
    cur = 0
    for k in range(len(texts)):
        round_len = counts[2 * k] + 1  # + the separator the split removed
        instruction_len = counts[2 * k + 1]
        labels[cur:cur + instruction_len] = [IGNORE_INDEX] * len(labels[cur:cur + instruction_len])
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * len(labels[cur:])
    pad = tokenizer.pad_token_id
    total = sum(1 for i in ids if i != pad) if pad is not None else len(ids)
    return labels if cur == total else None


def rule_labels(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """The documented rule: a token is supervised iff its characters overlap a reply span (positive width)."""
    out = []
    for tid, (s, e) in zip(ids, offsets):
        out.append(tid if any(max(s, a) < min(e, b) for a, b in spans) else IGNORE_INDEX)
    return out


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
    turns = _normalise_turns(conversations, text_only)
    rendered = render_prompt(turns, template_name, image_blocks=image_block(num_image_token))
    ids_list = encode_prompt(tokenizer, rendered.text)
    labels_list = original_labels(ids_list, rendered.text, tokenizer, template_name)
    if labels_list is None:  # the original would have wiped this sample: the documented rule instead
        ids_again, offsets = encode_prompt_with_offsets(tokenizer, rendered.text)
        if ids_again != ids_list:
            raise AssertionError(f"{type(tokenizer).__name__}: ids with offsets differ from the plain ids")
        labels_list = rule_labels(ids_list, offsets, rendered.reply_spans)
    ids = torch.tensor(ids_list, dtype=torch.long)
    labels = torch.tensor(labels_list, dtype=torch.long)
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
