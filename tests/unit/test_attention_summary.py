"""Aggregate attention patterns against a plain loop over examples and positions."""

from __future__ import annotations

import numpy as np
import torch

from t3vis.record.attention_summary import AttentionAccumulator


def _brute_force(attentions, lengths, bins):
    """Mean over real query tokens in each relative-position bin of the mass given to each key bin."""
    sums = np.zeros((bins, bins))
    counts = np.zeros(bins)
    for matrix, n in zip(attentions, lengths):
        for t in range(n):
            q = t * bins // n
            counts[q] += 1
            for s in range(n):
                sums[q, s * bins // n] += matrix[t, s]
    return sums / np.maximum(counts, 1)[:, None]


def test_pattern_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    lengths = [7, 3, 12]
    width, bins = 12, 4
    probs = np.zeros((len(lengths), 1, width, width))
    for b, n in enumerate(lengths):
        raw = rng.random((n, n))
        probs[b, 0, :n, :n] = raw / raw.sum(1, keepdims=True)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    separator = torch.zeros_like(mask, dtype=torch.bool)
    separator[:, 0] = True
    accumulator = AttentionAccumulator(num_layers=1, num_heads=1, bins=bins)
    accumulator.set_batch(mask, torch.arange(width).repeat(len(lengths), 1), separator, separator)
    accumulator.consume(0, torch.tensor(probs, dtype=torch.float32))
    summary = accumulator.summary()
    expected = _brute_force([probs[b, 0] for b in range(len(lengths))], lengths, bins)
    np.testing.assert_allclose(summary["pattern"][0, 0], expected, atol=1e-5)
    np.testing.assert_allclose(summary["pattern"][0, 0].sum(1), 1.0, atol=1e-5)
    total_queries = sum(lengths)
    cls = sum(probs[b, 0, :n, 0].sum() for b, n in enumerate(lengths)) / total_queries
    diagonal = sum(np.trace(probs[b, 0, :n, :n]) for b, n in enumerate(lengths)) / total_queries
    # over the queries that have a previous token: all but each example's first
    previous = sum(sum(probs[b, 0, t, t - 1] for t in range(1, n)) for b, n in enumerate(lengths)) / \
        (total_queries - len(lengths))
    assert abs(summary["attn_cls"][0, 0] - cls) < 1e-5
    assert abs(summary["attn_sep"][0, 0] - cls) < 1e-5  # the separator was put at position 0
    assert abs(summary["attn_self"][0, 0] - diagonal) < 1e-5
    assert abs(summary["attn_prev"][0, 0] - previous) < 1e-5
    assert accumulator.n_examples == 3


def _head_functions_by_hand(probs, ids, lengths, separators, specials):
    """Loops over every query and key: the four head-function masses, averaged over real query tokens."""
    sums = dict(same_token=0.0, same_sentence=0.0, adjacent=0.0, special=0.0)
    queries = 0
    for b, n in enumerate(lengths):
        sentence, seen = [], 0
        for t in range(n):
            sentence.append(seen)
            seen += ids[b][t] in separators
        for q in range(n):
            queries += 1
            for k in range(n):
                p = probs[b, 0, q, k]
                sums["same_token"] += p * (k != q and ids[b][k] == ids[b][q] and ids[b][k] not in specials)
                sums["same_sentence"] += p * (sentence[k] == sentence[q])
                sums["adjacent"] += p * (abs(k - q) == 1)
                sums["special"] += p * (ids[b][k] in specials)
    return {name: value / queries for name, value in sums.items()}


def test_head_functions_match_loops_over_queries_and_keys():
    """[CLS]=1 and [SEP]=2 are special; 2 ends a sentence. Word 7 repeats within and across sentences."""
    ids = [[1, 7, 8, 7, 2, 1, 9, 7, 2], [1, 5, 5, 2]]
    lengths = [len(row) for row in ids]
    width = max(lengths)
    rng = np.random.default_rng(1)
    probs = np.zeros((2, 1, width, width))
    for b, n in enumerate(lengths):
        raw = rng.random((n, n)) ** 3
        probs[b, 0, :n, :n] = raw / raw.sum(1, keepdims=True)
    input_ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    for b, row in enumerate(ids):
        input_ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    accumulator = AttentionAccumulator(num_layers=1, num_heads=1, bins=2)
    accumulator.set_batch(mask, input_ids, input_ids == 2, (input_ids == 1) | (input_ids == 2))
    accumulator.consume(0, torch.tensor(probs, dtype=torch.float32))
    summary = accumulator.summary()
    expected = _head_functions_by_hand(probs, ids, lengths, separators={2}, specials={1, 2})
    for name, value in expected.items():
        assert abs(summary[f"attn_{name}"][0, 0] - value) < 1e-5, name
    assert expected["same_token"] > 0.01 and expected["same_sentence"] < 0.99  # the example exercises both
