"""Queries behind the views of a generation run: prompts, one prompt with its completions, training curves.

A point of the Projection view is one example (a prompt → completion pair), laid out by a t-SNE/PCA projection
of one layer's vector of it at a checkpoint, or by the Data Map of its training dynamics (x = variability, y =
confidence of the completion's geometric-mean token probability over the epochs). Its attributes are the
checkpoint's scores of the example (``generations``: teacher-forced loss, perplexity and token accuracy, the
greedy generation's length, stop and score), its Data Map statistics and last training epoch when the split has
training dynamics, its lengths and the dataset's extra columns. :func:`example_details` is one example with its
reference's tokens and the probability the checkpoint gives each (:func:`token_probabilities`); the Training
page reads :func:`metric_curves` and :func:`loss_changes`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from t3vis.queries.frames import (DATA_MAP_ATTRIBUTES, TEXT_PREVIEW, Attribute, TaskFrames, View,
                                  example_layout, extra_attributes, extra_select, splits)
from t3vis.store.database import Store

EXAMPLE_ATTRIBUTES = (
    Attribute("n_tokens", "prompt + completion tokens", "continuous"),
    Attribute("completion_tokens", "completion length (tokens)", "continuous"),
    Attribute("truncated", "truncated", "categorical"),
)
SCORE_ATTRIBUTES = (  # the checkpoint's teacher-forced scores of the reference completion
    Attribute("loss", "loss (mean per token)", "continuous"),
    Attribute("perplexity", "perplexity (exp loss)", "continuous"),
    Attribute("token_accuracy", "token accuracy", "continuous"),
)
GENERATED_ATTRIBUTES = (  # the checkpoint's greedy generation
    Attribute("score", "generation score", "continuous"),  # exact match, else ROUGE-L
    Attribute("rougeL", "ROUGE-L of the generation", "continuous"),
    Attribute("generation_length", "generation length (tokens)", "continuous"),
    Attribute("stopped", "generation stopped", "categorical"),  # by a stop token
)
EXACT_MATCH = Attribute("exact_match", "exact match (answer)", "categorical")  # of the final answer
LAST_EPOCH_ATTRIBUTES = (  # the training passes of the last epoch (a split with training dynamics)
    Attribute("last_loss", "last-epoch training loss", "continuous"),
    Attribute("last_token_accuracy", "last-epoch token accuracy", "continuous"),
)
# the frame's own columns: an extra column of the dataset with one of these names is called extra_<name>
OWN_COLUMNS = frozenset(
    {"example_id", "x", "y", "text", "reference", "generation", "answer", "reference_answer"}
    | {a.name for a in (*EXAMPLE_ATTRIBUTES, *SCORE_ATTRIBUTES, *GENERATED_ATTRIBUTES, EXACT_MATCH,
                        *LAST_EPOCH_ATTRIBUTES, *DATA_MAP_ATTRIBUTES)})
CURVE_METRICS = ("loss", "perplexity", "token accuracy", "score", "exact_match", "rougeL")
TRAINING_PASSES = "training passes · "  # + the split: a source name sorts after "evaluation · <split>"


# ---- the example frame -------------------------------------------------------------------------------------------

def _generated(store: Store, view: View) -> tuple[int, int, int]:
    """(examples scored, examples with a generation, examples with an exact match) of the view's checkpoint."""
    if view.checkpoint is None:
        return 0, 0, 0
    row = store.query("""SELECT count(*) AS n, count(generation) AS generated, count(exact_match) AS matched
                         FROM generations WHERE run_id = ? AND split = ? AND checkpoint = ?""",
                      [view.run_id, view.split, view.checkpoint]).iloc[0]
    return int(row.n), int(row.generated), int(row.matched)


def _has_dynamics(store: Store, view: View) -> bool:
    info = splits(store, view.run_id).set_index("split")
    return view.split in info.index and bool(info.loc[view.split].has_dynamics)


