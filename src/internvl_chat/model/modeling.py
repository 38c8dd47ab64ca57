"""InternVLChatModel: InternViT -> pixel shuffle -> MLP projector -> LLM (V1.2 semantics).

Weight names are those of the released checkpoint: `vision_model.*`, `mlp1.{0,1,3}.*`,
`language_model.*` (a transformers causal LM, Llama for Nous-Hermes-2-Yi-34B).
Differences from the original are deliberate and small:
- a count mismatch between `<IMG_CONTEXT>` tokens and image features raises
  (the original silently trains that micro-batch without any image);
- nothing is printed, nothing assumes CUDA;
- `num_items_in_batch` lets a trainer weight the loss by tokens across micro-batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN
from ..conversation import encode_prompt, get_conv_template, left_pad, render_prompt
from .configuration import InternVLChatConfig
from .strict_load import StrictLoading, load_dtype, map_device
from .vision import InternVisionModel

LLM_LORA_TARGETS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj", "mlp.down_proj", "mlp.up_proj"]
VIT_LORA_TARGETS = ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5, ps_version: str = "v1") -> torch.Tensor:
    """Merge 2x2 patch neighbourhoods into channels: (n, 32, 32, c) -> (n, 16, 16, 4c) at scale 0.5.

    Output channels are the four chunks (2i,2j), (2i,2j+1), (2i+1,2j), (2i+1,2j+1).
    'v1' (V1.2) leaves the grid transposed, so flattened token t = j*16 + i;
    'v2' (V1.5+) swaps it back, t = i*16 + j. V1.2 weights need 'v1'.
    """
    n, w, h, c = x.shape
    x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
    if ps_version == "v2":
        x = x.permute(0, 2, 1, 3).contiguous()
    return x


def flash_attn_available() -> bool:
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


HALF = (torch.bfloat16, torch.float16)


def default_llm_attn_implementation(dtype: torch.dtype | None = None, device=None,
                                    flash_available: bool | None = None) -> str:
    """flash_attention_2 only where it can run: flash-attn installed, the model on a CUDA device, and
    bf16/fp16 weights. Everything else gets SDPA (which has its own flash kernel on GPU): fp32 models,
    models left on the CPU of a GPU host, and calls that do not say where the model will live."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if flash_available is None:
        flash_available = flash_attn_available()
    if flash_available and device.type == "cuda" and dtype in HALF:
        return "flash_attention_2"
    return "sdpa"


def resolve_attn_implementation(requested: str | None, dtype: torch.dtype | None, device,
                                flash_available: bool | None = None) -> str:
    """The user's choice if it can run here, else a clear error; None picks the default above."""
    if requested is None:
        return default_llm_attn_implementation(dtype, device, flash_available)
    if requested.startswith("flash_attention"):
        where = torch.device(device) if device is not None else torch.device("cpu")
        if where.type != "cuda" or dtype not in HALF:
            raise ValueError(f"attn_implementation={requested} needs a CUDA device and bf16/fp16 weights; this model "
                             f"is {dtype} on {where} (use sdpa, or parallel.dtype=bf16 on a GPU)")
    return requested


