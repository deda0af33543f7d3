"""Queries behind the exploration views: one row per point with every attribute, filtered in SQL.

The app's Projection view and Data Table read :func:`example_frame`. What a point is, and which
attributes it has, is the run's task's business (:data:`TASK_FRAMES`, the read side of the task
seam): for sequence classification an example of a split, joined with one checkpoint's predictions,
the Data Map (when the split has training dynamics), the dataset's extra columns and the 2-D layout
to draw (a t-SNE/PCA projection of one layer, or the Data Map itself: x = variability,
y = confidence); for extractive summarization a document or one of its sentences; for generation a
prompt with the checkpoint's scores of its completions (:mod:`t3vis.queries.generation`).
Filters become a parameterised WHERE clause; column names are checked against the known
attributes before they are quoted into SQL, values are always parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from t3vis.queries import classification, generation, summaries, tagging
from t3vis.queries.frames import (BASE_ATTRIBUTES, DATA_MAP, DATA_MAP_ATTRIBUTES, PREDICTION_ATTRIBUTES,
                                  TEXT_PREVIEW, Attribute, Filter, RangeFilter, TaskFrames, ValuesFilter, View,
                                  extra_attributes, extra_columns, extra_select, layouts, quote_identifier, splits,
                                  unit_layouts)
from t3vis.store.database import Store
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, GENERATION, SEQUENCE_CLASSIFICATION, TASKS, TOKEN_CLASSIFICATION

__all__ = [  # the frames' parts are re-exported: pages and tests read them here
    "BASE_ATTRIBUTES", "DATA_MAP", "DATA_MAP_ATTRIBUTES", "HEAD_FUNCTIONS", "IMPORTANCE_COLUMNS", "IMPORTANCE_SHORT",
    "PREDICTION_ATTRIBUTES", "TASK_FRAMES", "TEXT_PREVIEW", "Attribute", "Filter", "RangeFilter", "TaskFrames",
    "ValuesFilter", "View", "attention_patterns", "attribute_summary", "attributes", "example_details",
    "example_frame", "extra_columns", "frame_size", "extra_select", "filter_frame", "head_functions", "head_importance",
    "head_stats", "layouts", "run_task", "splits", "task_frames", "unit_layouts",
]

TASK_FRAMES: dict[str, TaskFrames] = {
    SEQUENCE_CLASSIFICATION: classification.FRAMES,
    EXTRACTIVE_SUMMARIZATION: summaries.FRAMES,
    TOKEN_CLASSIFICATION: tagging.FRAMES,
    GENERATION: generation.FRAMES,
}


def run_task(store: Store, run_id: str) -> str:
    """The run's task (runs.task)."""
    return store.scalar("SELECT task FROM runs WHERE run_id = ?", [run_id]) or SEQUENCE_CLASSIFICATION


def task_frames(store: Store, run_id: str) -> TaskFrames:
    """How the run's task makes its frames."""
    task = run_task(store, run_id)
    if task not in TASK_FRAMES:
        raise ValueError(f"Run {run_id!r} has task {task!r}, which this version of t3vis does not show "
                         f"({', '.join(TASKS)}).")
    return TASK_FRAMES[task]


def attributes(store: Store, view: View) -> list[Attribute]:
    """Every attribute the example frame of this view has."""
    if view.split not in set(splits(store, view.run_id).split):
        return []
    extras = [attribute for _, attribute, _ in extra_attributes(store, view)]
    return task_frames(store, view.run_id).attributes(store, view, extras)


def example_frame(store: Store, view: View, filters: Sequence[Filter] = (), *,
                  known: Sequence[Attribute] | None = None) -> pd.DataFrame:
    """One row per point of the view that passes the filters.

    Columns: example_id (and ``unit`` for a unit of an example), x, y (the layout), text (shortened to
    TEXT_PREVIEW characters), and every attribute of :func:`attributes` (prediction columns are NULL
    without a checkpoint, Data Map columns NULL without training dynamics). Points without a position
    in the chosen layout are left out.
    """
    known = list(known) if known is not None else attributes(store, view)
    frames = task_frames(store, view.run_id)
    sql, params = frames.frame_sql(store, view)
    return _filtered(store, f"SELECT * FROM ({sql}) AS frame", params, filters, known, order=frames.frame_order(view))


def frame_size(store: Store, view: View) -> int:
    """How many points the view has, before any filter."""
    sql, params = task_frames(store, view.run_id).frame_sql(store, view)
    return int(store.scalar(f"SELECT count(*) FROM ({sql}) AS frame", params) or 0)


def _filtered(store: Store, sql: str, params: list, filters: Sequence[Filter], known: Sequence[Attribute], *,
              order: Sequence[str] = ("example_id",)) -> pd.DataFrame:
    where, where_params = where_clause(filters, known)
    if where:
        sql += f" WHERE {where}"
    return store.query(f"{sql} ORDER BY {', '.join(order)}", params + where_params)


def filter_frame(frame: pd.DataFrame, filters: Sequence[Filter], known: Sequence[Attribute]) -> pd.DataFrame:
    """The rows of an example frame that pass the filters: the same WHERE clause as :func:`example_frame`,
    run by an in-memory DuckDB over the frame (no store file is opened, so it is fast enough for every
    filter change on 50,000 examples)."""
    where, params = where_clause(filters, known)
    if not where:
        return frame
    with duckdb.connect() as con:
        con.register("frame", frame)
        return con.execute(f"SELECT * FROM frame WHERE {where} ORDER BY {', '.join(_order(frame))}", params).df()


