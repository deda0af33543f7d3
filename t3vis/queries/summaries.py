"""Queries behind the views of an extractive-summarization run: documents, their sentences, one document.

The Projection view shows documents (a t-SNE/PCA layout of document vectors, coloured by ROUGE,
loss, number of sentences, ...) or sentences (the sentence-level Data Map: x = variability,
y = confidence of the oracle label over the training epochs). Both frames have the columns
:func:`t3vis.queries.explore.example_frame` promises (example_id, x, y, text and the attributes),
so filters and charts work the same way; a sentence row also has ``unit``.
"""

from __future__ import annotations

import pandas as pd

from t3vis.queries.frames import (DATA_MAP, DATA_MAP_ATTRIBUTES, TEXT_PREVIEW, Attribute, TaskFrames, View, extra_select,
                                  splits)
from t3vis.store.database import Store

DOCUMENT_ATTRIBUTES = (
    Attribute("rouge1", "ROUGE-1 of the predicted summary", "continuous"),
    Attribute("rouge2", "ROUGE-2 of the predicted summary", "continuous"),
    Attribute("rougeL", "ROUGE-L of the predicted summary", "continuous"),
    Attribute("loss", "loss (mean sentence BCE)", "continuous"),
    Attribute("lead3_rouge1", "ROUGE-1 of Lead-3", "continuous"),
    Attribute("oracle_rouge1", "ROUGE-1 of the oracle", "continuous"),
    Attribute("n_sentences", "sentences", "continuous"),
    Attribute("sentences_lost", "sentences cut at the token limit", "continuous"),
    Attribute("truncated", "truncated", "categorical"),
    Attribute("n_tokens", "length (tokens)", "continuous"),
)
SENTENCE_ATTRIBUTES = (
    Attribute("label", "oracle label", "categorical"),
    Attribute("position", "position in the document", "continuous"),
    Attribute("n_tokens", "length (tokens)", "continuous"),
)
SENTENCE_PREDICTION_ATTRIBUTES = (
    Attribute("prediction", "in the predicted summary", "categorical"),
    Attribute("prob", "predicted probability", "continuous"),
    Attribute("loss", "loss (BCE)", "continuous"),
    Attribute("correct", "correct (probability ≥ 0.5 = oracle)", "categorical"),
)


def has_unit_predictions(store: Store, run_id: str, split: str, checkpoint: str | None) -> bool:
    return checkpoint is not None and bool(store.scalar(
        "SELECT count(*) > 0 FROM unit_predictions WHERE run_id = ? AND split = ? AND checkpoint = ?",
        [run_id, split, checkpoint]))


def shows_sentences(view: View) -> bool:
    """Whether the view's points are sentences: the Data Map (of training sentences) or a layout of sentence vectors."""
    return view.layout == DATA_MAP or view.points == "units"


def attributes(store: Store, view: View, extras: list[Attribute]) -> list[Attribute]:
    """The attributes of the documents (projection layouts) or of the sentences."""
    if not shows_sentences(view):
        return list(DOCUMENT_ATTRIBUTES) + extras
    found = list(SENTENCE_ATTRIBUTES)
    if has_unit_predictions(store, view.run_id, view.split, view.checkpoint):
        found += SENTENCE_PREDICTION_ATTRIBUTES
    info = splits(store, view.run_id).set_index("split")
    if view.split in info.index and info.loc[view.split].has_dynamics:
        found += DATA_MAP_ATTRIBUTES
    return found


def frame_sql(store: Store, view: View) -> tuple[str, list]:
    """SQL and parameters of the unfiltered frame of a summarization view."""
    if shows_sentences(view):
        return _sentence_sql(view)
    return _document_sql(store, view)


def frame_order(view: View) -> tuple[str, ...]:
    """Documents by id; sentences by document, then position."""
    return ("example_id", "unit") if shows_sentences(view) else ("example_id",)


def _document_sql(store: Store, view: View) -> tuple[str, list]:
    extra_sql, extra_params = extra_select(store, view)
    sql = f"""
        WITH sentences AS (
            SELECT example_id, count(*) AS n_sentences, count(*) FILTER (WHERE NOT kept) AS sentences_lost
            FROM units WHERE run_id = ? AND split = ? GROUP BY example_id
        ), baselines AS (
            SELECT example_id, max(rouge1) FILTER (WHERE system = 'lead-3') AS lead3_rouge1,
                   max(rouge1) FILTER (WHERE system = 'oracle') AS oracle_rouge1
            FROM baseline_scores WHERE run_id = ? AND split = ? GROUP BY example_id
        )
        SELECT e.example_id, j.x, j.y, left(e.text, {TEXT_PREVIEW}) AS text,
               s.rouge1, s.rouge2, s.rougeL, s.loss, b.lead3_rouge1, b.oracle_rouge1,
               u.n_sentences, u.sentences_lost, e.truncated, e.n_tokens
               {', ' + extra_sql if extra_sql else ''}
        FROM examples e
        JOIN projections j ON j.run_id = e.run_id AND j.split = e.split AND j.example_id = e.example_id
                          AND j.checkpoint = ? AND j.method = ? AND j.layer = ? AND j.pooling = ?
        LEFT JOIN document_scores s ON s.run_id = e.run_id AND s.split = e.split AND s.example_id = e.example_id
                                   AND s.checkpoint = ?
        LEFT JOIN sentences u ON u.example_id = e.example_id
        LEFT JOIN baselines b ON b.example_id = e.example_id
        WHERE e.run_id = ? AND e.split = ?
    """
    params = [view.run_id, view.split, view.run_id, view.split, *extra_params,
              view.checkpoint, view.layout, view.layer, view.pooling, view.checkpoint, view.run_id, view.split]
    return sql, params


