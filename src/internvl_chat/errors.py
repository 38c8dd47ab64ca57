"""The command line's error contract.

A user's mistake (bad argument, file, folder, config value, device, port) is a
`UserError`: one line on stderr saying what, where and how to fix it, exit 2,
no traceback. Anything else is a bug in this package: the traceback is kept
and the exit code is 1. `--debug` (or INTERNVL_CHAT_DEBUG=1) shows the
traceback of user errors too. Under torchrun only rank 0 prints the line, so
N processes do not print N copies (every rank still exits 2).

Exit codes: 0 success, 1 internal error or a run that stopped without
finishing its work (non-finite losses, too many rejected samples), 2 user
error, 130 interrupted (Ctrl-C) where nothing could be saved.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import Callable

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


class UserError(Exception):
    """A mistake the user can fix; its message is the whole story (what, where, how to fix)."""


_debug_flag = False  # set per command line by pop_debug_flag


def debug_enabled() -> bool:
    return _debug_flag or os.environ.get("INTERNVL_CHAT_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def is_rank0() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def _user_error_types() -> tuple[type, ...]:
    """Exceptions of the library that always mean 'your input is wrong' (imported lazily: they pull torch)."""
    types: list[type] = [UserError]
    for module, name in (("internvl_chat.data.formats", "MetaError"),
                         ("internvl_chat.model.loading", "CheckpointMismatchError"),
                         ("internvl_chat.model.tokenizer", "TokenizerLoadError"),
                         ("internvl_chat.eval.runner", "CacheError"),
                         ("internvl_chat.eval.benchmarks.base", "BenchmarkDataError"),
                         ("internvl_chat.eval.judge", "JudgeError"),
                         ("internvl_chat.train.checkpoint", "CheckpointError"),
                         ("internvl_chat.demo.config", "DemoConfigError"),
                         ("internvl_chat.image", "ImageLoadError")):
        mod = sys.modules.get(module)  # only modules the command already imported can have raised
        if mod is not None and hasattr(mod, name):
            types.append(getattr(mod, name))
    return tuple(types)


def one_line(message: object) -> str:
    text = " ".join(str(message).split())
    return text or type(message).__name__


# Under torchrun every rank usually finds the same mistake and rank 0 says it once. A peer that got there
# first waits this long before saying it itself: time for rank 0 to report and for torchrun (which stops
# the others as soon as one rank exits) to stop this one. A mistake only this rank sees is still said.
PEER_REPORT_WAIT_S = 10.0


def report_user_error(prog: str, exc: BaseException) -> None:
    if debug_enabled():
        traceback.print_exception(exc)
    if is_rank0():
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr, flush=True)
        return
    time.sleep(PEER_REPORT_WAIT_S)
    print(f"{prog}: error (rank {os.environ['RANK']}): {one_line(exc)}", file=sys.stderr, flush=True)


def _argparse_error(self: argparse.ArgumentParser, message: str):
    raise UserError(f"{message} (see {self.prog} --help)")


def run_command(fn: Callable[[list[str]], int | None], argv: list[str], prog: str) -> int:
    """Run one command under the contract; returns the exit code.

    argparse's refusals become one line too (instead of the usage block plus a line): every command's
    parser is swapped for the duration of the command, so commands added later follow without edits."""
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _argparse_error
    try:
        return int(fn(argv) or 0)
    except KeyboardInterrupt:
        if is_rank0():
            print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise  # argparse's own exit 2 with usage, or an explicit exit code
    except Exception as e:  # noqa: BLE001 - this is the one place that decides how errors look
        if isinstance(e, _user_error_types()):
            report_user_error(prog, e)
            return EXIT_USER
        if isinstance(e, OSError) and e.filename is not None and e.errno is not None:
            # a path the user gave that cannot be read or written (missing, a file, permissions, disk full)
            report_user_error(prog, UserError(f"{e.filename}: {e.strerror}"))
            return EXIT_USER
        traceback.print_exc()
        print(f"{prog}: internal error (a bug; please report it with the traceback above)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        argparse.ArgumentParser.error = original


def pop_debug_flag(argv: list[str]) -> list[str]:
    """`--debug` anywhere on the command line turns tracebacks on for this run."""
    global _debug_flag
    _debug_flag = "--debug" in argv
    return [a for a in argv if a != "--debug"]
