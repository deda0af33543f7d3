"""2-D layouts of a checkpoint's examples and units, each layer's t-SNE started from the previous checkpoint's layout.

Starting from the previous checkpoint's coordinates of the same points keeps points from jumping between
checkpoints (openTSNE's initialisation); units (sentences, words) are laid out as a sample drawn with the
run's seed, the same units at every checkpoint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from t3vis.progress import Progress
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.projection import MIN_TSNE_POINTS, project
from t3vis.store.database import Store
from t3vis.store.rows import projection_rows, unit_projection_rows

LAYOUT_TABLES = {  # the tables of 2-D layouts, and the columns that name their points
    "projections": ("example_id",),
    "unit_projections": ("example_id", "unit"),
}


def previous_layouts(store: Store, run_id: str, *, checkpoint: str, step: int | None,
                     config: IngestConfig) -> dict[str, pa.Table]:
    """The layouts of the run's checkpoint before ``step`` (same split and method; examples with the same pooling),
    by table: what the next checkpoint's t-SNE starts from. Columns layer, the point's key columns, x, y."""
    if config.projection == "none":
        return {}
    previous = store.previous_checkpoint(run_id, step=step, exclude=checkpoint)
    if previous is None:
        return {}
    found = {}
    for table, keys in LAYOUT_TABLES.items():
        pooling = "AND pooling = ?" if table == "projections" else ""
        rows = store.query(
            f"""SELECT layer, {', '.join(keys)}, x, y FROM {table}
                WHERE run_id = ? AND checkpoint = ? AND split = ? AND method = ? {pooling}""",
            [run_id, previous, config.split, config.projection, *([config.pooling] if pooling else [])],
        )
        if len(rows):
            found[table] = pa.Table.from_pandas(rows, preserve_index=False)
    return found


def layouts_of(record) -> dict[str, pa.Table]:
    """A computed checkpoint's (a ``CheckpointRecord``'s) layouts, as :func:`previous_layouts` gives them for the
    next checkpoint."""
    return {table: record.results.tables[table] for table in LAYOUT_TABLES if table in record.results.tables}


def sample_units(counts: list[int], config: IngestConfig, *, first: np.ndarray | None = None) -> np.ndarray:
    """(M, 2) (example index, unit) of the kept units to lay out in 2-D (``counts``: kept units per example):
    all of them, or ``config.unit_points`` drawn with the seed (the same ones at every checkpoint of the split),
    those where ``first`` (M,) is true before the others."""
    if config.projection == "none" or config.unit_points <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.array([(index, unit) for index, count in enumerate(counts) for unit in range(count)],
                     dtype=np.int64).reshape(-1, 2)
    if len(pairs) <= config.unit_points:
        return pairs
    rng = np.random.default_rng(config.seed)
    if first is None:
        return pairs[np.sort(rng.choice(len(pairs), config.unit_points, replace=False))]
    order = np.concatenate([rng.permutation(np.flatnonzero(first)), rng.permutation(np.flatnonzero(~first))])
    return pairs[np.sort(order[: config.unit_points])]


def units_by_example(laid_out: np.ndarray, n: int) -> list[tuple[list[int], np.ndarray]]:
    """For each of n examples: (its laid-out unit indices, their rows in ``laid_out``)."""
    found: list[tuple[list[int], list[int]]] = [([], []) for _ in range(n)]
    for row, (index, unit) in enumerate(laid_out):
        found[index][0].append(int(unit))
        found[index][1].append(row)
    return [(units, np.array(rows, dtype=np.int64)) for units, rows in found]


def unit_projections(example_ids: np.ndarray, laid_out: np.ndarray, vectors: dict[int, np.ndarray],
                     config: IngestConfig, progress: Progress, previous: pa.Table | None, *,
                     what: str) -> pa.Table | None:
    """``unit_projections`` rows of the laid-out units' vectors (layer -> (M, D)); None when too few to lay out.
    ``what`` names the units in the progress phase ("sentences", "words")."""
    if len(laid_out) < (MIN_TSNE_POINTS if config.projection == "tsne" else 2):
        return None  # too few units for a layout (the examples' own layout says what is wrong)
    keys = {"example_id": np.asarray(example_ids)[laid_out[:, 0]], "unit": laid_out[:, 1]}
    layouts = layer_layouts(keys, vectors, config, progress, previous, phase=f"{config.projection} of {what}")
    return pa.concat_tables([unit_projection_rows(keys["example_id"], keys["unit"], coords, layer=layer,
                                                  method=config.projection) for layer, coords in layouts])


def _layout_of(previous: pd.DataFrame | None, layer: int, keys: dict[str, np.ndarray]) -> np.ndarray | None:
    """A layer's previous layout of these points (N, 2), or None when it lacks any of them.

    ``keys`` names the points: {"example_id": (N,)} or {"example_id": (N,), "unit": (N,)}."""
    if previous is None:
        return None
    rows = previous[previous.layer == layer]
    n = len(next(iter(keys.values())))
    if len(rows) != n:
        return None
    index = pd.MultiIndex.from_arrays(list(keys.values()), names=list(keys))
    coords = rows.set_index(list(keys)).reindex(index)
    if coords[["x", "y"]].isna().any().any():
        return None
    return coords[["x", "y"]].to_numpy(dtype=np.float64)


def layer_layouts(
    keys: dict[str, np.ndarray], vectors: dict[int, np.ndarray], config: IngestConfig, progress: Progress,
    previous: pa.Table | None, *, phase: str,
) -> list[tuple[int, np.ndarray]]:
    """(layer, (N, 2) coordinates) of each layer's vectors (N, D), each t-SNE started from the previous
    checkpoint's layout of the same points (``previous``: columns layer, the key columns, x, y)."""
    layouts = []
    previous_frame = None if previous is None else previous.select(["layer", *keys, "x", "y"]).to_pandas()
    for done, (layer, features) in enumerate(sorted(vectors.items())):
        progress(phase, done, len(vectors))
        start = _layout_of(previous_frame, layer, keys)
        layouts.append((layer, project(features, method=config.projection, previous=start, seed=config.seed,
                                       fit_points=config.tsne_fit_points)))
    progress(phase, len(vectors), len(vectors))
    return layouts


def example_projections(
    example_ids: np.ndarray, pooled: dict[int, np.ndarray], config: IngestConfig, progress: Progress,
    previous: pa.Table | None,
) -> pa.Table | None:
    """``projections`` rows of each layer's pooled example vectors (layer -> (N, D)); None without a layout."""
    if config.projection == "none":
        return None
    layouts = layer_layouts({"example_id": example_ids}, pooled, config, progress, previous,
                            phase=f"{config.projection} layouts")
    return pa.concat_tables([projection_rows(example_ids, coords, layer=layer, method=config.projection,
                                             pooling=config.pooling) for layer, coords in layouts])
