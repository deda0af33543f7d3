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


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (N,) for the boolean ``positive`` (N,).

    The Mann-Whitney statistic on average ranks: the chance that a random positive scores above a
    random negative, ties counting one half.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1:
        raise ValueError(f"scores and positive must both have shape (N,), got {scores.shape} and {positive.shape}")
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative example")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return _auroc(scores, positive, n_pos, n_neg)


def _auroc(scores: np.ndarray, positive: np.ndarray, n_pos: int, n_neg: int) -> float:
    _, tie_group, group_size = np.unique(scores, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(group_size)  # (G,) 1-based rank of each tie group's last member
    mean_rank = last_rank - (group_size - 1) / 2.0  # (G,) average rank of the group
    ranks = mean_rank[tie_group]  # (N,)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
