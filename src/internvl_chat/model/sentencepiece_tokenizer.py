"""A sentencepiece (Llama-class) tokenizer that gives the ids transformers 4.37's slow `LlamaTokenizer` gave.

V1.2 trained on the ids of `LlamaTokenizer.from_pretrained(path, add_eos_token=False)` (slow, transformers
4.37). transformers 5 converts `tokenizer.model` to a fast tokenizer whose output differs in common cases
(`legacy: false`, ChatML tokens that are only sentencepiece user-defined pieces, literal special strings in
text), so the ids are produced here with the `sentencepiece` library directly, following the slow
tokenizer's rules:

1. split the text on the registered added tokens (longest match first; `lstrip`/`rstrip` honoured);
2. `legacy: true`: encode every other chunk with sentencepiece as it is;
3. `legacy: false`: the model's `add_dummy_prefix` is switched off, the whole text gets one leading `▁`
   (literal `▁` in the text become spaces) which is dropped again when the first token is a special token,
   and a chunk that starts with a space is encoded behind the unk string, whose pieces are then cut off.

The class keeps transformers' tokenizer interface (`__call__`, `decode`, `add_tokens`, `save_pretrained`, ...);
`encode_with_offsets` adds character offsets, which the slow tokenizer never had.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import sentencepiece as spm
from transformers import AddedToken
from transformers.tokenization_python import PreTrainedTokenizer

SPIECE_UNDERLINE = "▁"
VOCAB_FILE = "tokenizer.model"


def _spm_processor(vocab_file: str, legacy: bool) -> spm.SentencePieceProcessor:
    sp = spm.SentencePieceProcessor()
    sp.Load(vocab_file)
    if legacy:
        return sp
    # legacy=false: as the slow tokenizer, encode without sentencepiece's own dummy prefix.
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto.FromString(sp.serialized_model_proto())
    if proto.normalizer_spec.add_dummy_prefix:
        proto.normalizer_spec.add_dummy_prefix = False
        sp = spm.SentencePieceProcessor()
        sp.LoadFromSerializedProto(proto.SerializeToString())
    return sp


class SentencePieceLlamaTokenizer(PreTrainedTokenizer):
    """Slow-Llama-exact tokenization of a sentencepiece `tokenizer.model` (see the module docstring)."""

    vocab_files_names = {"vocab_file": VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token=None,
                 add_bos_token: bool = True, add_eos_token: bool = False, legacy: bool | None = None,
                 clean_up_tokenization_spaces: bool = False, **kwargs):
        kwargs.pop("sp_model_kwargs", None)
        kwargs.pop("backend", None)
        self.vocab_file = str(vocab_file)
        self.legacy = True if legacy is None else bool(legacy)  # 4.37: an unset flag means legacy
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self.sp_model = _spm_processor(self.vocab_file, self.legacy)
        self._unk_str = str(unk_token)
        self._unk_length = len(self.sp_model.encode(self._unk_str))

        def special(tok):
            return AddedToken(tok, normalized=False, special=True) if isinstance(tok, str) else tok

        super().__init__(unk_token=special(unk_token), bos_token=special(bos_token), eos_token=special(eos_token),
                         pad_token=special(pad_token) if pad_token is not None else None,
                         add_bos_token=add_bos_token, add_eos_token=add_eos_token, legacy=self.legacy,
                         clean_up_tokenization_spaces=clean_up_tokenization_spaces, **kwargs)
        self._update_trie()

    def __getstate__(self):  # the sentencepiece processor does not pickle (DataLoader workers under spawn)
        state = self.__dict__.copy()
        state["sp_model"] = None
        state["_sp_proto"] = self.sp_model.serialized_model_proto()
        return state

    def __setstate__(self, state):
        proto = state.pop("_sp_proto")
        self.__dict__.update(state)
        self.sp_model = spm.SentencePieceProcessor()
        self.sp_model.LoadFromSerializedProto(proto)

    # -- vocabulary ------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.sp_model.get_piece_size()

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.sp_model.id_to_piece(i): i for i in range(self.vocab_size)}
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _convert_token_to_id(self, token: str) -> int:
        return self.sp_model.piece_to_id(token)

    def _convert_id_to_token(self, index: int) -> str:
        return self.sp_model.id_to_piece(index)

    # -- tokenization (transformers 4.37 LlamaTokenizer rules) -------------------------------------------------
    def _update_trie(self, unique_no_split_tokens=None):
        super()._update_trie(unique_no_split_tokens)
        self._added_re = None  # rebuilt on next use

    def _added_pattern(self):
        """Leftmost-longest match of the added tokens (what transformers' Trie.split does), in C via `re`."""
        if getattr(self, "_added_re", None) is None:
            tokens = sorted(self.tokens_trie._tokens, key=len, reverse=True)
            self._added_re = re.compile("(" + "|".join(map(re.escape, tokens)) + ")") if tokens else None
            self._stripping = {t.content for t in self._added_tokens_decoder.values()
                               if t.lstrip or t.rstrip or t.single_word}
        return self._added_re

    def _split_added(self, text: str) -> list[str]:
        """Chunks of `text`: registered added tokens stay whole, stripping as their flags say."""
        pattern = self._added_pattern()
        chunks = [c for c in pattern.split(text) if c] if pattern is not None else [text]
        if not self._stripping:  # the common case (Yi, InternVL): no added token strips anything
            return chunks
        for i, chunk in enumerate(chunks):
            if chunk not in self._stripping:
                continue
            tok = self._added_tokens_decoder[self._added_tokens_encoder[chunk]]
            left = chunks[i - 1] if i > 0 else None
            right = chunks[i + 1] if i < len(chunks) - 1 else None
            if tok.rstrip and right:
                chunks[i + 1] = right.lstrip()
            if tok.lstrip and left:
                chunks[i - 1] = left.rstrip()
            if tok.single_word and left and left[-1] != " ":
                chunks[i - 1] += chunk
                chunks[i] = ""
            elif tok.single_word and right and right[0] != " ":
                chunks[i + 1] = chunk + chunks[i + 1]
                chunks[i] = ""
        return [c for c in chunks if c]

    def _prepare(self, text: str) -> str:
        if self.legacy or not text:
            return text
        return SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " ")

    def _drop_leading_underline(self, tokens: list, piece_of=lambda t: t) -> list:
        if (not self.legacy and len(tokens) > 1 and piece_of(tokens[0]) == SPIECE_UNDERLINE
                and piece_of(tokens[1]) in self.all_special_tokens):
            return tokens[1:]
        return tokens

    def tokenize(self, text: str, **kwargs) -> list[str]:
        prepared = self._prepare(text)
        tokens: list[str] = []
        for chunk in self._split_added(prepared):
            if chunk in self._added_tokens_encoder:
                tokens.append(chunk)
            else:
                tokens.extend(self._tokenize(chunk))
        return self._drop_leading_underline(tokens) if text else tokens

    def count_tokens(self, text: str) -> int:
        """len(self(text)["input_ids"]) without building the encoding (the label counting calls this often)."""
        n = len(self.tokenize(text))
        return n + int(self.add_bos_token and self.bos_token_id is not None) + \
            int(self.add_eos_token and self.eos_token_id is not None)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        if self.legacy or not text.startswith((SPIECE_UNDERLINE, " ")):
            return self.sp_model.encode(text, out_type=str)
        # Without a dummy prefix sentencepiece would drop the leading space; encode behind the unk string.
        tokens = self.sp_model.encode(self._unk_str + text, out_type=str)
        return tokens[self._unk_length:] if len(tokens) >= self._unk_length else tokens

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids as `self(text, add_special_tokens=False)` gives them, with [start, end) character offsets into
        `text` (zero-width for a leading `▁` the tokenizer inserted)."""
        prepared = self._prepare(text)
        shift = len(prepared) - len(text)  # the inserted leading ▁ (legacy=false)
        out: list[tuple[int, int, int]] = []  # (id, start, end) in `prepared`
        pos = 0
        for chunk in self._split_added(prepared):
            start = prepared.index(chunk, pos)
            pos = start + len(chunk)
            if chunk in self._added_tokens_encoder:
                out.append((self._added_tokens_encoder[chunk], start, pos))
                continue
            prefix = ""
            if not self.legacy and chunk.startswith((SPIECE_UNDERLINE, " ")):
                prefix = self._unk_str
            proto = self.sp_model.encode(prefix + chunk, out_type="proto")
            pieces = list(proto.pieces)[self._unk_length:] if prefix and len(proto.pieces) >= self._unk_length \
                else list(proto.pieces)
            char_of_byte = _byte_to_char(prefix + chunk)
            spans = [(char_of_byte[p.begin] - len(prefix), char_of_byte[p.end] - len(prefix)) for p in pieces]
            # Byte-fallback pieces of one character: sentencepiece gives the character to the last one and
            # zero width to the others; they all belong to that character.
            for k in range(len(spans) - 2, -1, -1):
                if spans[k][0] == spans[k][1] and self.sp_model.is_byte(pieces[k].id):
                    spans[k] = spans[k + 1]
            for p, (b, e) in zip(pieces, spans):
                out.append((p.id, start + max(b, 0), start + max(e, 0)))
        if text:
            out = self._drop_leading_underline(out, piece_of=lambda t: self.convert_ids_to_tokens(t[0]))
        ids = [i for i, _, _ in out]
        offsets = [(max(s - shift, 0), max(e - shift, 0)) for _, s, e in out]
        if self.add_bos_token and self.bos_token_id is not None:
            ids, offsets = [self.bos_token_id] + ids, [(0, 0)] + offsets
        if self.add_eos_token and self.eos_token_id is not None:
            ids, offsets = ids + [self.eos_token_id], offsets + [(len(text), len(text))]
        return ids, offsets

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        bos = [self.bos_token_id] if self.add_bos_token and self.bos_token_id is not None else []
        eos = [self.eos_token_id] if self.add_eos_token and self.eos_token_id is not None else []
        out = bos + token_ids_0 + eos
        if token_ids_1 is not None:
            out = out + bos + token_ids_1 + eos
        return out

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return len(self.build_inputs_with_special_tokens([], [] if pair else None))

    # -- decoding ----------------------------------------------------------------------------------------------
    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Special tokens verbatim, everything else through sentencepiece (byte-fallback pieces decode to text).

        As transformers 4.37's LlamaTokenizer, a leading `▁` of the first token is dropped (so `chat` answers
        read as the original's); unlike it, no space is inserted before special tokens in legacy mode.
        """
        tokens = list(tokens)
        if tokens and tokens[0].startswith(SPIECE_UNDERLINE):
            tokens[0] = tokens[0][1:]
        out, pending, specials = "", [], set(self.all_special_tokens) | set(self._added_tokens_encoder)
        for tok in tokens:
            if tok in specials:
                out += self.sp_model.decode_pieces(pending) + tok
                pending = []
            else:
                pending.append(tok)
        return out + self.sp_model.decode_pieces(pending)

    # -- saving ------------------------------------------------------------------------------------------------
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        out = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILE)
        if os.path.abspath(self.vocab_file) != os.path.abspath(out):
            Path(out).write_bytes(Path(self.vocab_file).read_bytes())
        return (out,)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as a slow `LlamaTokenizer` folder, loadable by the original code and by `load_tokenizer`."""
        files = super().save_pretrained(save_directory, *args, **kwargs)
        cfg_path = Path(save_directory) / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["tokenizer_class"] = "LlamaTokenizer"
        cfg["legacy"] = self.legacy
        cfg["add_bos_token"], cfg["add_eos_token"] = self.add_bos_token, self.add_eos_token
        cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return files


def _byte_to_char(text: str) -> list[int]:
    """Index: UTF-8 byte offset (0..len(bytes)) -> character offset (sentencepiece reports byte offsets)."""
    out = []
    for i, ch in enumerate(text):
        out.extend([i] * len(ch.encode("utf-8")))
    out.append(len(text))
    return out
