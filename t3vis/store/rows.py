"""Arrow rows of the store's tables, built in one place from arrays (next to ``schema.sql``).

One builder per table. Each takes NumPy arrays, computes the derived columns the schema
documents (probabilities, gold-label probability, normalised importances, ...), and returns an
Arrow table whose columns are named as in the schema, without the key columns the store fills
in (run, checkpoint, split, epoch). Ingestion, the training-dynamics recorder and the synthetic
stores of tests and benchmarks all use these, so a column means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

# The scalar summaries of each head's attention in ``attention_patterns``.
ATTENTION_SCALARS = ("attn_cls", "attn_sep", "attn_self", "attn_prev", "attn_next", "entropy",
                     "attn_same_token", "attn_same_sentence", "attn_adjacent", "attn_special", "attn_induction")
HEAD_FUNCTIONS = ("attn_same_token", "attn_same_sentence", "attn_adjacent", "attn_special", "attn_self", "attn_prev",
                  "attn_induction")
# Scalars a dataset may not define (no query of it has an induction target): NaN in the arrays, NULL in the table.
UNDEFINED_AS_NULL = ("attn_induction",)


def list_column(matrix: np.ndarray) -> pa.Array:
    """(N, K) floats -> an Arrow column of N lists of K float32 values."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1]).cast(
        pa.list_(pa.float32()))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)  # (N, K)
    shifted = logits - logits.max(1, keepdims=True)  # (N, K)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))  # (N, K)


