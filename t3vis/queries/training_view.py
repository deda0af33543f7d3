"""Queries behind the Training page: how the model changed between checkpoints (the paper's task T6)."""

from __future__ import annotations

import pandas as pd

from t3vis.store.database import Store


def learning_curves(store: Store, run_id: str) -> pd.DataFrame:
    """Accuracy and mean loss over training: columns source, x (epoch), checkpoint, accuracy, loss.

    ``source`` is ``"<split> (evaluation)"`` for checkpoint predictions, at the checkpoint's epoch (or
    step when the epoch is unknown), and ``"train (dynamics)"`` for the training forward passes, at
    epoch + 1 (the end of that epoch).
    """
    return store.query(
        """SELECT p.split || ' (evaluation)' AS source, coalesce(c.epoch, c.step) AS x, p.checkpoint,
                  avg(p.correct::INT) AS accuracy, avg(p.loss) AS loss
           FROM predictions p JOIN checkpoints c USING (run_id, checkpoint)
           WHERE p.run_id = ? GROUP BY ALL
           UNION ALL
           SELECT 'train (dynamics)' AS source, epoch + 1 AS x, NULL AS checkpoint,
                  avg(correct::INT) AS accuracy, avg(loss) AS loss
           FROM training_dynamics WHERE run_id = ? GROUP BY ALL
           UNION ALL
           SELECT u.split || CASE WHEN r.task = 'token-classification' THEN ' (evaluation, words)'
                                  ELSE ' (evaluation, sentences)' END AS source,
                  coalesce(c.epoch, c.step) AS x, u.checkpoint, avg(u.correct::INT) AS accuracy, avg(u.loss) AS loss
           FROM unit_predictions u JOIN checkpoints c USING (run_id, checkpoint) JOIN runs r USING (run_id)
           WHERE u.run_id = ? GROUP BY ALL
           ORDER BY source, x""",
        [run_id, run_id, run_id],
    )


def prediction_splits(store: Store, run_id: str) -> list[str]:
    """The splits the run has checkpoint predictions for."""
    return sorted(store.query("SELECT DISTINCT split FROM predictions WHERE run_id = ?", [run_id]).split)


def per_class_accuracy(store: Store, run_id: str, split: str) -> pd.DataFrame:
    """Accuracy of each gold label at each checkpoint: checkpoint, x (epoch or step), label, n, accuracy."""
    return store.query(
        """SELECT p.checkpoint, coalesce(c.epoch, c.step) AS x, e.label_name AS label, count(*) AS n,
                  avg(p.correct::INT) AS accuracy
           FROM predictions p JOIN checkpoints c USING (run_id, checkpoint)
           JOIN examples e USING (run_id, split, example_id)
           WHERE p.run_id = ? AND p.split = ? GROUP BY ALL ORDER BY x, label""",
        [run_id, split],
    )


def flipped_examples(store: Store, run_id: str, split: str, before: str, after: str) -> pd.DataFrame:
    """Examples whose prediction changed from checkpoint ``before`` to ``after``.

    Columns: example_id, label, pred_before, pred_after, change ('fixed', 'broken', 'changed'),
    loss_before, loss_after, text.
    """
    return store.query(
        """SELECT a.example_id, e.label_name AS label, r.label_names[a.pred + 1] AS pred_before,
                  r.label_names[b.pred + 1] AS pred_after,
                  CASE WHEN b.correct AND NOT a.correct THEN 'fixed'
                       WHEN a.correct AND NOT b.correct THEN 'broken' ELSE 'changed' END AS change,
                  a.loss AS loss_before, b.loss AS loss_after, e.text
           FROM predictions a
           JOIN predictions b ON b.run_id = a.run_id AND b.split = a.split AND b.example_id = a.example_id
                             AND b.checkpoint = ?
           JOIN examples e ON e.run_id = a.run_id AND e.split = a.split AND e.example_id = a.example_id
           JOIN runs r ON r.run_id = a.run_id
           WHERE a.run_id = ? AND a.split = ? AND a.checkpoint = ? AND a.pred <> b.pred
           ORDER BY change, abs(b.loss - a.loss) DESC""",
        [after, run_id, split, before],
    )
