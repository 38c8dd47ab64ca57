"""Terminal chat: streams the reply token by token, keeps multi-turn history, and takes commands.

Commands: /image PATH (load another image; starts a new conversation, as V1.2 sees one
image per conversation), /reset, /help, /quit. `--prompt` answers once and exits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from ..image import ImageLoadError, load_image
from .engine import ChatTurn, InferenceEngine, SamplingParams

HELP = """commands:
  /image PATH   use another image (starts a new conversation)
  /reset        forget the conversation (keeps the image)
  /help         this text
  /quit         leave (Ctrl-D works too)"""


class ChatSession:
    """One conversation: the image, the turns so far, and how to answer the next question."""

    def __init__(self, engine: InferenceEngine, params: SamplingParams, system_message: str | None = None):
        self.engine, self.params, self.system_message = engine, params, system_message
        self.image = None
        self.turns: list[ChatTurn] = []

    def load_image(self, path: str) -> None:
        self.image = load_image(path)  # raises ImageLoadError saying what was wrong
        self.turns = []

    def reset(self) -> None:
        self.turns = []

    def ask(self, question: str, on_text: Callable[[str], None] | None = None) -> str:
        images = [self.image] if not self.turns and self.image is not None else []
        turns = self.turns + [ChatTurn("user", question, images)]
        request = self.engine.prepare(turns, self.params, self.system_message, on_text=on_text)
        result = self.engine.generate([request])[0]
        self.turns = turns + [ChatTurn("assistant", result.text)]
        return result.text


def _stream_to(out: TextIO) -> Callable[[str], None]:
    def write(piece: str) -> None:
        out.write(piece)
        out.flush()
    return write


def one_shot(session: ChatSession, prompt: str, out: TextIO = sys.stdout) -> int:
    session.ask(prompt, on_text=_stream_to(out))
    out.write("\n")
    out.flush()
    return 0


def interactive(session: ChatSession, read: Callable[[str], str] = input, out: TextIO = sys.stdout,
                err: TextIO = sys.stderr) -> int:
    image_note = "no image" if session.image is None else f"image {session.image.width}x{session.image.height}"
    err.write(f"internvl-chat ({image_note}); /help for commands\n")
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        if not line:
            continue
        if line.startswith("/"):
            command, _, arg = line.partition(" ")
            if command in ("/quit", "/exit"):
                return 0
            if command == "/help":
                out.write(HELP + "\n")
            elif command == "/reset":
                session.reset()
                out.write("[conversation cleared]\n")
            elif command == "/image":
                if not arg.strip():
                    err.write("usage: /image PATH\n")
                    continue
                try:
                    session.load_image(arg.strip())
                except ImageLoadError as e:
                    err.write(f"error: {e}\n")
                    continue
                out.write(f"[image loaded: {arg.strip()} ({session.image.width}x{session.image.height}); "
                          "new conversation]\n")
            else:
                err.write(f"unknown command {command!r}; /help lists them\n")
            continue
        out.write("assistant> ")
        out.flush()
        try:
            session.ask(line, on_text=_stream_to(out))
        except KeyboardInterrupt:
            out.write(" [interrupted]\n")
            continue
        except ValueError as e:  # e.g. the conversation outgrew the model's context
            err.write(f"\nerror: {e}\n")
            continue
        out.write("\n")
        out.flush()
