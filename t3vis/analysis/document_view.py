"""Live analysis of one example for the Instance views: every head's attention and the outputs' probabilities
(a summarizer's sentences, a token classifier's words)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from t3vis.attribution.base import ExampleInputs
from t3vis.model.access import AttentionProbe, ModelBundle, eval_mode, run_with_probe
from t3vis.model.heads import Head, head_mask


def _attentions_and_logits(bundle: ModelBundle, example: ExampleInputs,
                           pruned: Iterable[Head]) -> tuple[np.ndarray, torch.Tensor]:
    """Every head's attention (L, H, T, T) as float16, and the model's logits for the example (batch of one)."""
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    with eval_mode(bundle.model), torch.no_grad():
        output, probe = run_with_probe(bundle.model, AttentionProbe(head_mask=mask, record=True), **example.inputs)
    attentions = probe.stacked_attentions()[:, 0].to(torch.float16).cpu().numpy()  # (L, H, T, T)
    return attentions, output.logits[0].float().cpu()


def document_attentions(bundle: ModelBundle, example: ExampleInputs,
                        pruned: Iterable[Head] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Every head's attention (L, H, T, T) as float16, and each kept sentence's probability (S,), with the
    pruned heads masked."""
    attentions, logits = _attentions_and_logits(bundle, example, pruned)  # logits (S,)
    return attentions, torch.sigmoid(logits).numpy()


def word_attentions(bundle: ModelBundle, example: ExampleInputs,
                    pruned: Iterable[Head] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Every head's attention (L, H, T, T) as float16, and each kept word's tag probabilities (W, K) at its first
    piece, with the pruned heads masked."""
    attentions, logits = _attentions_and_logits(bundle, example, pruned)  # logits (T, K)
    return attentions, torch.softmax(logits[example.first_pieces], -1).numpy()
