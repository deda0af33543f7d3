"""Queries behind the views of a token-classification run: sentences, words, entity spans, one sentence.

The Projection view shows sentences (a t-SNE/PCA layout of sentence vectors, coloured by loss, accuracy,
errors, entities), words (a layout of the vectors at each word's first piece, or the word-level Data Map,
coloured by gold tag, predicted tag, correct, loss, entity type, region) or entity spans (the Data Map
over gold spans: the mean of their words' confidence, variability and correctness). Every frame has
the columns :func:`t3vis.queries.explore.example_frame` promises; a word or span row also has ``unit``
(a span's first word).
"""

from __future__ import annotations

import json

import pandas as pd

from t3vis.queries.frames import (DATA_MAP, DATA_MAP_ATTRIBUTES, TEXT_PREVIEW, Attribute, TaskFrames, View,
                                  extra_select, splits)
from t3vis.store.database import Store

SENTENCE_ATTRIBUTES = (
    Attribute("loss", "loss (mean word cross-entropy)", "continuous"),
    Attribute("accuracy", "word accuracy", "continuous"),
    Attribute("n_errors", "words tagged wrong", "continuous"),
    Attribute("n_entities", "gold entities", "continuous"),
    Attribute("n_words", "words", "continuous"),
    Attribute("truncated", "truncated", "categorical"),
    Attribute("n_tokens", "length (tokens)", "continuous"),
)
WORD_ATTRIBUTES = (
    Attribute("label", "gold tag", "categorical"),
    Attribute("entity", "gold entity type", "categorical"),
    Attribute("position", "position in the sentence", "continuous"),
    Attribute("n_tokens", "word pieces", "continuous"),
)
WORD_PREDICTION_ATTRIBUTES = (
    Attribute("prediction", "predicted tag", "categorical"),
    Attribute("correct", "correct", "categorical"),
    Attribute("loss", "loss (cross-entropy)", "continuous"),
    Attribute("confidence", "confidence (max probability)", "continuous"),
    Attribute("gold_prob", "gold-tag probability", "continuous"),
)
SPAN_ATTRIBUTES = (
    Attribute("label", "entity type", "categorical"),
    Attribute("n_words", "words in the entity", "continuous"),
)
POINTS = {"examples": "sentences", "units": "words", "spans": "entity spans"}


def _has_dynamics(store: Store, view: View) -> bool:
    info = splits(store, view.run_id).set_index("split")
    return view.split in info.index and bool(info.loc[view.split].has_dynamics)


def _has_predictions(store: Store, view: View) -> bool:
    return view.checkpoint is not None and bool(store.scalar(
        "SELECT count(*) > 0 FROM unit_predictions WHERE run_id = ? AND split = ? AND checkpoint = ?",
        [view.run_id, view.split, view.checkpoint]))


def points_of(view: View) -> str:
    """What the view's points are: "examples" (sentences), "units" (words) or "spans" (entities, Data Map only)."""
    if view.points == "spans":
        return "spans"
    return "units" if view.points == "units" or view.layout == DATA_MAP else "examples"


def attributes(store: Store, view: View, extras: list[Attribute]) -> list[Attribute]:
    points = points_of(view)
    if points == "examples":
        return list(SENTENCE_ATTRIBUTES) + extras
    if points == "spans":
        return list(SPAN_ATTRIBUTES) + list(DATA_MAP_ATTRIBUTES)
    found = list(WORD_ATTRIBUTES)
    if _has_predictions(store, view):
        found += WORD_PREDICTION_ATTRIBUTES
    if _has_dynamics(store, view):
        found += DATA_MAP_ATTRIBUTES
    return found


def frame_sql(store: Store, view: View) -> tuple[str, list]:
    points = points_of(view)
    if points == "examples":
        return _sentence_sql(store, view)
    if points == "spans":
        return _span_sql(view)
    return _word_sql(view)


def frame_order(view: View) -> tuple[str, ...]:
    return ("example_id",) if points_of(view) == "examples" else ("example_id", "unit")


def _sentence_sql(store: Store, view: View) -> tuple[str, list]:
    extra_sql, extra_params = extra_select(store, view)
    sql = f"""
        WITH words AS (
            SELECT example_id, count(*) AS n_words FROM units WHERE run_id = ? AND split = ? GROUP BY example_id
        ), spans AS (
            SELECT example_id, count(*) AS n_entities FROM entity_spans WHERE run_id = ? AND split = ?
            GROUP BY example_id
        ), scores AS (
            SELECT example_id, avg(loss) AS loss, avg(CASE WHEN correct THEN 1.0 ELSE 0.0 END) AS accuracy,
                   count(*) FILTER (WHERE NOT correct) AS n_errors
            FROM unit_predictions WHERE run_id = ? AND split = ? AND checkpoint = ? GROUP BY example_id
        )
        SELECT e.example_id, j.x, j.y, left(e.text, {TEXT_PREVIEW}) AS text,
               s.loss, s.accuracy, s.n_errors, coalesce(n.n_entities, 0) AS n_entities, w.n_words, e.truncated,
               e.n_tokens
               {', ' + extra_sql if extra_sql else ''}
        FROM examples e
        JOIN projections j ON j.run_id = e.run_id AND j.split = e.split AND j.example_id = e.example_id
                          AND j.checkpoint = ? AND j.method = ? AND j.layer = ? AND j.pooling = ?
        LEFT JOIN words w ON w.example_id = e.example_id
        LEFT JOIN spans n ON n.example_id = e.example_id
        LEFT JOIN scores s ON s.example_id = e.example_id
        WHERE e.run_id = ? AND e.split = ?
    """
    params = [view.run_id, view.split, view.run_id, view.split, view.run_id, view.split, view.checkpoint, *extra_params,
              view.checkpoint, view.layout, view.layer, view.pooling, view.run_id, view.split]
    return sql, params