class InternVLChatModel(StrictLoading, PreTrainedModel):
    config_class = InternVLChatConfig
    base_model_prefix = ""
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _no_split_modules = ["InternVisionEncoderLayer", "LlamaDecoderLayer"]

    def __init__(self, config: InternVLChatConfig, vision_model=None, language_model=None,
                 attn_implementation: str | None = None):
        super().__init__(config)
        self.select_layer = config.select_layer
        self.template = config.template or "Hermes-2"
        self.downsample_ratio = config.downsample_ratio
        self.ps_version = getattr(config, "ps_version", "v1") or "v1"
        self.num_image_token = config.num_image_token
        self.vision_model = vision_model if vision_model is not None else InternVisionModel(config.vision_config)
        if language_model is None:
            impl = attn_implementation or default_llm_attn_implementation()
            language_model = AutoModelForCausalLM.from_config(config.llm_config, attn_implementation=impl)
        self.language_model = language_model
        vit_hidden = config.vision_config.hidden_size * int(1 / config.downsample_ratio) ** 2
        llm_hidden = config.llm_config.hidden_size
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(vit_hidden), nn.Linear(vit_hidden, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden)
        )
        if config.force_image_size and config.force_image_size != config.vision_config.image_size:
            self.vision_model.resize_pos_embeddings(
                config.vision_config.image_size, config.force_image_size, config.vision_config.patch_size)
        self.img_context_token_id: int | None = None
        self.post_init()
        if config.use_backbone_lora:
            self.wrap_backbone_lora(r=config.use_backbone_lora, lora_alpha=2 * config.use_backbone_lora)
        if config.use_llm_lora:
            self.wrap_llm_lora(r=config.use_llm_lora, lora_alpha=2 * config.use_llm_lora)

    @classmethod
    def loading_kwargs(cls, path: str, dtype, device_map, attn_implementation: str | None) -> dict:
        """The LLM's attention for from_pretrained: the requested one, else the best for the load's dtype/device."""
        return {"attn_implementation": resolve_attn_implementation(attn_implementation, load_dtype(path, dtype),
                                                                   map_device(device_map))}

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()

    # -- LoRA (PEFT), with the original target modules and alpha = 2r, dropout 0.05 ----------------
    def wrap_backbone_lora(self, r: int = 128, lora_alpha: int = 256, lora_dropout: float = 0.05) -> None:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=VIT_LORA_TARGETS)
        self.vision_model = get_peft_model(self.vision_model, cfg)
        self._refresh_tied_weights()

    def wrap_llm_lora(self, r: int = 128, lora_alpha: int = 256, lora_dropout: float = 0.05) -> None:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=LLM_LORA_TARGETS,
                         task_type="CAUSAL_LM")
        self.language_model = get_peft_model(self.language_model, cfg)
        self.language_model.enable_input_require_grads()
        self._refresh_tied_weights()

    def _refresh_tied_weights(self) -> None:
        # PEFT moves the LLM under `base_model.model`; re-derive the tied-weight paths (e.g. SmolLM2's
        # lm_head -> embed_tokens) so loading and tie_weights find the parameters where they now live.
        self.all_tied_weights_keys = self.get_expanded_tied_weights_keys(all_submodels=True)

    # -- geometry and tokenizer binding --------------------------------------------------------
    @property
    def image_size(self) -> int:
        """Side of the square images the model takes (the config's one home for it)."""
        return self.config.image_size

    def bind_tokenizer(self, tokenizer) -> int:
        """Record the tokenizer's special-token ids the model needs (the `<IMG_CONTEXT>` id); returns it.

        Call once after loading a model and its tokenizer; `chat`/`batch_chat` call it themselves."""
        return self.bind_token_ids(tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN))

    def bind_token_ids(self, img_context_token_id: int) -> int:
        """`bind_tokenizer` without a tokenizer (the trainer's skeleton knows only the id); returns it."""
        self.img_context_token_id = img_context_token_id
        return img_context_token_id

    # -- vision path ---------------------------------------------------------------------------
    def pixel_shuffle(self, x: torch.Tensor, scale_factor: float = 0.5) -> torch.Tensor:
        return pixel_shuffle(x, scale_factor, self.ps_version)

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_image_token, llm_hidden)."""
        if self.select_layer == -1:
            vit = self.vision_model(pixel_values=pixel_values, output_hidden_states=False).last_hidden_state
        else:
            vit = self.vision_model(pixel_values=pixel_values, output_hidden_states=True).hidden_states[self.select_layer]
        vit = vit[:, 1:, :]  # drop CLS
        h = w = int(vit.shape[1] ** 0.5)
        vit = vit.reshape(vit.shape[0], h, w, -1)
        vit = self.pixel_shuffle(vit, scale_factor=self.downsample_ratio)
        vit = vit.reshape(vit.shape[0], -1, vit.shape[-1])
        return self.mlp1(vit)

    def embed_inputs(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
                     visual_features: torch.Tensor | None = None, image_flags: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embeddings, unused): the token embeddings of `input_ids` with image features written, in order,
        into the `<IMG_CONTEXT>` positions. Features come from `pixel_values` or ready-made
        `visual_features` (B_img, num_image_token, llm_hidden). `image_flags` == 0 marks stand-in images of
        text-only samples: their features are left out and returned as `unused` (forward keeps them in
        the graph so every rank runs the same ViT work). Shared by forward, generate and the engine."""
        input_embeds = self.language_model.get_input_embeddings()(input_ids)
        if pixel_values is None and visual_features is None:
            return input_embeds, None
        vit_embeds = visual_features if visual_features is not None else self.extract_feature(pixel_values)
        unused = None
        if image_flags is not None:
            keep = image_flags.reshape(-1) == 1
            if not bool(keep.all()):
                unused = vit_embeds[~keep]
            vit_embeds = vit_embeds[keep]
        return self._merge_image_features(input_ids, input_embeds, vit_embeds), unused

    def _merge_image_features(self, input_ids: torch.Tensor, input_embeds: torch.Tensor,
                              vit_embeds: torch.Tensor) -> torch.Tensor:
        """Write image features, in order, into the embeddings of the <IMG_CONTEXT> positions."""
        if self.img_context_token_id is None:
            raise ValueError("model.img_context_token_id is not set; set it to tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')")
        B, N, C = input_embeds.shape
        flat = input_embeds.reshape(B * N, C)
        positions = (input_ids.reshape(B * N) == self.img_context_token_id).nonzero().squeeze(1)
        feats = vit_embeds.reshape(-1, C)
        if positions.numel() != feats.shape[0]:
            raise ValueError(
                f"{positions.numel()} <IMG_CONTEXT> tokens in input_ids but {feats.shape[0]} image feature vectors "
                f"({vit_embeds.shape[0]} images x {self.num_image_token} tokens); every image needs exactly "
                f"{self.num_image_token} <IMG_CONTEXT> tokens (was the sequence truncated inside an image block?)")
        return flat.index_copy(0, positions, feats.to(flat.dtype)).reshape(B, N, C)

    # -- training / scoring forward ---------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        image_flags: torch.Tensor | None = None,
        past_key_values=None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        loss_only: bool = False,
        **kwargs,
    ):
        """The original forward; `loss_only=True` (training) applies lm_head only where a label is
        supervised and returns `logits=None` — the same loss, without a (tokens x vocab) logits tensor."""
        input_embeds, unused = self.embed_inputs(input_ids, pixel_values, image_flags=image_flags)
        if loss_only and labels is not None:
            loss = self._supervised_loss(input_embeds, attention_mask, position_ids, labels, num_items_in_batch,
                                         **kwargs)
            return CausalLMOutputWithPast(loss=_keep_in_graph(loss, unused), logits=None)
        if past_key_values is not None:  # the original's name; transformers 5.24 calls it `cache`
            kwargs["cache"] = past_key_values
        elif use_cache is None and (labels is not None or self.training):
            # No cache while training: besides memory, transformers only recognises packed sequences
            # (position ids restarting per sample, no mask) when it does not build a cache.
            use_cache = False
        outputs = self.language_model(
            inputs_embeds=input_embeds, attention_mask=attention_mask, position_ids=position_ids,
            use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, **kwargs,
        )
        logits = outputs.logits
        loss = None
        if labels is not None:
            loss = _keep_in_graph(causal_lm_loss(logits, labels, num_items_in_batch), unused)
        out = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                     hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return out if return_dict is not False else out.to_tuple()

    def _supervised_loss(self, input_embeds, attention_mask, position_ids, labels, num_items_in_batch,
                         **kwargs) -> torch.Tensor:
        decoder = self.language_model.get_decoder()
        hidden = decoder(inputs_embeds=input_embeds, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False, **kwargs).last_hidden_state
        shift_labels = labels[:, 1:]
        keep = shift_labels != IGNORE_INDEX
        logits = self.language_model.get_output_embeddings()(hidden[:, :-1][keep])
        # Labels may stay in host memory (the trainer keeps them there): the mask is then built on the host
        # and selecting the supervised positions needs no device-to-host sync.
        targets = shift_labels[keep].to(logits.device, non_blocking=True)
        if num_items_in_batch is None and not targets.numel():
            return logits.sum() * 0.0  # nothing supervised: a zero loss rather than the mean of nothing
        return _token_loss(logits, targets, num_items_in_batch)

    # -- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, pixel_values=None, input_ids=None, attention_mask=None, visual_features=None,
                 generation_config: GenerationConfig | None = None, **generate_kwargs) -> torch.Tensor:
        """Greedy/sampled decoding from a prompt with image blocks; returns only the new token ids."""
        if pixel_values is not None and visual_features is None:
            pixel_values = pixel_values.to(self.vision_model.dtype)
        input_embeds, _ = self.embed_inputs(input_ids, pixel_values, visual_features)
        return self.language_model.generate(inputs_embeds=input_embeds, attention_mask=attention_mask,
                                            generation_config=generation_config, use_cache=True, **generate_kwargs)

    def build_prompt(self, question: str, history=None, num_patches_list=None, has_image: bool = True) -> str:
        """The full templated prompt (image blocks expanded) for one question, as `chat` uses it."""
        if history is None and has_image and IMAGE_PLACEHOLDER not in question:
            question = IMAGE_PLACEHOLDER + "\n" + question
        turns = []
        for old_q, old_a in history or []:
            turns += [("user", old_q), ("assistant", old_a)]
        turns.append(("user", question))
        blocks = [IMG_START_TOKEN + IMG_CONTEXT_TOKEN * (self.num_image_token * n) + IMG_END_TOKEN
                  for n in num_patches_list or []]
        system = getattr(self.config, "system_message", None) or get_conv_template(self.template).system_message
        return render_prompt(turns, self.template, system, image_blocks=blocks, add_generation_prompt=True).text

    def _answer(self, tokenizer, pixel_values, queries: list[str], num_patches_list, generation_config: dict,
                **generate_kwargs) -> list[str]:
        """Generate for the prompts in one left-padded batch; each answer is cut at the template's separator."""
        if pixel_values is not None and len(pixel_values) != sum(num_patches_list):
            raise ValueError(f"pixel_values has {len(pixel_values)} images but num_patches_list sums to {sum(num_patches_list)}")
        self.bind_tokenizer(tokenizer)
        template = get_conv_template(self.template)
        cfg = dict(generation_config)
        cfg.setdefault("eos_token_id", template.stop_token_ids_for(tokenizer) or tokenizer.eos_token_id)
        if tokenizer.pad_token_id is not None:
            cfg.setdefault("pad_token_id", tokenizer.pad_token_id)
        ids, mask = left_pad([encode_prompt(tokenizer, q) for q in queries], tokenizer)
        out = self.generate(pixel_values=pixel_values, input_ids=torch.tensor(ids, device=self.device),
                            attention_mask=torch.tensor(mask, device=self.device), **cfg, **generate_kwargs)
        sep = template.sep.strip()
        return [(t.split(sep)[0] if sep else t).strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True)]

    def chat(self, tokenizer, pixel_values, question: str, generation_config: dict, history=None,
             return_history: bool = False, num_patches_list=None, IMG_START_TOKEN=IMG_START_TOKEN,
             IMG_END_TOKEN=IMG_END_TOKEN, IMG_CONTEXT_TOKEN=IMG_CONTEXT_TOKEN, verbose: bool = False,
             streamer=None):
        """One turn of a conversation about zero or more images (original call signature)."""
        del IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN  # fixed by the checkpoint's tokenizer
        if num_patches_list is None:
            num_patches_list = [pixel_values.shape[0]] if pixel_values is not None else []
        if history is None and pixel_values is not None and IMAGE_PLACEHOLDER not in question:
            question = IMAGE_PLACEHOLDER + "\n" + question  # kept in the history, as the original does
        query = self.build_prompt(question, history, num_patches_list, has_image=pixel_values is not None)
        response = self._answer(tokenizer, pixel_values, [query], num_patches_list, generation_config,
                                streamer=streamer)[0]
        if verbose:
            print(query.replace(IMG_CONTEXT_TOKEN * self.num_image_token, "<IMG_CONTEXT>*N"), response)
        if return_history:
            return response, list(history or []) + [(question, response)]
        return response

    def batch_chat(self, tokenizer, pixel_values, questions: list[str], generation_config: dict,
                   num_patches_list=None, history=None, return_history: bool = False, verbose: bool = False,
                   image_counts=None, **kwargs) -> list[str]:
        """Several independent single-turn questions in one left-padded batch."""
        if history is not None or return_history:
            raise NotImplementedError("batch_chat does not take a history; use chat() per conversation")
        if image_counts is not None:
            num_patches_list = image_counts
        if num_patches_list is None:
            num_patches_list = [1] * len(questions) if pixel_values is not None else [0] * len(questions)
        if len(num_patches_list) != len(questions):
            raise ValueError(f"{len(questions)} questions but num_patches_list has {len(num_patches_list)} entries")
        queries = [self.build_prompt(q, None, [n] if n else [], has_image=n > 0) for q, n in zip(questions, num_patches_list)]
        responses = self._answer(tokenizer, pixel_values, queries, num_patches_list, generation_config)
        if verbose:
            for q, r in zip(questions, responses):
                print(q, r)
        return responses


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Next-token cross-entropy over shifted labels (-100 ignored), in fp32.

    Mean over supervised tokens (the original), or sum / num_items_in_batch when a
    trainer passes the token count of the whole (accumulated, all-rank) batch.
    """
    shift_logits = logits[..., :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[..., 1:].reshape(-1).to(shift_logits.device)
    return _token_loss(shift_logits, shift_labels, num_items_in_batch)


def _token_loss(logits: torch.Tensor, targets: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Cross-entropy in fp32: mean over supervised targets, or their sum / num_items_in_batch."""
    if num_items_in_batch is None:
        return F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX)
    return F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum") / num_items_in_batch


def _keep_in_graph(loss: torch.Tensor, unused: torch.Tensor | None) -> torch.Tensor:
    """Text-only samples run the ViT on a dummy image whose features are dropped; a zero-weighted term keeps
    every ViT parameter in the graph so sharded ranks never wait on a missing gradient."""
    if unused is not None and torch.is_grad_enabled():
        return loss + 0.0 * unused.sum()
    return loss
