"""What a store holds, run by run: the numbers `t3vis info` prints."""

from __future__ import annotations

import pandas as pd

from t3vis.store.database import Store


def checkpoint_summary(store: Store, run_id: str) -> pd.DataFrame:
    """One row per checkpoint of the run, in training order: checkpoint, step, epoch, predictions (examples, a
    summarizer's documents or a tagger's sentences, with the model's output), projections."""
    return store.query(
        """SELECT c.checkpoint, c.step, c.epoch,
                  (SELECT count(*) FROM predictions p WHERE p.run_id = c.run_id AND p.checkpoint = c.checkpoint)
                  + (SELECT count(DISTINCT (u.split, u.example_id)) FROM unit_predictions u
                     WHERE u.run_id = c.run_id AND u.checkpoint = c.checkpoint) AS predictions,
                  (SELECT count(*) FROM projections p WHERE p.run_id = c.run_id AND p.checkpoint = c.checkpoint)
                      AS projections
           FROM checkpoints c WHERE c.run_id = ? ORDER BY c.step NULLS LAST, c.ingested_at""",
        [run_id],
    )


def dynamics_row_count(store: Store, run_id: str) -> int:
    """Rows of training dynamics the run has (training examples x epochs)."""
    return int(store.scalar("SELECT count(*) FROM training_dynamics WHERE run_id = ?", [run_id]))