def attributes(store: Store, view: View, extras: list[Attribute]) -> list[Attribute]:
    """The checkpoint's scores and generation (when it scored the split), the Data Map and the last epoch (when
    the split has training dynamics), the lengths and the dataset's extra columns."""
    scored, generated, matched = _generated(store, view)
    found = list(SCORE_ATTRIBUTES) if scored else []
    if generated:
        found += [GENERATED_ATTRIBUTES[0], *([EXACT_MATCH] if matched else []), *GENERATED_ATTRIBUTES[1:]]
    if _has_dynamics(store, view):
        found += list(DATA_MAP_ATTRIBUTES) + list(LAST_EPOCH_ATTRIBUTES)
    return found + list(EXAMPLE_ATTRIBUTES) + [attribute for _, attribute, _ in
                                               extra_attributes(store, view, OWN_COLUMNS)]


def frame_sql(store: Store, view: View) -> tuple[str, list]:
    """SQL and parameters of the unfiltered frame: one row per example, placed by a projection or the Data Map."""
    extra_sql, extra_params = extra_select(store, view, OWN_COLUMNS)
    position, layout_join, layout_params, require = example_layout(view)
    sql = f"""
        WITH dm AS (SELECT * FROM data_map WHERE run_id = ? AND split = ? AND unit = 0),
        last AS (SELECT example_id, loss, token_accuracy FROM training_dynamics
                 WHERE run_id = ? AND split = ? AND unit = 0
                   AND epoch = (SELECT max(epoch) FROM training_dynamics WHERE run_id = ? AND split = ?)),
        completion AS (SELECT example_id, count(*) AS completion_tokens FROM units
                       WHERE run_id = ? AND split = ? GROUP BY example_id)
        SELECT e.example_id, {position},
               left(e.text, {TEXT_PREVIEW}) AS text, left(e.reference, {TEXT_PREVIEW}) AS reference,
               left(g.generation, {TEXT_PREVIEW}) AS generation, g.answer, g.reference_answer,
               g.loss, g.perplexity, g.token_accuracy, g.score, g.exact_match, g.rougeL,
               len(g.generated_ids) AS generation_length, g.stopped,
               d.region, d.confidence AS dm_confidence, d.variability, d.correctness, d.forgetting_events,
               l.loss AS last_loss, l.token_accuracy AS last_token_accuracy,
               e.n_tokens, c.completion_tokens, e.truncated
               {', ' + extra_sql if extra_sql else ''}
        FROM examples e
        {layout_join}
        LEFT JOIN generations g ON g.run_id = e.run_id AND g.split = e.split AND g.example_id = e.example_id
                               AND g.checkpoint = ?
        LEFT JOIN dm d ON d.example_id = e.example_id
        LEFT JOIN last l ON l.example_id = e.example_id
        LEFT JOIN completion c ON c.example_id = e.example_id
        WHERE e.run_id = ? AND e.split = ? AND {require}
    """
    cte_params = [view.run_id, view.split] * 4  # dm; last (and its last epoch); completion
    return sql, [*cte_params, *extra_params, *layout_params, view.checkpoint, view.run_id, view.split]


def frame_order(view: View) -> tuple[str, ...]:
    return ("example_id",)


# ---- one example ---------------------------------------------------------------------------------------------------

def token_probabilities(store: Store, run_id: str, split: str, example_id: int, checkpoint: str | None) -> pd.DataFrame:
    """The reference completion's tokens and what the checkpoint, teacher forced, says about each.

    Columns: unit (position in the completion), text (the token as decoded), token_id, kept (fed to the model),
    and the checkpoint's gold_prob (probability of the token), rank (1 = the argmax), pred (the argmax token's
    id), prob (its probability), loss (-ln gold_prob), correct (pred = token_id); NaN/NA where the checkpoint
    did not score the token (cut, or another split). One row per token, in completion order; call it for two
    checkpoints to compare them.
    """
    return store.query(
        """SELECT u.unit, u.text, u.label AS token_id, u.kept, p.gold_prob, p.rank, p.pred, p.prob, p.loss,
                  p.correct
           FROM units u
           LEFT JOIN unit_predictions p ON p.run_id = u.run_id AND p.split = u.split AND p.example_id = u.example_id
                                       AND p.unit = u.unit AND p.checkpoint = ?
           WHERE u.run_id = ? AND u.split = ? AND u.example_id = ? ORDER BY u.unit""",
        [checkpoint, run_id, split, int(example_id)])


