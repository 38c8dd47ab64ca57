"""`internvl-chat <command> ...`: a thin dispatcher over the library.

Each command lives next to the code it drives and takes its own argv, so this
file stays a table and importing it costs nothing.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    # name: (module, function, one-line help)
    "init": ("internvl_chat.model.presets", "cli_main", "write a random-initialised model + tokenizer (tiny or v1_2)"),
    "data": ("internvl_chat.data.cli", "main", "check / stats / synth for V1.2-style SFT data"),
    "train": ("internvl_chat.train.cli", "main", "train with FSDP2 (CONFIG.yaml key=value ...)"),
    "plan": ("internvl_chat.train.plan", "main", "will a training config fit on N GPUs, and what will it cost"),
    "merge-lora": ("internvl_chat.train.cli", "merge_lora_main", "merge LoRA adapters into a plain checkpoint"),
    "chat": ("internvl_chat.infer.cli", "chat_main", "terminal chat with a model"),
    "serve": ("internvl_chat.infer.cli", "serve_main", "OpenAI-compatible HTTP server"),
    "web": ("internvl_chat.infer.cli", "web_main", "web chat page"),
    "eval": ("internvl_chat.eval.cli", "main", "run benchmarks and write a report"),
}


def _usage() -> str:
    lines = ["usage: internvl-chat <command> [args]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"internvl-chat: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    fn = getattr(importlib.import_module(module), func)
    return int(fn(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
