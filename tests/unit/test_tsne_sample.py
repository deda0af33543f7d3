"""t-SNE of big sets: fitted on a sample, the other points placed into that layout by openTSNE's transform."""

from __future__ import annotations

import numpy as np

from t3vis.record.ingest_config import IngestConfig
from t3vis.record.projection import project, tsne


def _clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points (n, 16) in 4 well separated Gaussian clusters, and their cluster ids."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    centres = rng.normal(0, 8, (4, 16))
    return (centres[labels] + rng.normal(0, 1, (n, 16))).astype(np.float32), labels


def test_points_beyond_the_sample_land_among_their_own_cluster():
    features, labels = _clusters(900)
    coords = tsne(features, fit_points=300, seed=1, n_jobs=1)
    assert coords.shape == (900, 2) and np.isfinite(coords).all()
    fitted = np.zeros(900, dtype=bool)
    fitted[np.random.default_rng(1).choice(900, 300, replace=False)] = True  # the sample tsne draws
    placed = np.flatnonzero(~fitted)
    distances = ((coords[placed][:, None] - coords[fitted][None]) ** 2).sum(-1)  # (placed, fitted)
    nearest = np.flatnonzero(fitted)[distances.argmin(1)]
    assert np.mean(labels[nearest] == labels[placed]) > 0.97  # transform put them next to their own kind


def test_the_previous_checkpoints_layout_still_starts_and_orients_a_sampled_layout():
    features, _ = _clusters(600)
    first = tsne(features, fit_points=200, seed=0, n_jobs=1)
    moved = features + np.random.default_rng(5).normal(0, 0.05, features.shape).astype(np.float32)  # a bit trained
    second = tsne(moved, init=first, fit_points=200, seed=0, n_jobs=1)
    # continued from the first layout: points stay near where they were (relative to the layout's size)
    spread = np.linalg.norm(first - first.mean(0), axis=1).mean()
    assert np.median(np.linalg.norm(second - first, axis=1)) < 0.25 * spread


def test_ingestion_passes_its_setting_and_small_sets_are_fitted_whole():
    assert IngestConfig().tsne_fit_points == 50_000
    features, _ = _clusters(120)
    whole = project(features, method="tsne", seed=3)
    assert np.array_equal(whole, tsne(features, seed=3, fit_points=10_000))  # under the threshold: one full fit