def example_details(store: Store, run_id: str, split: str, example_id: int, checkpoint: str | None) -> dict | None:
    """One prompt → completion pair with the checkpoint's results; None when the split has no such example.

    Keys: example_id, split, ``prompt`` (and ``text``, the same: the prompt as the model reads it), ``reference``
    (the reference completion), n_tokens, n_tokens_full, truncated, extra; the checkpoint's loss, perplexity,
    token_accuracy, n_scored (completion tokens scored), ``generation`` (its greedy generation), generated_ids
    (a list of ints, the stop token excluded), stopped, answer, reference_answer, exact_match, rougeL, score (each
    None where the checkpoint did not score the example); the Data Map's region, dm_confidence, variability,
    correctness, forgetting_events and the last epoch's last_loss and last_token_accuracy (None without training
    dynamics); ``tokens``: :func:`token_probabilities` at the checkpoint.
    """
    rows = store.query(
        """SELECT e.example_id, e.split, e.text AS prompt, coalesce(e.reference, '') AS reference, e.n_tokens,
                  e.n_tokens_full, e.truncated, e.extra,
                  g.loss, g.perplexity, g.token_accuracy, g.n_tokens AS n_scored, g.generation, g.generated_ids,
                  g.stopped, g.answer, g.reference_answer, g.exact_match, g.rougeL, g.score,
                  d.region, d.confidence AS dm_confidence, d.variability, d.correctness, d.forgetting_events,
                  l.loss AS last_loss, l.token_accuracy AS last_token_accuracy
           FROM examples e
           LEFT JOIN generations g ON g.run_id = e.run_id AND g.split = e.split AND g.example_id = e.example_id
                                  AND g.checkpoint = ?
           LEFT JOIN data_map d ON d.run_id = e.run_id AND d.split = e.split AND d.example_id = e.example_id
                               AND d.unit = 0
           LEFT JOIN training_dynamics l ON l.run_id = e.run_id AND l.split = e.split AND l.example_id = e.example_id
                               AND l.unit = 0 AND l.epoch = (SELECT max(epoch) FROM training_dynamics
                                                             WHERE run_id = e.run_id AND split = e.split)
           WHERE e.run_id = ? AND e.split = ? AND e.example_id = ?""",
        [checkpoint, run_id, split, int(example_id)])
    if rows.empty:
        return None
    details = {name: _plain(value) for name, value in rows.iloc[0].to_dict().items()}
    details["text"] = details["prompt"]
    ids = details["generated_ids"]
    details["generated_ids"] = None if ids is None else [int(token) for token in ids]
    details["tokens"] = token_probabilities(store, run_id, split, example_id, checkpoint)
    return details