def prediction_rows(example_ids: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> pa.Table:
    """``predictions`` rows for ids (N,), logits (N, K) and gold labels (N,)."""
    log_probs = _log_softmax(logits)  # (N, K)
    probs = np.exp(log_probs)  # (N, K)
    rows = np.arange(len(labels))
    pred = np.asarray(logits).argmax(1)
    return pa.table({
        "example_id": pa.array(np.asarray(example_ids), type=pa.int64()),
        "logits": list_column(logits),
        "probs": list_column(probs),
        "pred": pa.array(pred.astype(np.int32)),
        "gold_prob": pa.array(probs[rows, labels].astype(np.float32)),
        "confidence": pa.array(probs.max(1).astype(np.float32)),
        "loss": pa.array((-log_probs[rows, labels]).astype(np.float32)),
        "correct": pa.array(pred == labels),
    })


def dynamics_rows(example_ids: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> pa.Table:
    """``training_dynamics`` rows (without run, split, epoch) for ids (N,), logits (N, K), labels (N,).

    An id seen more than once keeps its last observation.
    """
    example_ids = np.asarray(example_ids, dtype=np.int64)
    _, last_from_end = np.unique(example_ids[::-1], return_index=True)
    keep = np.sort(len(example_ids) - 1 - last_from_end)  # last occurrence of each id, in order seen
    example_ids, logits, labels = example_ids[keep], np.asarray(logits)[keep], np.asarray(labels)[keep]
    log_probs = _log_softmax(logits)  # (N, K)
    rows = np.arange(len(labels))
    pred = logits.argmax(1)
    return pa.table({
        "example_id": pa.array(example_ids, type=pa.int64()),
        "gold_prob": pa.array(np.exp(log_probs[rows, labels]), type=pa.float32()),
        "pred": pa.array(pred.astype(np.int32)),
        "correct": pa.array(pred == labels),
        "loss": pa.array(-log_probs[rows, labels], type=pa.float32()),
    })


def unit_dynamics_rows(example_ids: np.ndarray, units: np.ndarray, scores: np.ndarray,
                       labels: np.ndarray) -> pa.Table:
    """``training_dynamics`` rows of binary units (sentences): ids, units, scores (logits) and labels, all (N,).

    A unit's gold probability is sigmoid(score) for label 1 and 1 - sigmoid(score) for label 0; a
    (example, unit) seen more than once keeps its last observation.
    """
    keys = np.stack([np.asarray(example_ids, dtype=np.int64), np.asarray(units, dtype=np.int64)], 1)  # (N, 2)
    _, last_from_end = np.unique(keys[::-1], axis=0, return_index=True)
    keep = np.sort(len(keys) - 1 - last_from_end)
    score = np.asarray(scores, dtype=np.float64)[keep]
    label = np.asarray(labels, dtype=np.int64)[keep]
    log_gold = np.where(label == 1, -np.logaddexp(0.0, -score), -np.logaddexp(0.0, score))
    pred = (score >= 0).astype(np.int32)
    return pa.table({
        "example_id": pa.array(keys[keep, 0], type=pa.int64()),
        "unit": pa.array(keys[keep, 1].astype(np.int32)),
        "gold_prob": pa.array(np.exp(log_gold), type=pa.float32()),
        "pred": pa.array(pred),
        "correct": pa.array(pred == label),
        "loss": pa.array(-log_gold, type=pa.float32()),
    })


def word_dynamics_rows(example_ids: np.ndarray, units: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> pa.Table:
    """``training_dynamics`` rows of tagged words: ids (N,), word indices (N,), logits (N, K), gold tags (N,).

    A (example, word) seen more than once keeps its last observation."""
    keys = np.stack([np.asarray(example_ids, dtype=np.int64), np.asarray(units, dtype=np.int64)], 1)  # (N, 2)
    _, last_from_end = np.unique(keys[::-1], axis=0, return_index=True)
    keep = np.sort(len(keys) - 1 - last_from_end)
    rows = dynamics_rows(np.arange(len(keep)), np.asarray(logits)[keep], np.asarray(labels)[keep])
    return rows.set_column(0, "example_id", pa.array(keys[keep, 0], type=pa.int64())).add_column(
        1, "unit", pa.array(keys[keep, 1].astype(np.int32)))


def tag_prediction_rows(example_ids: Sequence[int], logits: Sequence[np.ndarray],
                        tags: Sequence[np.ndarray]) -> pa.Table:
    """``unit_predictions`` rows of tagged words: per sentence the logits (W_kept, K) of its kept words and
    the gold tags (W,) of all its words."""
    counts = [len(values) for values in logits]
    every = np.concatenate([np.asarray(values, dtype=np.float64) for values in logits]) if counts else \
        np.zeros((0, 1))  # (M, K)
    gold = np.concatenate([np.asarray(tag, dtype=np.int64)[:count] for tag, count in zip(tags, counts)]) \
        if counts else np.zeros(0, dtype=np.int64)  # (M,)
    log_probs = _log_softmax(every) if len(every) else every  # (M, K)
    pred = every.argmax(1) if len(every) else np.zeros(0, dtype=np.int64)
    rows = np.arange(len(gold))
    return pa.table({
        "example_id": pa.array(np.repeat(np.asarray(example_ids, dtype=np.int64), counts), type=pa.int64()),
        "unit": pa.array(np.concatenate([np.arange(c) for c in counts]).astype(np.int32) if counts else [],
                         type=pa.int32()),
        "score": pa.array(every[rows, pred], type=pa.float32()),
        "prob": pa.array(np.exp(log_probs[rows, pred]), type=pa.float32()),
        "pred": pa.array(pred.astype(np.int32)),
        "gold_prob": pa.array(np.exp(log_probs[rows, gold]), type=pa.float32()),
        "loss": pa.array(-log_probs[rows, gold], type=pa.float32()),
        "correct": pa.array(pred == gold),
        "probs": pa.array(list(np.exp(log_probs).astype(np.float32)), type=pa.list_(pa.float32())),
    })


def projection_rows(example_ids: np.ndarray, coords: np.ndarray, *, layer: int, method: str,
                    pooling: str) -> pa.Table:
    """``projections`` rows of one layer's layout: ids (N,), coordinates (N, 2)."""
    n = len(coords)
    return pa.table({
        "layer": pa.array(np.full(n, layer, dtype=np.int32)),
        "method": pa.array([method] * n, type=pa.string()),
        "pooling": pa.array([pooling] * n, type=pa.string()),
        "example_id": pa.array(np.asarray(example_ids), type=pa.int64()),
        "x": pa.array(coords[:, 0], type=pa.float32()),
        "y": pa.array(coords[:, 1], type=pa.float32()),
    })


def unit_projection_rows(example_ids: np.ndarray, units: np.ndarray, coords: np.ndarray, *, layer: int,
                         method: str) -> pa.Table:
    """``unit_projections`` rows of one layer's layout: example ids (M,) and unit indices (M,), coordinates (M, 2)."""
    n = len(coords)
    return pa.table({
        "layer": pa.array(np.full(n, layer, dtype=np.int32)),
        "method": pa.array([method] * n, type=pa.string()),
        "example_id": pa.array(np.asarray(example_ids), type=pa.int64()),
        "unit": pa.array(np.asarray(units), type=pa.int32()),
        "x": pa.array(coords[:, 0], type=pa.float32()),
        "y": pa.array(coords[:, 1], type=pa.float32()),
    })


def normalise_importance(importance: np.ndarray) -> dict[str, np.ndarray]:
    """The stored columns for raw importances (L, H): raw, per-layer L2-normalised, global max-normalised."""
    importance = np.asarray(importance, dtype=np.float64)  # (L, H)
    layer_norm = np.linalg.norm(importance, axis=1, keepdims=True)  # (L, 1)
    largest = importance.max() if importance.size else 0.0
    return {
        "importance": importance,
        "importance_layer_norm": importance / np.where(layer_norm > 0, layer_norm, 1.0),
        "importance_global": importance / (largest if largest > 0 else 1.0),
    }


def _grid_columns(num_layers: int, num_heads: int) -> dict[str, pa.Array]:
    layer, head = np.meshgrid(np.arange(num_layers), np.arange(num_heads), indexing="ij")  # (L, H) each
    return {"layer": pa.array(layer.ravel().astype(np.int32)), "head": pa.array(head.ravel().astype(np.int32))}


def importance_rows(importance: np.ndarray, n_examples: int) -> pa.Table:
    """``head_importance`` rows for importances (L, H) measured over ``n_examples`` examples."""
    columns = normalise_importance(importance)
    num_layers, num_heads = np.shape(importance)
    return pa.table({
        **_grid_columns(num_layers, num_heads),
        **{name: pa.array(values.ravel()) for name, values in columns.items()},
        "n_examples": pa.array(np.full(num_layers * num_heads, n_examples, dtype=np.int32)),
    })


def attention_rows(patterns: np.ndarray, scalars: Mapping[str, np.ndarray], n_examples: int) -> pa.Table:
    """``attention_patterns`` rows for patterns (L, H, bins, bins) and each of ATTENTION_SCALARS as (L, H)
    (NaN in one of UNDEFINED_AS_NULL: NULL)."""
    num_layers, num_heads, bins = patterns.shape[:3]
    count = num_layers * num_heads
    return pa.table({
        **_grid_columns(num_layers, num_heads),
        "bins": pa.array(np.full(count, bins, dtype=np.int32)),
        "pattern": list_column(patterns.reshape(count, bins * bins)),
        **{name: pa.array(np.asarray(scalars[name]).ravel().astype(np.float32), from_pandas=name in UNDEFINED_AS_NULL)
           for name in ATTENTION_SCALARS},
        "n_examples": pa.array(np.full(count, n_examples, dtype=np.int32)),
    })


def example_rows(example_ids: np.ndarray, texts: Sequence[str], labels: np.ndarray | None,
                 label_names: Sequence[str] | None, *, n_tokens: np.ndarray, n_tokens_full: np.ndarray,
                 text_pairs: Sequence[str] | None = None, extra_json: Sequence[str | None] | None = None,
                 references: Sequence[str] | None = None) -> pa.Table:
    """``examples`` rows (without run and split). ``labels`` is None for tasks labelled per unit."""
    n = len(texts)
    n_tokens, n_tokens_full = np.asarray(n_tokens), np.asarray(n_tokens_full)
    labels = None if labels is None else np.asarray(labels)
    return pa.table({
        "example_id": pa.array(np.asarray(example_ids), type=pa.int64()),
        "text": pa.array(list(texts), type=pa.string()),
        "text_pair": pa.array(list(text_pairs) if text_pairs else [None] * n, type=pa.string()),
        "label": pa.array(labels if labels is not None else [None] * n, type=pa.int32()),
        "label_name": pa.array([label_names[label] for label in labels] if labels is not None else [None] * n,
                               type=pa.string()),
        "n_tokens": pa.array(n_tokens, type=pa.int32()),
        "n_tokens_full": pa.array(n_tokens_full, type=pa.int32()),
        "truncated": pa.array(n_tokens_full > n_tokens),
        "extra": pa.array(list(extra_json) if extra_json is not None else [None] * n, type=pa.string()),
        "reference": pa.array(list(references) if references is not None else [None] * n, type=pa.string()),
    })


# -- extractive summarization: one row per sentence ------------------------------------------------------

def unit_rows(example_ids: Sequence[int], texts: Sequence[Sequence[str]], labels: Sequence[np.ndarray],
              kept: Sequence[int], n_tokens: Sequence[Sequence[int]]) -> pa.Table:
    """``units`` rows: per document its sentences (texts), oracle labels, how many were kept, word pieces."""
    counts = [len(sentences) for sentences in texts]
    return pa.table({
        "example_id": pa.array(np.repeat(np.asarray(example_ids, dtype=np.int64), counts), type=pa.int64()),
        "unit": pa.array(np.concatenate([np.arange(c) for c in counts]).astype(np.int32) if counts else [],
                         type=pa.int32()),
        "text": pa.array([sentence for sentences in texts for sentence in sentences], type=pa.string()),
        "label": pa.array(np.concatenate([np.asarray(row, dtype=np.int32) for row in labels]) if counts else [],
                          type=pa.int32()),
        "kept": pa.array([unit < keep for c, keep in zip(counts, kept) for unit in range(c)], type=pa.bool_()),
        "n_tokens": pa.array([count for row in n_tokens for count in row], type=pa.int32()),
    })


def top_units(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, in document order (ties: the earlier unit)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return np.sort(order[:k])


def unit_prediction_rows(example_ids: Sequence[int], scores: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                         *, summary_size: int) -> pa.Table:
    """``unit_predictions`` rows: per document the scores (S_kept,) of its kept sentences and their labels."""
    columns: dict[str, list] = {name: [] for name in (
        "example_id", "unit", "score", "prob", "pred", "gold_prob", "loss", "correct", "rank", "selected")}
    for example_id, score, label in zip(example_ids, scores, labels):
        score = np.asarray(score, dtype=np.float64)  # (S,)
        label = np.asarray(label, dtype=np.int64)[: len(score)]  # (S,)
        log_in = -np.logaddexp(0.0, -score)  # ln sigmoid(score)
        log_out = -np.logaddexp(0.0, score)  # ln (1 - sigmoid(score))
        log_gold = np.where(label == 1, log_in, log_out)
        pred = (score >= 0).astype(np.int64)
        rank = np.empty(len(score), dtype=np.int64)
        rank[np.argsort(-score, kind="stable")] = np.arange(1, len(score) + 1)
        columns["example_id"] += [int(example_id)] * len(score)
        columns["unit"] += list(range(len(score)))
        columns["score"] += score.tolist()
        columns["prob"] += np.exp(log_in).tolist()
        columns["pred"] += pred.tolist()
        columns["gold_prob"] += np.exp(log_gold).tolist()
        columns["loss"] += (-log_gold).tolist()
        columns["correct"] += (pred == label).tolist()
        columns["rank"] += rank.tolist()
        columns["selected"] += (rank <= summary_size).tolist()
    types = {"example_id": pa.int64(), "unit": pa.int32(), "pred": pa.int32(), "rank": pa.int32(),
             "correct": pa.bool_(), "selected": pa.bool_()}
    return pa.table({name: pa.array(values, type=types.get(name, pa.float32())) for name, values in columns.items()})


def document_score_rows(example_ids: Sequence[int], losses: Sequence[float], scores: Sequence,
                        summaries: Sequence[Sequence[int]]) -> pa.Table:
    """``document_scores`` rows: per document its loss, ROUGE (objects with rouge1/rouge2/rougeL), summary."""
    return pa.table({
        "example_id": pa.array(np.asarray(example_ids, dtype=np.int64)),
        "loss": pa.array(np.asarray(losses, dtype=np.float32)),
        **_rouge_columns(scores),
        "summary": pa.array([[int(unit) for unit in summary] for summary in summaries], type=pa.list_(pa.int32())),
    })


def baseline_rows(example_ids: Sequence[int], system: str, scores: Sequence,
                  summaries: Sequence[Sequence[int]]) -> pa.Table:
    """``baseline_scores`` rows of one system ('lead-3', 'oracle') over the documents."""
    return pa.table({
        "example_id": pa.array(np.asarray(example_ids, dtype=np.int64)),
        "system": pa.array([system] * len(scores), type=pa.string()),
        **_rouge_columns(scores),
        "summary": pa.array([[int(unit) for unit in summary] for summary in summaries], type=pa.list_(pa.int32())),
    })


def _rouge_columns(scores: Sequence) -> dict[str, pa.Array]:
    return {name: pa.array(np.array([getattr(score, name) for score in scores], dtype=np.float32))
            for name in ("rouge1", "rouge2", "rougeL")}
