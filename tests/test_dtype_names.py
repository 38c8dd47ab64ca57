"""Every command accepts every spelling of the dtypes it offers (one table, runtime.DTYPE_NAMES) and
resolves each to the same torch dtype; chat/serve/web and eval share one --dtype help text."""

from __future__ import annotations

import pytest
import torch

from internvl_chat.eval.cli import _parser as eval_parser
from internvl_chat.infer.cli import _chat_parser, _server_parser
from internvl_chat.runtime import torch_dtype
from internvl_chat.train.config import ConfigError, load_config
from internvl_chat.train.parallel import DTYPES, param_dtype

SPELLINGS = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "fp32": torch.float32, "float32": torch.float32}
PARSERS = {"chat": _chat_parser, "serve": lambda: _server_parser("internvl-chat serve", 8000),
           "web": lambda: _server_parser("internvl-chat web", 7860), "eval": eval_parser}


def _dtype_action(parser):
    return next(a for a in parser._actions if a.dest == "dtype")


@pytest.mark.parametrize("command", sorted(PARSERS))
@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_command_line_spelling_gives_the_same_torch_dtype(command, spelling):
    args = PARSERS[command]().parse_args(["--model", "m", "--dtype", spelling])
    assert torch_dtype(args.dtype) == SPELLINGS[spelling]
    # the stored name does not depend on the spelling (eval's cache key records it)
    assert args.dtype == {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[SPELLINGS[spelling]]


@pytest.mark.parametrize("command", ["chat", "serve", "web"])
def test_auto_stays_where_it_was(command):
    assert PARSERS[command]().parse_args(["--model", "m"]).dtype == "auto"
    assert PARSERS[command]().parse_args(["--model", "m", "--dtype", "auto"]).dtype == "auto"
    with pytest.raises(SystemExit):
        eval_parser().parse_args(["--dtype", "auto"])


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_an_unknown_dtype_is_refused(command, capsys):
    with pytest.raises(SystemExit) as e:
        PARSERS[command]().parse_args(["--model", "m", "--dtype", "bf32"])
    assert e.value.code == 2 and "invalid choice: 'bf32'" in capsys.readouterr().err


def test_one_help_text():
    helps = {name: _dtype_action(make()).help for name, make in PARSERS.items()}
    assert helps["eval"] == "weights dtype: bf16|bfloat16, fp16|float16, fp32|float32"
    assert {helps["chat"], helps["serve"], helps["web"]} == {helps["eval"] + "; auto: as saved"}


@pytest.mark.parametrize("spelling", ["bf16", "bfloat16", "fp32", "float32"])
def test_train_config_accepts_every_spelling(spelling):
    cfg = load_config("configs/tiny.yaml", [f"parallel.dtype={spelling}", f"parallel.reduce_dtype={spelling}"])
    for device in ("cpu", "cuda"):
        assert param_dtype(cfg.parallel, torch.device(device)) == SPELLINGS[spelling]
    assert DTYPES[cfg.parallel.reduce_dtype] == SPELLINGS[spelling]


def test_train_config_still_refuses_what_it_cannot_train_in():
    for bad in ("fp16", "float16", "bf32"):
        with pytest.raises(ConfigError, match="parallel.dtype must be auto, bf16 or fp32"):
            load_config("configs/tiny.yaml", [f"parallel.dtype={bad}"])
