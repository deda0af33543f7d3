"""Queries behind the exploration views: one row per example with every attribute, filtered in SQL.

The app's Projection view and Data Table read :func:`example_frame`: the examples of a split,
joined with one checkpoint's predictions, the Data Map (when the split has training dynamics),
the dataset's extra columns (from ``examples.extra``) and the 2-D layout to draw: a t-SNE/PCA
projection of one layer, or the Data Map itself (x = variability, y = confidence).
Filters become a parameterised WHERE clause; column names are checked against the known
attributes before they are quoted into SQL, values are always parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from t3vis.store.database import Store
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, SEQUENCE_CLASSIFICATION

DATA_MAP = "datamap"
TEXT_PREVIEW = 160
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .:-]{0,63}$")


@dataclass(frozen=True)
class Attribute:
    """A column of the example frame that can colour points and filter them."""

    name: str
    label: str
    kind: str  # "categorical" (hue, multiselect) or "continuous" (saturation, range slider)


@dataclass(frozen=True)
class View:
    """Which examples and which layout to show."""

    run_id: str
    split: str
    checkpoint: str | None = None  # predictions (and projections) of this checkpoint
    layout: str = "tsne"  # a projection method ("tsne", "pca") or DATA_MAP
    layer: int | None = None
    pooling: str = "cls"


@dataclass(frozen=True)
class RangeFilter:
    column: str
    low: float
    high: float


@dataclass(frozen=True)
class ValuesFilter:
    column: str
    values: tuple


Filter = RangeFilter | ValuesFilter

PREDICTION_ATTRIBUTES = (
    Attribute("prediction", "prediction", "categorical"),
    Attribute("correct", "correct", "categorical"),
    Attribute("loss", "loss", "continuous"),
    Attribute("confidence", "confidence (max probability)", "continuous"),
    Attribute("gold_prob", "gold-label probability", "continuous"),
)
DATA_MAP_ATTRIBUTES = (
    Attribute("region", "Data Map region", "categorical"),
    Attribute("dm_confidence", "Data Map confidence", "continuous"),
    Attribute("variability", "variability", "continuous"),
    Attribute("correctness", "correctness", "continuous"),
    Attribute("forgetting_events", "forgetting events", "continuous"),
)
BASE_ATTRIBUTES = (
    Attribute("label", "label", "categorical"),
    Attribute("truncated", "truncated", "categorical"),
    Attribute("n_tokens", "length (tokens)", "continuous"),
)


def splits(store: Store, run_id: str) -> pd.DataFrame:
    """The run's splits: split, n_examples, has_projections, has_predictions, has_dynamics."""
    return store.query(
        """SELECT e.split, count(*) AS n_examples,
                  EXISTS (SELECT 1 FROM projections p WHERE p.run_id = e.run_id AND p.split = e.split) AS has_projections,
                  EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = e.run_id AND p.split = e.split)
                  OR EXISTS (SELECT 1 FROM unit_predictions p WHERE p.run_id = e.run_id AND p.split = e.split)
                      AS has_predictions,
                  EXISTS (SELECT 1 FROM training_dynamics d WHERE d.run_id = e.run_id AND d.split = e.split)
                      AS has_dynamics
           FROM examples e WHERE e.run_id = ? GROUP BY e.run_id, e.split ORDER BY e.split""",
        [run_id],
    )


