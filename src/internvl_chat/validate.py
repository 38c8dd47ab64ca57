"""Cheap checks of a command's inputs, run before any expensive work (loading weights, spawning ranks).

Each check raises `UserError` with one line that says what is wrong, where, and
what to do. They read only file headers: a 70 GB model folder is checked in
milliseconds.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path

from .errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


def _existing(path, what: str, folder: bool) -> Path:
    """`path` given, present, and a folder (folder=True) or a file."""
    if path is None or str(path).strip() == "":
        raise UserError(f"no {what} given")
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {p} does not exist")
    if folder and not p.is_dir():
        raise UserError(f"{what} {p} is a file, not a folder")
    if not folder and not p.is_file():
        raise UserError(f"{what} {p} is a folder, not a file")
    return p


def read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: {what} is not valid JSON ({e})") from None


def check_safetensors(path: Path) -> int:
    """Header readable and the file as long as the header says (a truncated download is caught); returns tensors."""
    size = path.stat().st_size
    hint = "the file is damaged or incomplete; download or export it again"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{path}: not a safetensors file ({size} bytes); {hint}")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > _MAX_HEADER or n > size - 8:
            raise UserError(f"{path}: not a safetensors file (header length {n} for a {size}-byte file); {hint}")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: safetensors header is not valid JSON; {hint}") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: safetensors header is not a mapping; {hint}")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise UserError(f"{path}: safetensors entry {name!r} has no valid data_offsets; {hint}") from None
    if 8 + n + end != size:
        raise UserError(f"{path}: {size} bytes, but its header describes {8 + n + end}; {hint}")
    return sum(1 for k in header if k != "__metadata__")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files a model folder's loader will read (single file or every shard of the index)."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if index.is_file():
        data = read_json(index, "the weight index")
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise UserError(f"{index}: no weight_map; the index is damaged")
        shards = sorted(set(map(str, weight_map.values())))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise UserError(f"{folder}: weight shard(s) listed in {index.name} are missing: {', '.join(missing[:4])}"
                            + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else ""))
        return [folder / s for s in shards]
    if single.is_file():
        return [single]
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
        raise UserError(f"{folder}: only pickle weights (*.bin/*.pt); this project reads safetensors only "
                        "(convert them with safetensors, or use the released safetensors files)")
    if any(folder.glob("*.safetensors")):
        raise UserError(f"{folder}: safetensors shards without model.safetensors.index.json; the index is missing")
    raise UserError(f"{folder}: has config.json but no weights (model.safetensors or model.safetensors.index.json); "
                    "`init --preset v1_2` writes the configuration only: put the released weights there, "
                    "or use `init --preset tiny`")


def check_model_dir(path, *, tokenizer: bool = True, what: str = "model folder") -> Path:
    """A loadable InternVL-Chat folder: config.json parses, weights complete, tokenizer files present."""
    folder = _existing(path, what, folder=True)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{folder} is not a model folder (no config.json); "
                        "create one with: internvl-chat init --preset tiny --output DIR")
    cfg = read_json(cfg_path, "the model configuration")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("llm_config"), dict) \
            or not isinstance(cfg.get("vision_config"), dict):
        raise UserError(f"{cfg_path}: not an InternVL-Chat configuration (needs llm_config and vision_config)")
    for f in weight_files(folder):
        check_safetensors(f)
    if tokenizer:
        check_tokenizer_dir(folder, what="model folder")
    return folder


def check_tokenizer_dir(path, what: str = "tokenizer folder") -> Path:
    folder = _existing(path, what, folder=True)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{what} {folder} has no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    for name, what_file in (("tokenizer_config.json", "the tokenizer configuration"), ("tokenizer.json", "the tokenizer")):
        if (folder / name).is_file():
            read_json(folder / name, what_file)
    return folder


def check_output_dir(path, what: str = "output folder") -> Path:
    """A folder we may create or write into: not empty text, not an existing file, parent not a file."""
    if path is None or str(path).strip() == "":
        raise UserError(f"empty {what}; give a folder name")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} {p} is an existing file; give a folder")
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} {p}: {parent} is a file")
            if not os.access(parent, os.W_OK) and not p.exists():
                raise UserError(f"{what} {p}: cannot create it, {parent} is not writable")
            break
    return p


def check_input_file(path, what: str) -> Path:
    return _existing(path, what, folder=False)


def check_device(spec: str | None) -> str | None:
    """'cpu', 'cuda', 'cuda:N', 'mps': exists in this torch build and on this machine."""
    if spec is None or spec == "auto":
        return spec
    import torch

    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {spec!r} is not a device (use cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec}: this torch has no usable CUDA "
                            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise UserError(f"--device {spec}: only {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError(f"--device {spec}: MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise UserError(f"--device {spec}: unsupported device type {dev.type!r} (use cpu, cuda, cuda:N or mps)")
    return spec


def check_port(host: str, port: int) -> None:
    """In range and free to bind now (a busy port would otherwise fail after the model has loaded)."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is out of range (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"--host {host!r}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind(addr)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror}; "
                            "choose another --port or stop the process using it") from None


def check_positive(value, name: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise UserError(f"{name} must be at least {minimum}, got {value}")
