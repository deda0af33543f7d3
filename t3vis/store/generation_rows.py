"""Arrow rows of the generation task's tables (see ``schema.sql``), built from arrays as :mod:`t3vis.store.rows`
builds the other tasks'.

A unit of a generation example is one token of its reference completion: ``units`` holds each token as decoded
with its id as the label, ``unit_predictions`` how a checkpoint scores it (teacher forced), ``generations`` the
example's loss, perplexity and greedy generation; the training dynamics hold one row per example and epoch
(``training_dynamics``, the Data Map's) and one per completion token and epoch (``token_dynamics``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def completion_token_rows(example_ids: np.ndarray, token_ids: Sequence[Sequence[int]],
                          token_texts: Sequence[Sequence[str]], n_kept: Sequence[int]) -> pa.Table:
    """``units`` rows: per example its reference completion tokens (ids and decoded texts), the first ``n_kept``
    of them kept (fed to the model), the rest cut at the token limit."""
    counts = [len(ids) for ids in token_ids]
    return pa.table({
        "example_id": pa.array(np.repeat(np.asarray(example_ids, dtype=np.int64), counts), type=pa.int64()),
        "unit": pa.array([unit for count in counts for unit in range(count)], type=pa.int32()),
        "text": pa.array([text for texts in token_texts for text in texts], type=pa.string()),
        "label": pa.array([int(token) for ids in token_ids for token in ids], type=pa.int32()),
        "kept": pa.array([unit < kept for count, kept in zip(counts, n_kept) for unit in range(count)],
                         type=pa.bool_()),
        "n_tokens": pa.array(np.ones(sum(counts), dtype=np.int32), type=pa.int32()),
    })


def token_prediction_rows(example_ids: np.ndarray, units: np.ndarray, token_ids: np.ndarray,
                          log_probability: np.ndarray, rank: np.ndarray, predicted: np.ndarray,
                          top_log_probability: np.ndarray) -> pa.Table:
    """``unit_predictions`` rows of M scored completion tokens (all (M,)): score = the gold token's
    log-probability, prob = the argmax token's probability, pred = the argmax token id."""
    log_probability = np.asarray(log_probability, dtype=np.float64)
    return pa.table({
        "example_id": pa.array(np.asarray(example_ids, dtype=np.int64), type=pa.int64()),
        "unit": pa.array(np.asarray(units, dtype=np.int32), type=pa.int32()),
        "score": pa.array(log_probability.astype(np.float32), type=pa.float32()),
        "prob": pa.array(np.exp(np.asarray(top_log_probability, dtype=np.float64)).astype(np.float32)),
        "pred": pa.array(np.asarray(predicted, dtype=np.int32), type=pa.int32()),
        "gold_prob": pa.array(np.exp(log_probability).astype(np.float32), type=pa.float32()),
        "loss": pa.array((-log_probability).astype(np.float32), type=pa.float32()),
        "correct": pa.array(np.asarray(predicted) == np.asarray(token_ids), type=pa.bool_()),
        "rank": pa.array(np.asarray(rank, dtype=np.int32), type=pa.int32()),
    })


def generation_rows(example_ids: np.ndarray, *, loss: np.ndarray, token_accuracy: np.ndarray,
                    n_tokens: np.ndarray, generations: Sequence[str | None],
                    generated_ids: Sequence[Sequence[int] | None], stopped: Sequence[bool | None],
                    answers: Sequence[str | None], reference_answers: Sequence[str | None],
                    rouge_l: Sequence[float | None]) -> pa.Table:
    """``generations`` rows: per example its teacher-forced loss (perplexity = exp(loss)) and its greedy generation
    scored against the reference (``score``: exact match of the final answer where the reference has one, else
    ROUGE-L; None where nothing was generated)."""
    exact = [None if reference is None or generation is None else answer == reference
             for answer, reference, generation in zip(answers, reference_answers, generations)]
    score = [None if generation is None else (float(match) if match is not None else rouge)
             for match, rouge, generation in zip(exact, rouge_l, generations)]
    loss = np.asarray(loss, dtype=np.float64)
    return pa.table({
        "example_id": pa.array(np.asarray(example_ids, dtype=np.int64), type=pa.int64()),
        "loss": pa.array(loss.astype(np.float32), type=pa.float32()),
        "perplexity": pa.array(np.exp(loss).astype(np.float32), type=pa.float32()),
        "token_accuracy": pa.array(np.asarray(token_accuracy, dtype=np.float32), type=pa.float32()),
        "n_tokens": pa.array(np.asarray(n_tokens, dtype=np.int32), type=pa.int32()),
        "generation": pa.array(list(generations), type=pa.string()),
        "generated_ids": pa.array([None if ids is None else [int(token) for token in ids] for ids in generated_ids],
                                  type=pa.list_(pa.int32())),
        "stopped": pa.array(list(stopped), type=pa.bool_()),
        "answer": pa.array(list(answers), type=pa.string()),
        "reference_answer": pa.array(list(reference_answers), type=pa.string()),
        "exact_match": pa.array(exact, type=pa.bool_()),
        "rougeL": pa.array(list(rouge_l), type=pa.float32()),
        "score": pa.array(score, type=pa.float32()),
    })


