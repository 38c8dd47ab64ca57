"""Inference and serving: the batched generation engine, the terminal chat, the OpenAI-compatible server, the web page.

Library entry points (the CLI wrappers live in `infer.cli`):
- `InferenceEngine(model, tokenizer)`: prompts from chat turns, batched greedy/sampled generation with streaming;
- `generate_batch(model, tokenizer, questions, pixel_values_list, max_new_tokens)`: answers, like `batch_chat`;
- `server.create_app(engine_or_model_dir, ServerConfig(...))`: the FastAPI app.
"""

from .engine import ChatTurn, GenerationRequest, GenerationResult, InferenceEngine, SamplingParams, generate_batch

__all__ = ["ChatTurn", "GenerationRequest", "GenerationResult", "InferenceEngine", "SamplingParams", "generate_batch"]
