"""Token strings and numeric constants shared by the model, data and inference code."""

IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"
IMAGE_PLACEHOLDER = "<image>"  # what annotations and prompts write; expanded before tokenization

# Tokens the V1.2 training script adds to the LLM tokenizer (in this order).
# `<img>`/`</img>` already exist in Yi's vocabulary; other tokenizers get them too.
ADDED_SPECIAL_TOKENS = [
    IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN,
    "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
]

IGNORE_INDEX = -100  # label value excluded from the loss

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD2SQUARE_FILL = (123, 116, 103)  # mean colour used by the (unused in V1.2) pad-to-square branch


def image_block(num_image_token: int) -> str:
    """The text that replaces one `<image>`: <img> + <IMG_CONTEXT> x N + </img>."""
    return IMG_START_TOKEN + IMG_CONTEXT_TOKEN * num_image_token + IMG_END_TOKEN