def _order(frame: pd.DataFrame) -> list[str]:
    """The key a frame is sorted by: the example, then its unit (a document's sentence) when it has one.

    Only the key columns: sorting by every column would make DuckDB build sort keys from all the texts."""
    return ["example_id", "unit"] if "unit" in frame.columns else ["example_id"]


def where_clause(filters: Sequence[Filter], known: Sequence[Attribute]) -> tuple[str, list]:
    names = {attribute.name for attribute in known}
    clauses, params = [], []
    for item in filters:
        if item.column not in names:
            raise ValueError(f"unknown attribute {item.column!r}; known: {sorted(names)}")
        column = quote_identifier(item.column)
        if isinstance(item, RangeFilter):
            clauses.append(f"{column} BETWEEN ? AND ?")
            params += [item.low, item.high]
        else:
            if not item.values:
                clauses.append("FALSE")
                continue
            clauses.append(f"CAST({column} AS VARCHAR) IN ({', '.join('?' for _ in item.values)})")
            params += [str(value) for value in item.values]
    return " AND ".join(clauses), params


def attribute_summary(frame: pd.DataFrame, attribute: Attribute) -> tuple:
    """(min, max) of a continuous attribute (its finite values), or the sorted distinct values of a categorical
    one, written as the filters' SQL compares them (``CAST(column AS VARCHAR)``: a boolean is 'true', not
    Python's 'True')."""
    values = frame[attribute.name].dropna()
    if attribute.kind == "continuous":
        values = values[np.isfinite(values.astype(float))]
        return (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    return tuple(sorted({_as_sql_text(value) for value in values.unique()}))


def _as_sql_text(value) -> str:
    return str(value).lower() if isinstance(value, (bool, np.bool_)) else str(value)


def example_details(store: Store, run_id: str, split: str, example_id: int, checkpoint: str | None) -> dict | None:
    """Everything about one example, as its task shows it (a text with its label probabilities, a document
    with its sentences, ...); None when the split has no such example."""
    return task_frames(store, run_id).details(store, run_id, split, example_id, checkpoint)


IMPORTANCE_COLUMNS = {
    "importance_global": "importance ÷ the largest over all heads (0–1)",
    "importance_layer_norm": "importance ÷ the L2 norm of its layer (Michel et al. 2019)",
    "importance": "raw: mean |∂L/∂m| per example",
}
IMPORTANCE_SHORT = {  # the same, short enough for a select box
    "importance_global": "÷ largest head",
    "importance_layer_norm": "÷ layer's L2 norm",
    "importance": "raw mean |∂L/∂m|",
}


def head_importance(store: Store, run_id: str, checkpoint: str) -> pd.DataFrame:
    """Aggregate head importance of a checkpoint: layer, head, split, n_examples and the three columns."""
    return store.query(
        """SELECT layer, head, split, n_examples, importance, importance_layer_norm, importance_global
           FROM head_importance WHERE run_id = ? AND checkpoint = ? ORDER BY layer, head""",
        [run_id, checkpoint],
    )


def attention_patterns(store: Store, run_id: str, checkpoint: str) -> pd.DataFrame:
    """Aggregate attention patterns of a checkpoint, long: layer, head, query, key, weight (+ n_examples)."""
    return store.query(
        """SELECT layer, head, n_examples,
                  (i - 1) // bins AS query, (i - 1) % bins AS key, pattern[i] AS weight
           FROM attention_patterns, range(1, bins * bins + 1) AS r(i)
           WHERE run_id = ? AND checkpoint = ? ORDER BY layer, head, query, key""",
        [run_id, checkpoint],
    )


HEAD_FUNCTIONS = {
    "attn_same_token": "other occurrences of the same token",
    "attn_same_sentence": "tokens of the same sentence",
    "attn_adjacent": "adjacent tokens (±1)",
    "attn_special": "special tokens ([CLS], [SEP], ...)",
    "attn_self": "the token itself",
    "attn_prev": "the previous token",
    "attn_induction": "induction: the token after an earlier occurrence of the current token",
}


def head_functions(store: Store, run_id: str, checkpoint: str) -> pd.DataFrame:
    """Each head's aggregate attention mass per head function (layer, head, split, n_examples, one column each);
    NULL for checkpoints ingested before the functions were measured (``attn_induction``: also where no query of the
    data has an earlier occurrence of its token)."""
    columns = ", ".join(HEAD_FUNCTIONS)
    return store.query(
        f"SELECT layer, head, split, n_examples, {columns} FROM attention_patterns "
        "WHERE run_id = ? AND checkpoint = ? ORDER BY layer, head", [run_id, checkpoint])


def head_stats(store: Store, run_id: str, checkpoint: str, layer: int, head: int) -> dict[str, float]:
    """Aggregate attention statistics of one head: attention to [CLS], separators, itself, the previous and next
    token, the entropy, and the head functions (those measured)."""
    rows = store.query(
        """SELECT attn_cls, attn_sep, attn_self, attn_prev, attn_next, entropy, attn_same_token,
                  attn_same_sentence, attn_adjacent, attn_special, attn_induction FROM attention_patterns
           WHERE run_id = ? AND checkpoint = ? AND layer = ? AND head = ?""",
        [run_id, checkpoint, int(layer), int(head)],
    )
    return {} if rows.empty else {name: float(value) for name, value in rows.iloc[0].items() if pd.notna(value)}
