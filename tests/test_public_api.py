"""The package root's public API, and that importing the package / CLI dispatcher stays cheap."""

import subprocess
import sys

import internvl_chat


def test_root_exports_resolve_to_the_defining_objects():
    from internvl_chat import (InternVLChatConfig, InternVLChatModel, get_conv_template, load_pixel_values,
                               load_tokenizer)
    from internvl_chat.conversation import get_conv_template as conv_def
    from internvl_chat.image import load_pixel_values as pix_def
    from internvl_chat.model import InternVLChatConfig as cfg_def, InternVLChatModel as model_def
    from internvl_chat.model.tokenizer import load_tokenizer as tok_def

    assert InternVLChatModel is model_def and InternVLChatConfig is cfg_def
    assert load_tokenizer is tok_def and get_conv_template is conv_def and load_pixel_values is pix_def
    assert set(internvl_chat.__all__) >= {"InternVLChatModel", "InternVLChatConfig", "load_tokenizer",
                                           "get_conv_template", "load_pixel_values"}
    assert get_conv_template("Hermes-2").name == "Hermes-2"


def test_unknown_root_name_is_an_attribute_error():
    try:
        internvl_chat.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_package_and_cli_does_not_import_torch():
    code = ("import sys, internvl_chat, internvl_chat.cli; "
            "heavy = [m for m in ('torch', 'transformers', 'PIL') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing internvl_chat(.cli) pulled in {out.stdout.strip()}"
