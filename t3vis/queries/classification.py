"""The frames of a sequence-classification run: one row per example (the read side of its task seam)."""

from __future__ import annotations

from t3vis.queries.frames import (BASE_ATTRIBUTES, DATA_MAP_ATTRIBUTES, PREDICTION_ATTRIBUTES, TEXT_PREVIEW,
                                  Attribute, TaskFrames, View, example_layout, extra_select, splits)
from t3vis.store.database import Store


# what the training forward passes of the last epoch said about an example of a split with dynamics
LAST_EPOCH_ATTRIBUTES = (
    Attribute("last_prediction", "last-epoch prediction", "categorical"),
    Attribute("last_correct", "last-epoch correct", "categorical"),
)


def attributes(store: Store, view: View, extras: list[Attribute]) -> list[Attribute]:
    """The example's label, length and truncation; its prediction with a checkpoint; its Data Map statistics
    and last-epoch prediction when the split has training dynamics; the dataset's extra columns."""
    info = splits(store, view.run_id).set_index("split").loc[view.split]
    found = list(BASE_ATTRIBUTES)
    if view.checkpoint is not None and info.has_predictions:
        found += PREDICTION_ATTRIBUTES
    if info.has_dynamics:
        found += DATA_MAP_ATTRIBUTES + LAST_EPOCH_ATTRIBUTES
    return found + extras


def frame_sql(store: Store, view: View) -> tuple[str, list]:
    """SQL and parameters of the unfiltered frame: the examples placed by a projection, or by the Data Map."""
    extra_sql, extra_params = extra_select(store, view)
    position, layout_join, layout_params, require = example_layout(view)
    sql = f"""
        WITH dm AS (SELECT * FROM data_map WHERE run_id = ? AND split = ?),
        last AS (SELECT example_id, pred, correct FROM training_dynamics
                 WHERE run_id = ? AND split = ? AND unit = 0
                   AND epoch = (SELECT max(epoch) FROM training_dynamics WHERE run_id = ? AND split = ?))
        SELECT e.example_id, {position},
               left(e.text, {TEXT_PREVIEW}) AS text,
               e.label_name AS label, e.label AS label_id, e.n_tokens, e.truncated,
               p.pred, r.label_names[p.pred + 1] AS prediction, p.correct, p.loss, p.confidence, p.gold_prob,
               d.region, d.confidence AS dm_confidence, d.variability, d.correctness, d.forgetting_events,
               r.label_names[l.pred + 1] AS last_prediction, l.correct AS last_correct
               {', ' + extra_sql if extra_sql else ''}
        FROM examples e
        JOIN runs r ON r.run_id = e.run_id
        {layout_join}
        LEFT JOIN predictions p ON p.run_id = e.run_id AND p.split = e.split AND p.example_id = e.example_id
                               AND p.checkpoint = ?
        LEFT JOIN dm d ON d.example_id = e.example_id
        LEFT JOIN last l ON l.example_id = e.example_id
        WHERE e.run_id = ? AND e.split = ? AND {require}
    """
    cte_params = [view.run_id, view.split] * 3  # dm; last (and its last epoch)
    return sql, [*cte_params, *extra_params, *layout_params, view.checkpoint, view.run_id, view.split]


def frame_order(view: View) -> tuple[str, ...]:
    return ("example_id",)


def example_details(store: Store, run_id: str, split: str, example_id: int, checkpoint: str | None) -> dict | None:
    """Everything about one example: full text, label, and the checkpoint's probabilities per label."""
    rows = store.query(
        """SELECT e.example_id, e.split, e.text, e.text_pair, e.label, e.label_name, e.n_tokens, e.n_tokens_full,
                  e.truncated, e.extra, r.label_names, p.probs, p.pred, p.loss
           FROM examples e JOIN runs r USING (run_id)
           LEFT JOIN predictions p ON p.run_id = e.run_id AND p.split = e.split AND p.example_id = e.example_id
                                  AND p.checkpoint = ?
           WHERE e.run_id = ? AND e.split = ? AND e.example_id = ?""",
        [checkpoint, run_id, split, int(example_id)],
    )
    if rows.empty:
        return None
    return rows.iloc[0].to_dict()


FRAMES = TaskFrames(attributes=attributes, frame_sql=frame_sql, frame_order=frame_order, details=example_details)