def _plain(value):
    """A cell as a Python value: NA → None, numpy scalars → Python's, arrays → lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


FRAMES = TaskFrames(attributes=attributes, frame_sql=frame_sql, frame_order=frame_order, details=example_details)


# ---- training ------------------------------------------------------------------------------------------------------

def metric_curves(store: Store, run_id: str) -> pd.DataFrame:
    """The run's metrics over training, one row per source and point: source, split, checkpoint, x, and the
    CURVE_METRICS (loss, perplexity, "token accuracy", score, exact_match, rougeL), n_examples, n_tokens.

    ``source`` is ``"evaluation · <split>"`` for each checkpoint's metrics of a split (``checkpoints.metrics``,
    at the checkpoint's epoch, or its step when the epoch is unknown; loss is the mean over all the split's
    completion tokens), and ``"training passes · <split>"`` for the training forward passes of each epoch (at
    epoch + 1: the mean over the epoch's completion tokens of their loss, and their token accuracy; no score:
    nothing is generated while training). The names sort the evaluation first, so that a chart's colours (given
    in order) stay the same for each source whether or not the chart has the training passes.
    """
    rows = store.query("SELECT checkpoint, coalesce(epoch, step) AS x, metrics FROM checkpoints WHERE run_id = ? "
                       "ORDER BY step NULLS LAST, epoch NULLS LAST, ingested_at", [run_id])
    found = []
    for row in rows.itertuples():
        metrics = json.loads(row.metrics) if isinstance(row.metrics, str) else (row.metrics or {})
        for split, values in metrics.items():
            if not isinstance(values, dict) or "perplexity" not in values:  # e.g. the trainer's log values
                continue
            found.append({"source": f"evaluation · {split}", "split": split, "checkpoint": row.checkpoint,
                          "x": row.x,
                          "loss": values.get("loss"), "perplexity": values.get("perplexity"),
                          "token accuracy": values.get("accuracy"), "score": values.get("score"),
                          "exact_match": values.get("exact_match"), "rougeL": values.get("rougeL"),
                          "n_examples": values.get("n_examples"), "n_tokens": values.get("n_tokens")})
    for row in _training_passes(store, run_id).itertuples():
        found.append({"source": TRAINING_PASSES + row.split, "split": row.split, "checkpoint": None,
                      "x": float(row.x),
                      "loss": row.loss, "perplexity": math.exp(min(row.loss, 700.0)),
                      "token accuracy": row.token_accuracy, "n_examples": row.n_examples, "n_tokens": row.n_tokens})
    columns = ["source", "split", "checkpoint", "x", *CURVE_METRICS, "n_examples", "n_tokens"]
    curves = pd.DataFrame(found, columns=columns)
    for name in (*CURVE_METRICS, "x"):
        curves[name] = pd.to_numeric(curves[name], errors="coerce")
    return curves


def _training_passes(store: Store, run_id: str) -> pd.DataFrame:
    """Per epoch of the training dynamics: x (epoch + 1), loss and token accuracy over all its completion tokens
    (each example's mean weighted by its tokens in token_dynamics; by 1 where it has none), n_examples, n_tokens."""
    return store.query(
        """WITH tokens AS (SELECT split, example_id, epoch, count(*) AS n FROM token_dynamics WHERE run_id = ?
                           GROUP BY ALL)
           SELECT d.split, d.epoch + 1 AS x, sum(d.loss * coalesce(t.n, 1)) / sum(coalesce(t.n, 1)) AS loss,
                  sum(d.token_accuracy * coalesce(t.n, 1)) / sum(coalesce(t.n, 1)) AS token_accuracy,
                  count(*) AS n_examples, sum(t.n) AS n_tokens
           FROM training_dynamics d LEFT JOIN tokens t USING (split, example_id, epoch)
           WHERE d.run_id = ? AND d.unit = 0 GROUP BY d.split, d.epoch ORDER BY d.split, d.epoch""",
        [run_id, run_id])


def generation_splits(store: Store, run_id: str) -> list[str]:
    """The splits some checkpoint of the run scored (``generations``)."""
    return sorted(store.query("SELECT DISTINCT split FROM generations WHERE run_id = ?", [run_id]).split)


def loss_changes(store: Store, run_id: str, split: str, before: str, after: str) -> pd.DataFrame:
    """How each example's loss changed from checkpoint ``before`` to ``after``: those whose loss rose first, most
    risen first, then the others (by how little their loss fell).

    Columns: example_id, rose (loss_after > loss_before), rise (loss_after - loss_before), loss_before,
    loss_after, perplexity_before, perplexity_after, score_before, score_after, text (the prompt, shortened),
    generation_after (shortened). Only the examples both checkpoints scored.
    """
    return store.query(
        """SELECT a.example_id, b.loss > a.loss AS rose, b.loss - a.loss AS rise, a.loss AS loss_before,
                  b.loss AS loss_after, a.perplexity AS perplexity_before, b.perplexity AS perplexity_after,
                  a.score AS score_before, b.score AS score_after,
                  left(e.text, ?) AS text, left(b.generation, ?) AS generation_after
           FROM generations a
           JOIN generations b ON b.run_id = a.run_id AND b.split = a.split AND b.example_id = a.example_id
                             AND b.checkpoint = ?
           JOIN examples e ON e.run_id = a.run_id AND e.split = a.split AND e.example_id = a.example_id
           WHERE a.run_id = ? AND a.split = ? AND a.checkpoint = ?
           ORDER BY rise DESC, a.example_id""",
        [TEXT_PREVIEW, TEXT_PREVIEW, after, run_id, split, before])
