"""t-SNE of big sets: fitted on a sample and the rest placed by transform, against a full t-SNE.

    python bench/projection_scale.py [--points 100000] [--reference 50000] [--fit 25000]

Hidden-state-like points (64-D, 40 Gaussian clusters of different sizes and spreads, seeded) are laid out:

1. ``--reference`` points with a full t-SNE (openTSNE, as ingestion runs it) and with ``--fit`` of them fitted
   and the others placed by openTSNE's ``transform`` (t3vis.record.projection.tsne with ``fit_points``):
   time and quality of both on the same points;
2. ``--points`` points with the sample + transform path at ingestion's default fit size (50,000): time and
   quality.

Quality is k-NN preservation: the mean fraction of each point's 10 nearest neighbours in 64-D that are among
its 10 nearest in 2-D (over 2,000 random points). Last line: ``BENCH projection_scale tsne_s_full_50k=...
knn_full_50k=... tsne_s_sampled_50k=... knn_sampled_50k=... tsne_s_100k=... knn_preservation_100k=...``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.neighbors import NearestNeighbors

from t3vis.record.projection import TSNE_FIT_POINTS, tsne


def clustered_points(n: int, *, dims: int = 64, clusters: int = 40, seed: int = 0,
                     with_clusters: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """(n, dims) float32 points in Gaussian clusters of random sizes and spreads (and, with ``with_clusters``,
    each point's cluster (n,))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (clusters, dims))
    sizes = rng.dirichlet(np.ones(clusters))
    labels = rng.choice(clusters, n, p=sizes)
    spread = rng.uniform(0.5, 2.0, clusters)
    points = (centres[labels] + rng.normal(0, 1, (n, dims)) * spread[labels, None]).astype(np.float32)
    return (points, labels) if with_clusters else points


def cluster_agreement(coords: np.ndarray, clusters: np.ndarray, *, k: int = 10, queries: int = 2000,
                      seed: int = 0) -> float:
    """Mean share of each query point's k nearest neighbours in 2-D that belong to its own cluster: whether
    the layout keeps the clusters apart (inside a Gaussian cluster, which neighbours are nearest is noise,
    so k-NN preservation falls as the clusters get denser while the layout stays right)."""
    picked = np.random.default_rng(seed).choice(len(coords), min(queries, len(coords)), replace=False)
    near = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords[picked], return_distance=False)
    return float(np.mean([np.mean(clusters[row[1:]] == clusters[index]) for index, row in zip(picked, near)]))


def knn_preservation(features: np.ndarray, coords: np.ndarray, *, k: int = 10, queries: int = 2000,
                     seed: int = 0) -> float:
    """Mean share of each query point's k nearest neighbours in the features kept among its k nearest in 2-D."""
    picked = np.random.default_rng(seed).choice(len(features), min(queries, len(features)), replace=False)
    high = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features[picked], return_distance=False)
    low = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords[picked], return_distance=False)
    return float(np.mean([len(set(h[1:]) & set(l[1:])) / k for h, l in zip(high, low)]))


def timed_layout(features: np.ndarray, fit_points: int) -> tuple[float, float]:
    started = time.perf_counter()
    coords = tsne(features, fit_points=fit_points, seed=0)
    seconds = time.perf_counter() - started
    return seconds, knn_preservation(features, coords)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=50_000)
    parser.add_argument("--fit", type=int, default=25_000)
    args = parser.parse_args()
    reference = clustered_points(args.reference)
    full_s, full_knn = timed_layout(reference, fit_points=args.reference)
    print(f"full t-SNE of {args.reference} points: {full_s:.0f} s, k-NN preservation {full_knn:.3f}", flush=True)
    sampled_s, sampled_knn = timed_layout(reference, fit_points=args.fit)
    print(f"{args.fit} fitted + {args.reference - args.fit} placed: {sampled_s:.0f} s, k-NN preservation "
          f"{sampled_knn:.3f}", flush=True)
    big = clustered_points(args.points, seed=1)
    big_s, big_knn = timed_layout(big, fit_points=TSNE_FIT_POINTS)
    print(f"{args.points} points ({min(TSNE_FIT_POINTS, args.points)} fitted): {big_s:.0f} s, k-NN preservation "
          f"{big_knn:.3f}", flush=True)
    print(f"BENCH projection_scale tsne_s_full_50k={full_s:.0f} knn_full_50k={full_knn:.3f} "
          f"tsne_s_sampled_50k={sampled_s:.0f} knn_sampled_50k={sampled_knn:.3f} tsne_s_100k={big_s:.0f} "
          f"knn_preservation_100k={big_knn:.3f}")


if __name__ == "__main__":
    main()
