"""The random models of bench/families.py and bench/long_inputs.py: one per supported family, 4 layers x 4 heads,
width 256, built from a config with the packaged MiniLM's tokenizer, each as long as its positions reach."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from t3vis.model.access import load_model

WIDTH = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512)

CONFIGS = {  # model_type -> (config values, longest input)
    "bert": (WIDTH, 512),
    "gpt2": (dict(n_embd=256, n_layer=4, n_head=4), 2048),
    "llama": (dict(WIDTH, num_key_value_heads=2), 2048),
    "modernbert": (dict(WIDTH, global_attn_every_n_layers=2, local_attention=128), 2048),
    "deberta-v2": (dict(WIDTH, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=256,
                        max_relative_positions=512, position_biased_input=False, norm_rel_ebd="layer_norm",
                        share_att_key=True, type_vocab_size=0), 512),  # DeBERTa-v3's layout
}


def build(model_type: str, folder: Path, tokenizer) -> object:
    values, longest = CONFIGS[model_type]
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer) + 8, num_labels=3, pad_token_id=0,
                                  max_position_embeddings=longest, **values)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.model_max_length = longest  # the MiniLM tokenizer says 512; these positions reach further
    tokenizer.save_pretrained(folder)
    bundle = load_model(folder, device="cpu")
    assert bundle.max_length == longest, (model_type, bundle.max_length)
    return bundle, longest


def text_of(tokenizer, n_tokens: int) -> str:
    words = "the committee approved a rather surprising budget after a long and heated debate on monday".split()
    text = ""
    while len(tokenizer(text)["input_ids"]) < n_tokens:
        text += " " + " ".join(words)
    ids = tokenizer(text)["input_ids"][1:n_tokens - 1]
    return tokenizer.decode(ids)
