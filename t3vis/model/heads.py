"""Heads and single examples at the model layer: pruning masks and one example's model inputs.

Pruning is a head mask (L, H) of ones and zeros passed with each call through an
:class:`~t3vis.model.access.AttentionProbe`: the model object, which the app shares between
all sessions, is never modified, so pruning is reversible and private to whoever passes the
mask. A pruned head's attention probabilities are multiplied by zero, hence its context output
is zero (what Michel et al. 2019 call masking a head).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from t3vis.model.access import ModelBundle
from t3vis.model.encoding import collate, encode

Head = tuple[int, int]  # (layer, head), both 0-based


def head_mask(pruned: Iterable[Head], num_layers: int, num_heads: int) -> torch.Tensor:
    """A (L, H) mask: ones, with zeros at the pruned heads."""
    mask = torch.ones(num_layers, num_heads)  # (L, H)
    for layer, head in pruned:
        if not (0 <= layer < num_layers and 0 <= head < num_heads):
            raise ValueError(f"head ({layer}, {head}) is outside the {num_layers} x {num_heads} grid")
        mask[layer, head] = 0.0
    return mask


def encode_one(bundle: ModelBundle, text: str, text_pair: str | None = None) -> tuple[dict, list[str], bool]:
    """Model inputs (batch of one) for a text, its tokens, and whether it was truncated."""
    encoded = encode(bundle.tokenizer, [text], None if text_pair is None else [text_pair],
                     max_length=bundle.max_length)
    pad = bundle.pad_token_id
    inputs = collate(encoded, np.array([0]), pad_token_id=pad, device=bundle.device)
    tokens = bundle.tokenizer.convert_ids_to_tokens(encoded.input_ids[0])
    return inputs, tokens, bool(encoded.truncated[0])
