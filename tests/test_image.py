"""V1.2 image preprocessing with PIL: RGB, bicubic square resize, ImageNet normalisation, clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from internvl_chat.image import ImageLoadError, image_to_tensor, load_image, load_pixel_values


def _gradient(w=40, h=30, mode="RGB"):
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    arr[..., 2] = 77
    return Image.fromarray(arr).convert(mode)


def test_tensor_is_bicubic_resize_then_imagenet_normalisation():
    img = _gradient()
    t = image_to_tensor(img, size=28)
    assert t.shape == (3, 28, 28) and t.dtype == torch.float32
    resized = np.asarray(img.resize((28, 28), Image.BICUBIC), dtype=np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = torch.from_numpy(((resized - mean) / std).transpose(2, 0, 1)).float()
    torch.testing.assert_close(t, want, rtol=1e-6, atol=1e-6)


def test_non_rgb_inputs_are_converted_and_aspect_is_not_kept():
    for mode in ("L", "RGBA", "P"):
        assert image_to_tensor(_gradient(mode=mode), size=14).shape == (3, 14, 14)
    # No pad, no crop: a wide image is squashed, so its left and right edges both stay in the output.
    wide = Image.new("RGB", (100, 10), (255, 0, 0))
    wide.paste((0, 0, 255), (90, 0, 100, 10))
    t = image_to_tensor(wide, size=20)
    assert t[2, 10, -1] > t[2, 10, 0]


def test_pad2square_pads_with_the_mean_colour():
    tall = Image.new("RGB", (10, 40), (255, 255, 255))
    t = image_to_tensor(tall, size=40, pad2square=True)
    corner = t[:, 0, 0] * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    torch.testing.assert_close(corner * 255, torch.tensor([123.0, 116.0, 103.0]), atol=0.6, rtol=0)


def test_load_errors_say_what_and_where(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    with pytest.raises(ImageLoadError, match=r"bad\.jpg.*UnidentifiedImageError"):
        load_image(bad)
    good = tmp_path / "good.jpg"
    _gradient(200, 200).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:600])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(truncated)
    with pytest.raises(ImageLoadError, match="exceeds the limit"):
        load_image(good, max_pixels=100)


def test_load_pixel_values_from_path_and_bytes(tmp_path):
    p = tmp_path / "x.png"
    _gradient().save(p)
    a = load_pixel_values(p, size=28)
    b = load_pixel_values(p.read_bytes(), size=28, dtype=torch.bfloat16)
    assert a.shape == (1, 3, 28, 28) and b.dtype == torch.bfloat16
    torch.testing.assert_close(a, b.float(), atol=0.02, rtol=0.01)
