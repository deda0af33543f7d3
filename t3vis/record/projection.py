"""2-D layouts of hidden states: t-SNE (openTSNE) and PCA.

Both can start from the previous checkpoint's layout so that points do not jump between
checkpoints: t-SNE continues from the previous coordinates (no early exaggeration), PCA is
rotated and reflected onto them (orthogonal Procrustes).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from t3vis.errors import DataError, option

METHODS = ("tsne", "pca")
MIN_TSNE_POINTS = 10


def pca(features: np.ndarray, *, reference: np.ndarray | None = None) -> np.ndarray:
    """First two principal components of features (N, D) -> (N, 2), aligned to ``reference`` (N, 2) if given."""
    centred = features - features.mean(0, keepdims=True)  # (N, D)
    _, _, components = np.linalg.svd(centred, full_matrices=False)  # (min(N, D), D)
    coords = centred @ components[:2].T  # (N, 2)
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    if reference is not None:
        coords = _procrustes(coords, reference)
    return coords.astype(np.float32)


def _procrustes(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotate/reflect coords (N, 2) to best match reference (N, 2); scale and centre are kept."""
    left, _, right = np.linalg.svd(coords.T @ (reference - reference.mean(0)))  # (2, 2) each
    return coords @ (left @ right)


def tsne(
    features: np.ndarray,
    *,
    init: np.ndarray | None = None,
    perplexity: float = 30.0,
    seed: int = 0,
    n_jobs: int | None = None,
) -> np.ndarray:
    """openTSNE embedding of features (N, D) -> (N, 2), started from ``init`` (N, 2) when given."""
    from openTSNE import TSNE  # imported here: it takes a second and only ingestion needs it

    n = len(features)
    if n < MIN_TSNE_POINTS:
        raise DataError(
            f"t-SNE needs at least {MIN_TSNE_POINTS} examples, got {n}; use {option('projection', 'pca')} for "
            "tiny sets."
        )
    options = {}
    if init is None:
        start = "pca"
    else:
        # Continue from the previous layout at its own scale, without the early-exaggeration phase that
        # would first collapse and re-expand it: points move only as far as their neighbourhoods changed.
        start = np.ascontiguousarray(init, dtype=np.float64)
        options["early_exaggeration_iter"] = 0
    model = TSNE(
        perplexity=min(perplexity, (n - 1) / 3),
        initialization=start,
        **options,
        random_state=seed,
        n_jobs=n_jobs or os.cpu_count() or 1,
        verbose=False,
    )
    # openTSNE warns about any initialisation wider than its own tiny one; ours is wide on purpose.
    quiet = logging.getLogger("openTSNE.tsne")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        coords = np.asarray(model.fit(np.ascontiguousarray(features, dtype=np.float32)), dtype=np.float64)
    finally:
        quiet.setLevel(level)
    if init is not None:
        # t-SNE is blind to rotation and reflection; turn the result to face the way the previous one did.
        coords = _procrustes(coords - coords.mean(0), np.asarray(init, dtype=np.float64)) + coords.mean(0)
    return coords.astype(np.float32)


def project(
    features: np.ndarray, *, method: str, previous: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Lay out features (N, D) in 2-D with ``method``; ``previous`` (N, 2) is the last checkpoint's layout."""
    if method == "tsne":
        return tsne(features, init=previous, seed=seed)
    if method == "pca":
        return pca(features, reference=previous)
    raise ValueError(f"projection method must be one of {METHODS}, not {method!r}")
