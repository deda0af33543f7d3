"""A store that grows while the app follows it: for the Follow training tests (unit, app, integration, browser).

The growth goes through the store's own write methods, one transaction each, as an ingestion and the
Trainer callback write.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from t3vis.fixtures.synthetic_store import SyntheticConfig
from t3vis.store.database import CheckpointInfo, CheckpointResults, Store
from t3vis.store.rows import (ATTENTION_SCALARS, attention_rows, dynamics_rows, importance_rows, prediction_rows,
                              projection_rows)

# A small synthetic run to start from: 2 checkpoints, 2 epochs of training dynamics.
CONFIG = SyntheticConfig(n_examples=60, n_train=40, num_layers=3, num_heads=4, n_checkpoints=2, epochs=2)


def grow_checkpoint(store: Store, name: str, *, seed: int) -> None:
    """Write one more checkpoint of the synthetic run (its validation predictions, layouts, head importance and
    attention) in one transaction, as an ingestion does."""
    rng = np.random.default_rng(seed)
    run = store.run(CONFIG.run_id)
    gold = store.query("SELECT label FROM examples WHERE run_id = ? AND split = 'validation' ORDER BY example_id",
                       [run.run_id]).label.to_numpy()
    ids, k = np.arange(len(gold)), len(run.label_names)
    logits = rng.normal(0, 1, size=(len(gold), k))  # (N, K)
    logits[ids, gold] += 4.0
    layouts = [projection_rows(ids, rng.normal(0, 10, size=(len(gold), 2)), layer=layer, method="tsne",
                               pooling="cls") for layer in CONFIG.layers]
    shape = (run.num_layers, run.num_heads)
    patterns = rng.dirichlet(np.ones(CONFIG.bins), size=(*shape, CONFIG.bins))  # (L, H, bins, bins)
    count = store.scalar("SELECT count(*) FROM checkpoints WHERE run_id = ?", [run.run_id])
    store.write_checkpoint(
        run, CheckpointInfo(run_id=run.run_id, checkpoint=name, step=100 * (count + 1), epoch=float(count + 1)),
        CheckpointResults(split="validation", tables={
            "predictions": prediction_rows(ids, logits, gold),
            "projections": pa.concat_tables(layouts),
            "head_importance": importance_rows(rng.gamma(1.0, 1.0, size=shape), len(gold)),
            "attention_patterns": attention_rows(patterns, {scalar: rng.uniform(0, 0.5, shape)
                                                            for scalar in ATTENTION_SCALARS}, len(gold)),
        }))


def grow_epoch(store: Store, *, seed: int) -> int:
    """Write the next epoch of training dynamics (the Data Map is computed again); returns the epoch."""
    rng = np.random.default_rng(seed)
    run = store.run(CONFIG.run_id)
    gold = store.query("SELECT label FROM examples WHERE run_id = ? AND split = 'train' ORDER BY example_id",
                       [run.run_id]).label.to_numpy()
    epoch = int(store.scalar("SELECT max(epoch) FROM training_dynamics WHERE run_id = ?", [run.run_id])) + 1
    logits = rng.normal(0, 1, size=(len(gold), len(run.label_names)))  # (N, K)
    logits[np.arange(len(gold)), gold] += 5.0
    store.write_training_dynamics(run, "train", epoch, dynamics_rows(np.arange(len(gold)), logits, gold))
    return epoch