def _word_sql(view: View) -> tuple[str, list]:
    """Words placed by the Data Map (x = variability, y = confidence of the gold tag over the training
    epochs) or by a layout of their vectors at the view's checkpoint and layer."""
    if view.layout == DATA_MAP:
        position, layout_join, layout_params = "d.variability AS x, d.confidence AS y", "", []
        require = "d.example_id IS NOT NULL"
    else:
        position = "j.x, j.y"
        layout_join = """JOIN unit_projections j ON j.run_id = u.run_id AND j.split = u.split
                             AND j.example_id = u.example_id AND j.unit = u.unit
                             AND j.checkpoint = ? AND j.method = ? AND j.layer = ?"""
        layout_params = [view.checkpoint, view.layout, view.layer]
        require = "TRUE"
    sql = f"""
        WITH dm AS (SELECT * FROM data_map WHERE run_id = ? AND split = ?)
        SELECT u.example_id, u.unit, {position}, u.text,
               left(e.text, {TEXT_PREVIEW}) AS sentence,
               r.label_names[u.label + 1] AS label, u.label AS label_id,
               CASE WHEN r.label_names[u.label + 1] = 'O' THEN 'O'
                    ELSE regexp_replace(r.label_names[u.label + 1], '^[BIES]-', '') END AS entity,
               u.unit AS position, u.n_tokens,
               r.label_names[p.pred + 1] AS prediction, p.pred, p.correct, p.loss, p.prob AS confidence, p.gold_prob,
               d.region, d.confidence AS dm_confidence, d.variability, d.correctness, d.forgetting_events
        FROM units u
        JOIN runs r ON r.run_id = u.run_id
        JOIN examples e ON e.run_id = u.run_id AND e.split = u.split AND e.example_id = u.example_id
        {layout_join}
        LEFT JOIN unit_predictions p ON p.run_id = u.run_id AND p.split = u.split AND p.example_id = u.example_id
                                    AND p.unit = u.unit AND p.checkpoint = ?
        LEFT JOIN dm d ON d.example_id = u.example_id AND d.unit = u.unit
        WHERE u.run_id = ? AND u.split = ? AND {require}
    """
    return sql, [view.run_id, view.split, *layout_params, view.checkpoint, view.run_id, view.split]


def _span_sql(view: View) -> tuple[str, list]:
    """Gold entity spans on the Data Map: the means of their words' statistics; regions by the same rule as
    for words (ranked among the split's spans)."""
    sql = """
        WITH spans AS (
            SELECT s.example_id, s.first_unit, s.text, s.entity_type, s.n_words,
                   avg(d.confidence) AS confidence, avg(d.variability) AS variability,
                   avg(d.correctness) AS correctness, sum(d.forgetting_events) AS forgetting_events
            FROM entity_spans s
            JOIN data_map d ON d.run_id = s.run_id AND d.split = s.split AND d.example_id = s.example_id
                           AND d.unit BETWEEN s.first_unit AND s.last_unit
            WHERE s.run_id = ? AND s.split = ?
            GROUP BY ALL
        ), ranked AS (
            SELECT *, percent_rank() OVER (ORDER BY variability) AS variability_rank,
                      percent_rank() OVER (ORDER BY confidence) AS confidence_rank
            FROM spans
        )
        SELECT example_id, first_unit AS unit, variability AS x, confidence AS y, text,
               entity_type AS label, n_words,
               CASE WHEN variability_rank >= 2.0 / 3 THEN 'ambiguous'
                    WHEN confidence_rank <= 1.0 / 3 THEN 'hard-to-learn'
                    WHEN confidence_rank >= 2.0 / 3 THEN 'easy-to-learn'
                    ELSE 'other' END AS region,
               confidence AS dm_confidence, variability, correctness, forgetting_events
        FROM ranked
    """
    return sql, [view.run_id, view.split]


