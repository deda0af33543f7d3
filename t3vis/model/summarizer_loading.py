"""Loading an extractive summarizer: a saved one, or a new one around a pretrained encoder."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig

from t3vis.errors import ModelError
from t3vis.model.access import (
    ATTENTION_NAME,
    ModelBundle,
    _check_tokenizer_matches,
    _load_tokenizer,
    _number_attention_layers,
    install_module_attention,
    load_adapter,
    model_max_length,
)
from t3vis.model.adapters import is_adapter_folder
from t3vis.model.summarizer import MODEL_TYPE, ExtractiveSummarizer
from t3vis.model.families import family_of
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, SUMMARY_LABELS


def load_summarizer(
    name_or_path: str | Path,
    *,
    tokenizer: str | Path | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    base_model: str | Path | None = None,
) -> ModelBundle:
    """Load a BertSum-style summarizer in eval mode, with t3vis attention.

    ``name_or_path`` is a saved summarizer (its config says ``t3vis-extractive-summarizer``), or any
    encoder checkpoint: a new summarizer is then built around it, its sentence scorer initialised at
    random (``classifier_was_initialised``), e.g. to record the untrained starting point. It may also be a
    ``peft`` adapter (e.g. LoRA) trained on a saved summarizer (``base_model``: the summarizer, when not the one
    the adapter names).
    """
    source = str(name_or_path)
    if is_adapter_folder(source):
        return load_adapter(source, base_model, lambda base, own_tokenizer, on: load_summarizer(
            base, tokenizer=tokenizer or own_tokenizer, device=on, trust_remote_code=trust_remote_code),
            key=("summarizer", str(tokenizer)), device=device)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load a model config from {source!r}: {exc}. Give a folder with config.json "
                         "(a saved summarizer or encoder) or, when online, a hub model name.") from exc
    encoder_config = config.encoder_config() if config.model_type == MODEL_TYPE else config
    if family_of(encoder_config).decoder:  # an unsupported architecture is refused here too
        raise ModelError(f"A BertSum-style summarizer needs an encoder ({encoder_config.model_type!r} is a decoder): "
                         "it reads each sentence's vector at the [CLS] before the sentence, which a causal model "
                         "computes without seeing the sentence.")
    try:
        if config.model_type == MODEL_TYPE:
            model = ExtractiveSummarizer.from_pretrained(source, attn_implementation=ATTENTION_NAME)
            initialised = False
        else:
            model = ExtractiveSummarizer.from_encoder(source, trust_remote_code=trust_remote_code)
            model.set_attn_implementation(ATTENTION_NAME)
            initialised = True
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"Cannot load an extractive summarizer from {source!r}: {exc}") from exc
    tokenizer_obj = _load_tokenizer(source, tokenizer, trust_remote_code=trust_remote_code)
    _check_tokenizer_matches(model, tokenizer_obj, source)
    _number_attention_layers(model.encoder)
    install_module_attention(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    return ModelBundle(
        model=model, tokenizer=tokenizer_obj, name=source, label_names=SUMMARY_LABELS,
        num_layers=int(model.config.num_hidden_layers), num_heads=int(model.config.num_attention_heads),
        max_length=model_max_length(model.encoder, tokenizer_obj), classifier_was_initialised=initialised,
        task=EXTRACTIVE_SUMMARIZATION,
    )
