"""Accuracy and loss over a whole split with chosen heads pruned (the head view's evaluation button)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from t3vis.data.loading import ExampleSet
from t3vis.model.access import AttentionProbe, ModelBundle, run_with_probe
from t3vis.model.encoding import encode, iterate_batches
from t3vis.model.heads import Head, head_mask
from t3vis.progress import Progress, no_progress


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float  # mean cross-entropy
    n_examples: int


def evaluate(bundle: ModelBundle, examples: ExampleSet, *, pruned: Iterable[Head] = (), batch_size: int = 32,
             progress: Progress = no_progress) -> Evaluation:
    """Accuracy and mean loss over a split with the pruned heads masked (no gradient)."""
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    encoded = encode(bundle.tokenizer, examples.texts, examples.text_pairs, max_length=bundle.max_length)
    labels = torch.tensor(np.array(examples.labels), dtype=torch.long)  # (N,)
    pad = bundle.pad_token_id
    correct, loss, done = 0, 0.0, 0
    progress("evaluate", 0, len(examples))
    with torch.no_grad():
        for indices, inputs in iterate_batches(encoded, batch_size, pad_token_id=pad, device=bundle.device):
            output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
            logits = output.logits.float().cpu()  # (B, K)
            gold = labels[indices]
            correct += int((logits.argmax(-1) == gold).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
            done += len(indices)
            progress("evaluate", done, len(examples))
    return Evaluation(accuracy=correct / len(examples), loss=loss / len(examples), n_examples=len(examples))