def sentence_details(store: Store, run_id: str, split: str, example_id: int, checkpoint: str | None) -> dict | None:
    """One sentence: its text, loss and accuracy, and its words with gold tag, kept, and the checkpoint's
    predicted tag, confidence, gold-tag probability, loss and tag probabilities."""
    sentence = store.query(
        """SELECT e.example_id, e.split, e.text, e.n_tokens, e.n_tokens_full, e.truncated, e.extra, r.label_names
           FROM examples e JOIN runs r ON r.run_id = e.run_id
           WHERE e.run_id = ? AND e.split = ? AND e.example_id = ?""",
        [run_id, split, int(example_id)],
    )
    if sentence.empty:
        return None
    details = sentence.iloc[0].to_dict()
    words = store.query(
        """SELECT u.unit, u.text AS word, u.label, r.label_names[u.label + 1] AS tag, u.kept, u.n_tokens,
                  p.pred, r.label_names[p.pred + 1] AS predicted, p.prob AS confidence, p.gold_prob, p.loss,
                  p.correct, p.probs
           FROM units u JOIN runs r ON r.run_id = u.run_id
           LEFT JOIN unit_predictions p ON p.run_id = u.run_id AND p.split = u.split AND p.example_id = u.example_id
                                       AND p.unit = u.unit AND p.checkpoint = ?
           WHERE u.run_id = ? AND u.split = ? AND u.example_id = ? ORDER BY u.unit""",
        [checkpoint, run_id, split, int(example_id)],
    )
    details["words"] = words
    scored = words.dropna(subset=["loss"])
    details["loss"] = float(scored.loss.mean()) if len(scored) else None
    details["accuracy"] = float(scored.correct.astype(float).mean()) if len(scored) else None
    return details


def confusion(store: Store, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    """The tag confusion matrix of a checkpoint: gold, predicted (tag names), count, and rate (the count over
    the gold tag's words: each gold row sums to 1)."""
    return store.query(
        """SELECT r.label_names[u.label + 1] AS gold, r.label_names[p.pred + 1] AS predicted, count(*) AS count,
                  count(*) / sum(count(*)) OVER (PARTITION BY u.label) AS rate
           FROM unit_predictions p
           JOIN units u ON u.run_id = p.run_id AND u.split = p.split AND u.example_id = p.example_id
                       AND u.unit = p.unit
           JOIN runs r ON r.run_id = p.run_id
           WHERE p.run_id = ? AND p.split = ? AND p.checkpoint = ?
           GROUP BY u.label, p.pred, r.label_names ORDER BY u.label, p.pred""",
        [run_id, split, checkpoint],
    )


def entity_f1_curves(store: Store, run_id: str) -> pd.DataFrame:
    """Entity F1, precision and recall per type (and "all") over the run's checkpoints: split, checkpoint, x
    (epoch or step), entity, f1, precision, recall, support."""
    rows = store.query(
        "SELECT checkpoint, coalesce(epoch, step) AS x, metrics FROM checkpoints WHERE run_id = ? ORDER BY x",
        [run_id])
    found = []
    for row in rows.itertuples():
        metrics = json.loads(row.metrics) if isinstance(row.metrics, str) else (row.metrics or {})
        for split, values in metrics.items():
            if not isinstance(values, dict) or "f1" not in values:
                continue
            found.append({"split": split, "checkpoint": row.checkpoint, "x": row.x, "entity": "all",
                          **{name: values[name] for name in ("f1", "precision", "recall")},
                          "support": values.get("n_entities")})
            for entity, scores in (values.get("per_type") or {}).items():
                found.append({"split": split, "checkpoint": row.checkpoint, "x": row.x, "entity": entity,
                              **{name: scores[name] for name in ("f1", "precision", "recall", "support")}})
    return pd.DataFrame(found, columns=["split", "checkpoint", "x", "entity", "f1", "precision", "recall", "support"])


def changed_sentences(store: Store, run_id: str, split: str, before: str, after: str) -> pd.DataFrame:
    """Sentences whose predicted tags differ between two checkpoints: example_id, text, n_changed (words whose
    tag changed), fixed (wrong before, right after), broken (right before, wrong after); most changed first."""
    return store.query(
        """SELECT a.example_id, left(e.text, ?) AS text, count(*) AS n_changed,
                  count(*) FILTER (WHERE NOT a.correct AND b.correct) AS fixed,
                  count(*) FILTER (WHERE a.correct AND NOT b.correct) AS broken
           FROM unit_predictions a
           JOIN unit_predictions b ON b.run_id = a.run_id AND b.split = a.split AND b.example_id = a.example_id
                                  AND b.unit = a.unit AND b.checkpoint = ?
           JOIN examples e ON e.run_id = a.run_id AND e.split = a.split AND e.example_id = a.example_id
           WHERE a.run_id = ? AND a.split = ? AND a.checkpoint = ? AND a.pred <> b.pred
           GROUP BY a.example_id, e.text ORDER BY n_changed DESC, a.example_id""",
        [TEXT_PREVIEW, after, run_id, split, before],
    )


FRAMES = TaskFrames(attributes=attributes, frame_sql=frame_sql, frame_order=frame_order, details=sentence_details)