def _sentence_sql(view: View) -> tuple[str, list]:
    """Sentences placed by the Data Map (x = variability, y = confidence of the oracle label over the training
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
        SELECT u.example_id, u.unit, {position},
               left(u.text, {TEXT_PREVIEW}) AS text,
               r.label_names[u.label + 1] AS label, u.label AS label_id, u.unit AS position, u.n_tokens,
               CASE WHEN p.selected THEN 'in summary' WHEN p.selected IS NOT NULL THEN 'not in summary' END
                   AS prediction,
               p.prob, p.loss, p.correct,
               d.region, d.confidence AS dm_confidence, d.variability, d.correctness, d.forgetting_events
        FROM units u
        JOIN runs r ON r.run_id = u.run_id
        {layout_join}
        LEFT JOIN unit_predictions p ON p.run_id = u.run_id AND p.split = u.split AND p.example_id = u.example_id
                                    AND p.unit = u.unit AND p.checkpoint = ?
        LEFT JOIN dm d ON d.example_id = u.example_id AND d.unit = u.unit
        WHERE u.run_id = ? AND u.split = ? AND {require}
    """
    return sql, [view.run_id, view.split, *layout_params, view.checkpoint, view.run_id, view.split]


def document_details(store: Store, run_id: str, split: str, example_id: int, checkpoint: str | None) -> dict | None:
    """One document: text, reference, its sentences (with oracle label, kept, and the checkpoint's score,
    probability, rank and whether it is in the predicted summary), its ROUGE and that of Lead-3 and the oracle."""
    document = store.query(
        """SELECT e.example_id, e.split, e.text, e.reference, e.n_tokens, e.n_tokens_full, e.truncated, e.extra,
                  s.loss, s.rouge1, s.rouge2, s.rougeL
           FROM examples e
           LEFT JOIN document_scores s ON s.run_id = e.run_id AND s.split = e.split AND s.example_id = e.example_id
                                      AND s.checkpoint = ?
           WHERE e.run_id = ? AND e.split = ? AND e.example_id = ?""",
        [checkpoint, run_id, split, int(example_id)],
    )
    if document.empty:
        return None
    details = document.iloc[0].to_dict()
    details["sentences"] = store.query(
        """SELECT u.unit, u.text, u.label, u.kept, u.n_tokens, p.score, p.prob, p.rank, p.selected, p.loss
           FROM units u
           LEFT JOIN unit_predictions p ON p.run_id = u.run_id AND p.split = u.split AND p.example_id = u.example_id
                                       AND p.unit = u.unit AND p.checkpoint = ?
           WHERE u.run_id = ? AND u.split = ? AND u.example_id = ? ORDER BY u.unit""",
        [checkpoint, run_id, split, int(example_id)],
    )
    details["baselines"] = store.query(
        "SELECT system, rouge1, rouge2, rougeL FROM baseline_scores WHERE run_id = ? AND split = ? "
        "AND example_id = ? ORDER BY system", [run_id, split, int(example_id)])
    return details


FRAMES = TaskFrames(attributes=attributes, frame_sql=frame_sql, frame_order=frame_order, details=document_details)


def summary_curves(store: Store, run_id: str) -> pd.DataFrame:
    """ROUGE and loss over training: source (system and split), x (epoch or step), checkpoint, rouge1, rouge2,
    rougeL, loss. Lead-3 and the oracle are flat lines at every checkpoint's x, for reference."""
    return store.query(
        """WITH points AS (SELECT checkpoint, coalesce(epoch, step) AS x FROM checkpoints WHERE run_id = ?)
           SELECT 'model · ' || s.split AS source, p.x, s.checkpoint, avg(s.rouge1) AS rouge1,
                  avg(s.rouge2) AS rouge2, avg(s.rougeL) AS rougeL, avg(s.loss) AS loss
           FROM document_scores s JOIN points p USING (checkpoint) WHERE s.run_id = ? GROUP BY ALL
           UNION ALL
           SELECT b.system || ' · ' || b.split AS source, p.x, p.checkpoint, avg(b.rouge1), avg(b.rouge2),
                  avg(b.rougeL), NULL AS loss
           FROM baseline_scores b CROSS JOIN points p
           WHERE b.run_id = ? AND b.split IN (SELECT DISTINCT split FROM document_scores WHERE run_id = ?)
           GROUP BY ALL
           ORDER BY source, x""",
        [run_id, run_id, run_id, run_id],
    )