def layouts(store: Store, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    """Projections available for a checkpoint and split: method, layer, pooling."""
    return store.query(
        """SELECT DISTINCT method, layer, pooling FROM projections
           WHERE run_id = ? AND split = ? AND checkpoint = ? ORDER BY method DESC, layer DESC, pooling""",
        [run_id, split, checkpoint],
    )


def extra_columns(store: Store, run_id: str, split: str) -> dict[str, str]:
    """The dataset's extra columns of a split and their JSON types (keys with odd characters are skipped)."""
    rows = store.query(
        """SELECT key, any_value(json_type(extra, '$."' || replace(key, '"', '\\"') || '"')) AS type
           FROM (SELECT extra, unnest(json_keys(extra)) AS key FROM examples
                 WHERE run_id = ? AND split = ? AND extra IS NOT NULL)
           GROUP BY key ORDER BY key""",
        [run_id, split],
    )
    return {key: kind for key, kind in zip(rows.key, rows.type) if _SAFE_KEY.match(key)}


def run_task(store: Store, run_id: str) -> str:
    """The run's task (runs.task)."""
    return store.scalar("SELECT task FROM runs WHERE run_id = ?", [run_id]) or SEQUENCE_CLASSIFICATION


def attributes(store: Store, view: View) -> list[Attribute]:
    """Every attribute the example frame of this view has."""
    available = splits(store, view.run_id).set_index("split")
    if view.split not in available.index:
        return []
    if run_task(store, view.run_id) == EXTRACTIVE_SUMMARIZATION:
        from t3vis.queries import summaries

        return summaries.attributes(store, view, [attribute for _, attribute, _ in _extras(store, view)])
    info = available.loc[view.split]
    found = list(BASE_ATTRIBUTES)
    if view.checkpoint is not None and info.has_predictions:
        found += PREDICTION_ATTRIBUTES
    if info.has_dynamics:
        found += DATA_MAP_ATTRIBUTES
    return found + [attribute for _, attribute, _ in _extras(store, view)]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# Names the example frame uses itself; an extra column with one of these names is called extra_<name>.
_RESERVED = {a.name for a in (*BASE_ATTRIBUTES, *PREDICTION_ATTRIBUTES, *DATA_MAP_ATTRIBUTES)} | {
    "example_id", "text", "x", "y", "label_id", "pred", "unit", "rouge1", "rouge2", "rougeL", "n_sentences",
    "sentences_lost", "lead3_rouge1", "oracle_rouge1", "position", "prob"}
_NUMERIC_JSON = {"BIGINT", "UBIGINT", "DOUBLE"}


def _extras(store: Store, view: View) -> list[tuple[str, Attribute, str]]:
    """(JSON key, attribute, SQL type) of each extra column: the one place that names and types them."""
    found = []
    for key, kind in extra_columns(store, view.run_id, view.split).items():
        name = key if key not in _RESERVED else f"extra_{key}"
        numeric = kind in _NUMERIC_JSON
        cast = "DOUBLE" if numeric else "BOOLEAN" if kind == "BOOLEAN" else "VARCHAR"
        found.append((key, Attribute(name, key, "continuous" if numeric else "categorical"), cast))
    return found


def extra_select(store: Store, view: View) -> tuple[str, list]:
    """SELECT items for the extra JSON columns, and their parameters (the JSON paths)."""
    extras = _extras(store, view)
    items = [f"TRY_CAST(json_extract_string(e.extra, ?) AS {cast}) AS {_quote(attribute.name)}"
             for _, attribute, cast in extras]
    return ", ".join(items), ['$."' + key + '"' for key, _, _ in extras]


def example_frame(store: Store, view: View, filters: Sequence[Filter] = (), *,
                  known: Sequence[Attribute] | None = None) -> pd.DataFrame:
    """One row per example of the view that passes the filters.

    Columns: example_id, x, y (the layout), text (shortened to TEXT_PREVIEW characters),
    label, label_id, and every attribute of :func:`attributes` (prediction columns are NULL
    without a checkpoint, Data Map columns NULL without training dynamics). Examples without
    a position in the chosen layout are left out.
    """
    known = list(known) if known is not None else attributes(store, view)
    if run_task(store, view.run_id) == EXTRACTIVE_SUMMARIZATION:
        from t3vis.queries import summaries

        sql, params = summaries.frame_sql(store, view)
        order = ("example_id", "unit") if view.layout == DATA_MAP else ("example_id",)
        return _filtered(store, f"SELECT * FROM ({sql})", params, filters, known, order=order)
    extra_sql, extra_params = extra_select(store, view)
    if view.layout == DATA_MAP:
        position = "d.variability AS x, d.confidence AS y"
        layout_join = ""
        layout_params: list = []
        require = "d.example_id IS NOT NULL"
    else:
        position = "j.x, j.y"
        layout_join = """JOIN projections j ON j.run_id = e.run_id AND j.split = e.split AND j.example_id = e.example_id
                         AND j.checkpoint = ? AND j.method = ? AND j.layer = ? AND j.pooling = ?"""
        layout_params = [view.checkpoint, view.layout, view.layer, view.pooling]
        require = "TRUE"
    sql = f"""
        WITH dm AS (SELECT * FROM data_map WHERE run_id = ? AND split = ?),
        frame AS (
            SELECT e.example_id, {position},
                   left(e.text, {TEXT_PREVIEW}) AS text,
                   e.label_name AS label, e.label AS label_id, e.n_tokens, e.truncated,
                   p.pred, r.label_names[p.pred + 1] AS prediction, p.correct, p.loss, p.confidence, p.gold_prob,
                   d.region, d.confidence AS dm_confidence, d.variability, d.correctness, d.forgetting_events
                   {', ' + extra_sql if extra_sql else ''}
            FROM examples e
            JOIN runs r ON r.run_id = e.run_id
            {layout_join}
            LEFT JOIN predictions p ON p.run_id = e.run_id AND p.split = e.split AND p.example_id = e.example_id
                                   AND p.checkpoint = ?
            LEFT JOIN dm d ON d.example_id = e.example_id
            WHERE e.run_id = ? AND e.split = ? AND {require}
        )
        SELECT * FROM frame
    """
    params = [view.run_id, view.split, *extra_params, *layout_params, view.checkpoint, view.run_id, view.split]
    return _filtered(store, sql, params, filters, known)


def _filtered(store: Store, sql: str, params: list, filters: Sequence[Filter], known: Sequence[Attribute], *,
              order: Sequence[str] = ("example_id",)) -> pd.DataFrame:
    where, where_params = _where(filters, known)
    if where:
        sql += f" WHERE {where}"
    return store.query(f"{sql} ORDER BY {', '.join(order)}", params + where_params)


def filter_frame(frame: pd.DataFrame, filters: Sequence[Filter], known: Sequence[Attribute]) -> pd.DataFrame:
    """The rows of an example frame that pass the filters: the same WHERE clause as :func:`example_frame`,
    run by an in-memory DuckDB over the frame (no store file is opened, so it is fast enough for every
    filter change on 50,000 examples)."""
    where, params = _where(filters, known)
    if not where:
        return frame
    with duckdb.connect() as con:
        con.register("frame", frame)
        return con.execute(f"SELECT * FROM frame WHERE {where} ORDER BY {', '.join(_order(frame))}", params).df()


def _order(frame: pd.DataFrame) -> list[str]:
    """The key a frame is sorted by: the example, then its unit (a document's sentence) when it has one.

    Only the key columns: sorting by every column would make DuckDB build sort keys from all the texts."""
    return ["example_id", "unit"] if "unit" in frame.columns else ["example_id"]


def _where(filters: Sequence[Filter], known: Sequence[Attribute]) -> tuple[str, list]:
    names = {attribute.name for attribute in known}
    clauses, params = [], []
    for item in filters:
        if item.column not in names:
            raise ValueError(f"unknown attribute {item.column!r}; known: {sorted(names)}")
        column = _quote(item.column)
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
    """(min, max) of a continuous attribute, or the sorted distinct values of a categorical one."""
    values = frame[attribute.name].dropna()
    if attribute.kind == "continuous":
        return (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    return tuple(sorted(values.astype(str).unique()))


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


IMPORTANCE_COLUMNS = {
    "importance_global": "importance ÷ the largest over all heads (0–1)",
    "importance_layer_norm": "importance ÷ the L2 norm of its layer (Michel et al. 2019)",
    "importance": "raw: mean |∂L/∂m| per example",
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
}


def head_functions(store: Store, run_id: str, checkpoint: str) -> pd.DataFrame:
    """Each head's aggregate attention mass per head function (layer, head, split, n_examples, one column each);
    NULL for checkpoints ingested before the functions were measured."""
    columns = ", ".join(HEAD_FUNCTIONS)
    return store.query(
        f"SELECT layer, head, split, n_examples, {columns} FROM attention_patterns "
        "WHERE run_id = ? AND checkpoint = ? ORDER BY layer, head", [run_id, checkpoint])


def head_stats(store: Store, run_id: str, checkpoint: str, layer: int, head: int) -> dict[str, float]:
    """Aggregate attention statistics of one head: attention to [CLS], separators, itself, the previous and next
    token, the entropy, and the head functions (those measured)."""
    rows = store.query(
        """SELECT attn_cls, attn_sep, attn_self, attn_prev, attn_next, entropy, attn_same_token,
                  attn_same_sentence, attn_adjacent, attn_special FROM attention_patterns
           WHERE run_id = ? AND checkpoint = ? AND layer = ? AND head = ?""",
        [run_id, checkpoint, int(layer), int(head)],
    )
    return {} if rows.empty else {name: float(value) for name, value in rows.iloc[0].items() if pd.notna(value)}
