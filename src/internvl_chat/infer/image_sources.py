"""Turning an OpenAI `image_url` into a checked PIL image.

`data:image/...;base64,` URLs are always accepted (within the byte and pixel limits).
Remote http(s) URLs and local files are refused unless the server was started with an
allow-list that covers them: fetching arbitrary URLs from a server is a classic SSRF hole,
and reading arbitrary paths leaks files.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image

from ..image import ImageLoadError, load_image
from .protocol import APIError

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)


@dataclasses.dataclass
class ImagePolicy:
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    allowed_url_prefixes: tuple[str, ...] = ()  # e.g. ("https://images.example.com/",)
    allowed_local_dirs: tuple[Path, ...] = ()
    fetch_timeout_s: float = 10.0


def _too_large(param: str, size: int, limit: int) -> APIError:
    return APIError(400, f"{param}: the image is {size} bytes, more than the limit of {limit} bytes",
                    param=param, code="image_too_large")


def _decode(data: bytes, param: str, policy: ImagePolicy) -> Image.Image:
    try:
        return load_image(data, max_pixels=policy.max_image_pixels)
    except ImageLoadError as e:
        too_large = "exceeds the limit" in e.reason or "DecompressionBomb" in e.reason
        code = "image_too_large" if too_large else "invalid_image"
        raise APIError(400, f"{param}: not a usable image ({e.reason})", param=param, code=code) from None


def _from_data_url(url: str, param: str, policy: ImagePolicy) -> Image.Image:
    m = _DATA_URL.match(url)
    if not m or not m.group("b64"):
        raise APIError(400, f"{param}: expected a base64 data URL like 'data:image/png;base64,...'",
                       param=param, code="invalid_image_url")
    mime = (m.group("mime") or "").lower()
    if mime and not mime.startswith("image/"):
        raise APIError(400, f"{param}: data URL media type is {mime!r}, not an image type", param=param,
                       code="invalid_image")
    payload = url[m.end():]
    # 4 base64 characters carry 3 bytes: refuse before decoding a huge payload
    if len(payload) * 3 // 4 > policy.max_image_bytes + 3:
        raise _too_large(param, len(payload) * 3 // 4, policy.max_image_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise APIError(400, f"{param}: the data URL is not valid base64 ({e})", param=param,
                       code="invalid_image") from None
    if len(data) > policy.max_image_bytes:
        raise _too_large(param, len(data), policy.max_image_bytes)
    return _decode(data, param, policy)


def _from_remote(url: str, param: str, policy: ImagePolicy) -> Image.Image:
    if not any(url.startswith(prefix) for prefix in policy.allowed_url_prefixes):
        raise APIError(400, f"{param}: remote image URLs are refused by this server ({url[:100]!r}); send the image "
                            "as a base64 data: URL, or start the server with --allow-image-url-prefix",
                       param=param, code="image_url_not_allowed")
    import httpx

    try:
        # no redirects: a redirect could leave the allow-listed prefix
        with httpx.stream("GET", url, timeout=policy.fetch_timeout_s, follow_redirects=False) as resp:
            if resp.status_code != 200:
                raise APIError(400, f"{param}: fetching {url[:100]!r} gave HTTP {resp.status_code}", param=param,
                               code="image_fetch_failed")
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > policy.max_image_bytes:
                    raise _too_large(param, size, policy.max_image_bytes)
                chunks.append(chunk)
    except httpx.HTTPError as e:
        raise APIError(400, f"{param}: fetching {url[:100]!r} failed ({type(e).__name__}: {e})", param=param,
                       code="image_fetch_failed") from None
    return _decode(b"".join(chunks), param, policy)


def _from_local(url: str, param: str, policy: ImagePolicy) -> Image.Image:
    raw = unquote(urlsplit(url).path) if url.startswith("file://") else url
    path = Path(raw).resolve()
    allowed = [Path(d).resolve() for d in policy.allowed_local_dirs]
    if not any(path.is_relative_to(d) for d in allowed):
        raise APIError(400, f"{param}: local image paths are refused by this server ({raw[:100]!r}); send the image "
                            "as a base64 data: URL, or start the server with --allow-local-images DIR",
                       param=param, code="image_url_not_allowed")
    if not path.is_file():
        raise APIError(400, f"{param}: no such image file {raw[:100]!r}", param=param, code="invalid_image")
    if path.stat().st_size > policy.max_image_bytes:
        raise _too_large(param, path.stat().st_size, policy.max_image_bytes)
    return _decode(path.read_bytes(), param, policy)


def resolve_image_url(url: str, param: str, policy: ImagePolicy) -> Image.Image:
    """An RGB image for `url`, or an APIError (400) that names `param` and says what was wrong."""
    if not isinstance(url, str) or not url:
        raise APIError(400, f"{param}: image URL must be a non-empty string", param=param, code="invalid_image_url")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _from_data_url(url, param, policy)
    if scheme in ("http", "https"):
        return _from_remote(url, param, policy)
    if scheme == "file" or scheme == "" or len(scheme) == 1:  # no scheme, or a Windows drive letter
        return _from_local(url, param, policy)
    raise APIError(400, f"{param}: unsupported image URL scheme {scheme!r}", param=param, code="invalid_image_url")
