"""2-D layouts of hidden states: t-SNE (openTSNE) and PCA.

Both can start from the previous checkpoint's layout so that points do not jump between
checkpoints: t-SNE continues from the previous coordinates (no early exaggeration), PCA is
rotated and reflected onto them (orthogonal Procrustes).

Above ``fit_points`` points (default :data:`TSNE_FIT_POINTS`), t-SNE is fitted on a random sample of that
size and the other points are placed into the fitted layout with openTSNE's ``transform`` (each starts at
the median of its nearest fitted neighbours and is optimised against the fixed layout): a full t-SNE of a
million points would take hours on a laptop. The previous checkpoint's layout still starts the fit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np

from t3vis.errors import DataError, option

METHODS = ("tsne", "pca")
MIN_TSNE_POINTS = 10
TSNE_FIT_POINTS = 50_000  # above this many points t-SNE is fitted on a sample and the rest placed by transform


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
    return coords @ _procrustes_rotation(coords, reference)


def _procrustes_rotation(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The (2, 2) rotation/reflection that best turns coords (N, 2) onto reference (N, 2)."""
    left, _, right = np.linalg.svd(coords.T @ (reference - reference.mean(0)))  # (2, 2) each
    return left @ right


def tsne(
    features: np.ndarray,
    *,
    init: np.ndarray | None = None,
    perplexity: float = 30.0,
    seed: int = 0,
    n_jobs: int | None = None,
    fit_points: int = TSNE_FIT_POINTS,
) -> np.ndarray:
    """openTSNE embedding of features (N, D) -> (N, 2), started from ``init`` (N, 2) when given; above
    ``fit_points`` points fitted on a sample of that size, the others placed by ``transform``."""
    n = len(features)
    if n > fit_points >= MIN_TSNE_POINTS:
        return _tsne_of_sample(features, init=init, perplexity=perplexity, seed=seed, n_jobs=n_jobs,
                               fit_points=fit_points)
    return _fitted(features, init=init, perplexity=perplexity, seed=seed, n_jobs=n_jobs)[0].astype(np.float32)


def _tsne_of_sample(features: np.ndarray, *, init: np.ndarray | None, perplexity: float, seed: int,
                    n_jobs: int | None, fit_points: int) -> np.ndarray:
    """t-SNE fitted on ``fit_points`` points drawn with ``seed``; the rest placed into it by openTSNE's transform."""
    n = len(features)
    fitted = np.zeros(n, dtype=bool)
    fitted[np.random.default_rng(seed).choice(n, fit_points, replace=False)] = True
    coords = np.empty((n, 2), dtype=np.float64)
    coords[fitted], embedding, orient = _fitted(features[fitted], init=None if init is None else init[fitted],
                                                perplexity=perplexity, seed=seed, n_jobs=n_jobs)
    rest = np.ascontiguousarray(features[~fitted], dtype=np.float32)
    for start in range(0, len(rest), TRANSFORM_CHUNK):  # the neighbour search's memory grows with the chunk
        placed = np.asarray(embedding.transform(rest[start:start + TRANSFORM_CHUNK]), dtype=np.float64)
        coords[np.flatnonzero(~fitted)[start:start + TRANSFORM_CHUNK]] = orient(placed)  # as the sample was turned
    return coords.astype(np.float32)


TRANSFORM_CHUNK = 100_000  # points placed by one transform call


def _fitted(features: np.ndarray, *, init: np.ndarray | None, perplexity: float, seed: int,
            n_jobs: int | None) -> tuple[np.ndarray, object, Callable[[np.ndarray], np.ndarray]]:
    """A full t-SNE of features (N, D): (coordinates (N, 2), the openTSNE embedding, the map from the
    embedding's frame to the coordinates' frame: turned to face ``init`` when given)."""
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
        embedding = model.fit(np.ascontiguousarray(features, dtype=np.float32))
    finally:
        quiet.setLevel(level)
    raw = np.asarray(embedding, dtype=np.float64)  # (N, 2)
    centre, rotation = raw.mean(0), np.eye(2)
    if init is not None:
        # t-SNE is blind to rotation and reflection; turn the result to face the way the previous one did.
        rotation = _procrustes_rotation(raw - centre, np.asarray(init, dtype=np.float64))

    def orient(points: np.ndarray) -> np.ndarray:
        return (points - centre) @ rotation + centre

    return orient(raw), embedding, orient


def project(
    features: np.ndarray, *, method: str, previous: np.ndarray | None = None, seed: int = 0,
    fit_points: int = TSNE_FIT_POINTS,
) -> np.ndarray:
    """Lay out features (N, D) in 2-D with ``method``; ``previous`` (N, 2) is the last checkpoint's layout."""
    if method == "tsne":
        return tsne(features, init=previous, seed=seed, fit_points=fit_points)
    if method == "pca":
        return pca(features, reference=previous)
    raise ValueError(f"projection method must be one of {METHODS}, not {method!r}")
