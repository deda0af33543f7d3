"""Validation statistics for the head-importance estimate, used by benchmarks and tests: the importance
over a set of examples, the loss increase from masking each head alone (the ground truth the
first-order estimate approximates), and Spearman's rank correlation between them."""

from __future__ import annotations

import numpy as np

from t3vis.analysis.evaluation import evaluate
from t3vis.data.loading import ExampleSet
from t3vis.model.access import ModelBundle
from t3vis.progress import Progress, no_progress
from t3vis.record.ingest import IngestConfig, sample_importance


def importance_on(bundle: ModelBundle, examples: ExampleSet, *, batch_size: int = 32) -> np.ndarray:
    """(L, H) first-order importance over all the examples: the mean of per-example |dL(x)/dm|, computed as
    ingestion computes it."""
    importance, _ = sample_importance(bundle, examples, IngestConfig(batch_size=batch_size, importance_examples=-1))
    return importance


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
