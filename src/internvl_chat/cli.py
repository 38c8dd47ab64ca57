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
    lines += ["", "--debug (anywhere) or INTERNVL_CHAT_DEBUG=1: show tracebacks of user errors too",
              "exit codes: 0 ok, 1 internal error or unfinished run, 2 user error, 130 interrupted"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .errors import pop_debug_flag, run_command

    argv = pop_debug_flag(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"internvl-chat: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    # every command runs under one error contract (errors.py): user mistakes are one line + exit 2
    return run_command(lambda a: getattr(importlib.import_module(module), func)(a), rest, f"internvl-chat {name}")


if __name__ == "__main__":
    sys.exit(main())
