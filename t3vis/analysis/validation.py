"""Validation statistics for the head-importance estimate, used by benchmarks and tests: the importance
over a set of examples, the loss increase from masking each head alone (the ground truth the
first-order estimate approximates), and Spearman's rank correlation between them."""

from __future__ import annotations

import numpy as np
import torch

from t3vis.analysis.evaluation import evaluate
from t3vis.data.loading import ExampleSet
from t3vis.model.access import ModelBundle
from t3vis.model.encoding import encode, iterate_batches
from t3vis.progress import Progress, no_progress
from t3vis.record.head_importance import head_mask_gradient


def importance_on(bundle: ModelBundle, examples: ExampleSet, *, batch_size: int = 32) -> np.ndarray:
    """(L, H) first-order importance over the examples: the mean of per-example |dL(x)/dm| (as at ingest)."""
    encoded = encode(bundle.tokenizer, examples.texts, examples.text_pairs, max_length=bundle.max_length)
    labels = torch.tensor(np.array(examples.labels), dtype=torch.long)  # (N,)
    pad = bundle.pad_token_id
    total = torch.zeros(bundle.num_layers, bundle.num_heads, dtype=torch.float64)
    for indices, inputs in iterate_batches(encoded, batch_size, pad_token_id=pad, device=bundle.device):
        _, gradient = head_mask_gradient(bundle.model, inputs, labels[indices].to(bundle.device))
        total += gradient.abs().double().sum(0)  # (L, H)
    return (total / len(examples)).numpy()


def ablation_loss_increase(bundle: ModelBundle, examples: ExampleSet, *, batch_size: int = 32,
                           progress: Progress = no_progress) -> np.ndarray:
    """(L, H): the increase of mean validation loss when each head alone is masked (the ground truth
    that the first-order importance estimates)."""
    base = evaluate(bundle, examples, batch_size=batch_size).loss
    result = np.zeros((bundle.num_layers, bundle.num_heads))
    total = bundle.num_layers * bundle.num_heads
    for index in range(total):
        layer, head = divmod(index, bundle.num_heads)
        result[layer, head] = evaluate(bundle, examples, pruned=[(layer, head)], batch_size=batch_size).loss - base
        progress("ablation", index + 1, total)
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays of the same size (average ranks for ties)."""
    def ranks(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        order = np.argsort(values, kind="stable")
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        for value in np.unique(values):  # ties share their mean rank
            tied = values == value
            ranked[tied] = ranked[tied].mean()
        return ranked

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])