def completion_dynamics_rows(example_ids: np.ndarray, tokens: np.ndarray, token_ids: np.ndarray,
                             log_probability: np.ndarray, rank: np.ndarray, predicted: np.ndarray,
                             correct: np.ndarray | None = None) -> tuple[pa.Table, pa.Table]:
    """One epoch's ``training_dynamics`` rows (one per example) and ``token_dynamics`` rows (one per completion
    token) from M scored training tokens (all (M,)). A token seen more than once in the epoch keeps its last
    observation, as an example does in the other tasks. ``rank`` and ``predicted`` are -1 where the training pass
    gave no logits (TRL's fused LM head), written as NULL; ``correct`` (the gold token is the argmax) then comes
    from the pass (default: predicted == token id).

    Per example: gold_prob = exp(mean log-probability of its tokens), loss = their mean negative
    log-probability, pred = how many the argmax predicts right, correct = all of them, token_accuracy = the share.
    """
    ids, tokens = np.asarray(example_ids, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
    key = np.stack([ids, tokens], axis=1)  # (M, 2)
    _, last_from_end = np.unique(key[::-1], axis=0, return_index=True)
    keep = np.sort(len(ids) - 1 - last_from_end)  # the last observation of each (example, token)
    ids, tokens = ids[keep], tokens[keep]
    token_ids, predicted = np.asarray(token_ids)[keep], np.asarray(predicted)[keep]
    log_probability, rank = np.asarray(log_probability, dtype=np.float64)[keep], np.asarray(rank)[keep]
    right = predicted == token_ids if correct is None else np.asarray(correct, dtype=bool)[keep]  # (M,)
    known = rank >= 1  # (M,) False where the pass gave no logits
    token_rows = pa.table({
        "example_id": pa.array(ids, type=pa.int64()),
        "token": pa.array(tokens.astype(np.int32), type=pa.int32()),
        "token_id": pa.array(token_ids.astype(np.int32), type=pa.int32()),
        "gold_prob": pa.array(np.exp(log_probability).astype(np.float32), type=pa.float32()),
        "rank": pa.array(rank.astype(np.int32), type=pa.int32(), mask=~known),
        "pred": pa.array(predicted.astype(np.int32), type=pa.int32(), mask=~known),
        "correct": pa.array(right, type=pa.bool_()),
    })
    examples, position = np.unique(ids, return_inverse=True)  # (N,), (M,)
    count = np.bincount(position, minlength=len(examples))  # (N,)
    mean_log_probability = np.bincount(position, weights=log_probability, minlength=len(examples)) / count
    n_right = np.bincount(position, weights=right, minlength=len(examples)).astype(np.int64)
    example_rows = pa.table({
        "example_id": pa.array(examples, type=pa.int64()),
        "gold_prob": pa.array(np.exp(mean_log_probability).astype(np.float32), type=pa.float32()),
        "pred": pa.array(n_right.astype(np.int32), type=pa.int32()),
        "correct": pa.array(n_right == count, type=pa.bool_()),
        "loss": pa.array((-mean_log_probability).astype(np.float32), type=pa.float32()),
        "token_accuracy": pa.array((n_right / count).astype(np.float32), type=pa.float32()),
    })
    return example_rows, token_rows
