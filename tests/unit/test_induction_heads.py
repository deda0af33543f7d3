"""The decoder head functions of aggregate attention: induction (attention to the token after an earlier occurrence
of the query's token) and previous-token, against plain loops over queries and keys, on synthetic heads that do
exactly that, and through ingestion of a tiny random Llama (a classifier, and a language model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from t3vis.record.attention_summary import AttentionAccumulator, induction_targets
from t3vis.store.rows import ATTENTION_SCALARS, attention_rows

CLS, SEP = 1, 2  # the special tokens of the synthetic batches
SPECIALS = {CLS, SEP}


def _induction_by_hand(matrix: np.ndarray, ids: list[int], specials=SPECIALS) -> tuple[float, int]:
    """Sum over the queries of one example's (T, T) attention of the mass on their induction targets, and the number
    of queries that have a target. Query i's targets: {j + 1 : j + 1 < i, ids[j] == ids[i]}, ids[i] not special."""
    total, queries = 0.0, 0
    for i, token in enumerate(ids):
        if token in specials:
            continue
        targets = {j + 1 for j in range(i) if ids[j] == token and j + 1 < i}
        if targets:
            total += sum(matrix[i, t] for t in targets)
            queries += 1
    return total, queries


def _previous_by_hand(matrix: np.ndarray, n: int) -> tuple[float, int]:
    """Mass of each query on the token before it, summed over the queries that have one, and their number."""
    return sum(matrix[i, i - 1] for i in range(1, n)), n - 1


def _causal_attention(rng, n: int, width: int, heads: int) -> np.ndarray:
    """(heads, width, width) random causal attention over the first n positions; padding rows and keys zero."""
    probs = np.zeros((heads, width, width))
    raw = np.tril(rng.random((heads, n, n)) ** 3)  # (H, n, n)
    probs[:, :n, :n] = raw / raw.sum(-1, keepdims=True)
    return probs


def _batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input_ids and attention_mask (B, T) of the rows of ids."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, row in enumerate(rows):
        input_ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    return input_ids, mask


def _accumulate(rows: list[list[int]], probs: np.ndarray, *, pad_id: int = 0) -> dict[str, np.ndarray]:
    """The accumulator's summary of one layer of attention probs (B, H, T, T) over the rows of ids."""
    input_ids, mask = _batch(rows, pad_id)
    accumulator = AttentionAccumulator(num_layers=1, num_heads=probs.shape[1], bins=2)
    accumulator.set_batch(mask, input_ids, input_ids == SEP, (input_ids == CLS) | (input_ids == SEP))
    accumulator.consume(0, torch.tensor(probs, dtype=torch.float32))
    return accumulator.summary()


def _random_rows(rng, lengths) -> list[list[int]]:
    """[CLS] + words from a small vocabulary (3..6, so they repeat) with a [SEP] now and then."""
    rows = []
    for n in lengths:
        words = rng.integers(3, 7, n - 1).tolist()
        words = [SEP if rng.random() < 0.1 else word for word in words]
        rows.append([CLS, *words])
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_induction_and_previous_token_match_loops_over_queries_and_keys(seed):
    """Padding with id 5, a word id too: padded positions must be neither repeated tokens nor targets."""
    rng = np.random.default_rng(seed)
    lengths = [9, 4, 13, 1, 6]
    rows = _random_rows(rng, lengths)
    width, heads = max(lengths), 3
    probs = np.stack([_causal_attention(rng, n, width, heads) for n in lengths])  # (B, H, T, T)
    summary = _accumulate(rows, probs, pad_id=5)
    for head in range(heads):
        induction = [_induction_by_hand(probs[b, head], row) for b, row in enumerate(rows)]
        previous = [_previous_by_hand(probs[b, head], n) for b, n in enumerate(lengths)]
        expected_induction = sum(total for total, _ in induction) / sum(count for _, count in induction)
        expected_previous = sum(total for total, _ in previous) / sum(count for _, count in previous)
        assert abs(summary["attn_induction"][0, head] - expected_induction) < 1e-5
        assert abs(summary["attn_prev"][0, head] - expected_previous) < 1e-5
    assert sum(count for _, count in induction) > 5  # the ids repeat enough to exercise the targets


def test_each_target_counts_once_and_special_tokens_are_not_repeated_tokens():
    ids = [CLS, 7, 7, 7, SEP, 8, SEP, 7]
    targets = induction_targets(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool),
                                torch.tensor([[token in SPECIALS for token in ids]]))[0]  # (T, T)
    assert targets[2].nonzero().flatten().tolist() == []  # 7 at 1 is right before: its follower is the query itself
    assert targets[3].nonzero().flatten().tolist() == [2]  # 7 at 1 -> 2; 7 at 2 -> 3 is the query itself
    assert targets[7].nonzero().flatten().tolist() == [2, 3, 4]  # 2 is reached from 1, 3 from 2, 4 from 3: once each
    assert not targets[6].any()  # [SEP] repeats, but special tokens are not repeated tokens


def test_a_head_on_the_induction_targets_scores_one_and_a_previous_token_head_scores_one():
    rows = [[CLS, 3, 4, 5, 3, 4, 5, 3, 6], [CLS, 4, 4, 4, 4], [CLS, 6, 5]]
    lengths = [len(row) for row in rows]
    width = max(lengths)
    input_ids, mask = _batch(rows, 0)
    targets = induction_targets(input_ids, mask.bool(), (input_ids == CLS) | (input_ids == SEP)).float()  # (B, T, T)
    induction = targets / targets.sum(-1, keepdim=True).clamp(min=1)  # (B, T, T): uniform over the targets
    no_target = targets.sum(-1) == 0  # (B, T)
    induction = induction + torch.diag_embed(no_target.float())  # the others attend to themselves
    previous = torch.zeros(len(rows), width, width)  # (B, T, T)
    for b, n in enumerate(lengths):
        previous[b, 0, 0] = 1.0  # the first token has no previous token: in a decoder it attends to itself
        previous[b, torch.arange(1, n), torch.arange(n - 1)] = 1.0
    probs = torch.stack([induction, previous], 1) * mask[:, None, :, None]  # (B, 2, T, T), padding rows zero
    summary = _accumulate(rows, probs.numpy())
    assert summary["attn_induction"][0, 0] == pytest.approx(1.0, abs=1e-6)
    assert summary["attn_prev"][0, 1] == pytest.approx(1.0, abs=1e-6)
    assert summary["attn_induction"][0, 1] < 0.5 and summary["attn_prev"][0, 0] < 0.5  # they are different functions


def test_without_repeated_tokens_induction_is_undefined_and_written_as_null():
    rows = [[CLS, 3, 4, 5, SEP], [CLS, 6, SEP, 3]]
    width = 5
    probs = np.stack([_causal_attention(np.random.default_rng(0), len(row), width, 1) for row in rows])
    summary = _accumulate(rows, probs)
    assert np.isnan(summary["attn_induction"]).all()
    assert np.isfinite(summary["attn_prev"]).all()
    table = attention_rows(summary["pattern"], summary, n_examples=2)
    assert table.column("attn_induction").null_count == 1
    assert all(table.column(name).null_count == 0 for name in ATTENTION_SCALARS if name != "attn_induction")


def test_sums_of_two_processes_add_up_to_one_pass():
    rng = np.random.default_rng(3)
    rows = _random_rows(rng, [8, 8, 8, 8])
    probs = np.stack([_causal_attention(rng, 8, 8, 2) for _ in rows])  # (B, H, T, T)
    whole = _accumulate(rows, probs)
    parts = []
    for half in (slice(0, 1), slice(1, 4)):
        input_ids, mask = _batch(rows[half], 0)
        part = AttentionAccumulator(num_layers=1, num_heads=2, bins=2)
        part.set_batch(mask, input_ids, input_ids == SEP, (input_ids == CLS) | (input_ids == SEP))
        part.consume(0, torch.tensor(probs[half], dtype=torch.float32))
        parts.append(part)
    parts[0].add(parts[1])
    for name in ("attn_induction", "attn_prev", "attn_self"):
        np.testing.assert_allclose(parts[0].summary()[name], whole[name], atol=1e-6)


# -- a tiny random Llama, through ingestion ------------------------------------------------------------------------

TEXTS = ["the cat sat on the mat and the cat sat again", "shares fell and shares rose and shares fell",
         "a late goal", "the team won the final and the team won the cup", "the bank raised the rate",
         "one two three one two three", "physicists measured the particle mass", "rates rose"]


def _model_induction(bundle, texts) -> np.ndarray:
    """(L, H) induction of the model's own attention, each text alone (no padding), by the loops above."""
    from t3vis.model.access import AttentionProbe, run_with_probe

    specials = set(bundle.tokenizer.all_special_ids)
    totals, counts = np.zeros((bundle.num_layers, bundle.num_heads)), 0
    for text in texts:
        inputs = dict(bundle.tokenizer([text], return_tensors="pt"))
        with torch.no_grad():
            _, probe = run_with_probe(bundle.model, AttentionProbe(record=True), **inputs)
        ids = inputs["input_ids"][0].tolist()
        for layer, probs in probe.attentions.items():  # (1, H, T, T) each
            for head in range(bundle.num_heads):
                totals[layer, head] += _induction_by_hand(probs[0, head].double().numpy(), ids, specials)[0]
        counts += _induction_by_hand(np.zeros((len(ids), len(ids))), ids, specials)[1]
    return totals / counts


def test_a_tiny_llama_classifier_ingests_its_induction_and_previous_token_heads(tmp_path):
    from t3vis.data.loading import ExampleSet
    from t3vis.fixtures.tiny_models import save_tiny_model
    from t3vis.model.access import load_model
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.store.database import Store

    folder = save_tiny_model(tmp_path / "llama", "llama", intermediate_size=64)  # 2 layers x 4 heads, 2 KV heads
    bundle = load_model(folder, device="cpu")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    examples = ExampleSet(example_ids=np.arange(8), texts=TEXTS, text_pairs=None, labels=labels,
                          label_names=["a", "b", "c"], extra=pd.DataFrame(index=range(8)), text_columns=("text",),
                          label_column="label", source="inline")
    store = Store(tmp_path / "s.duckdb", create=True)
    ingest_checkpoint(store, bundle, examples, run_id="llama", checkpoint="c1", step=1,
                      config=IngestConfig(projection="pca", batch_size=3, importance_examples=0,
                                          attention_examples=-1))
    heads = store.query("SELECT layer, head, attn_induction, attn_prev FROM attention_patterns ORDER BY layer, head")
    assert len(heads) == 8 and heads.notna().all().all()
    assert heads.attn_induction.between(0, 1).all() and heads.attn_prev.between(0, 1).all()
    expected = _model_induction(bundle, TEXTS)  # (L, H), each text alone: padding changes nothing
    np.testing.assert_allclose(heads.attn_induction.to_numpy().reshape(expected.shape), expected, atol=1e-4)


def test_a_tiny_llama_language_model_ingests_its_induction_heads(tmp_path):
    from t3vis.data.completions import load_completions
    from t3vis.fixtures.generation_store import arithmetic_pairs, write_pairs
    from t3vis.fixtures.tiny_models import save_tiny_language_model
    from t3vis.model.language_models import load_language_model
    from t3vis.record.generation import ingest_generation_checkpoint
    from t3vis.record.ingest_config import IngestConfig
    from t3vis.store.database import Store

    bundle = load_language_model(save_tiny_language_model(tmp_path / "lm", "llama", intermediate_size=64), device="cpu")
    pairs = load_completions(write_pairs(tmp_path / "pairs.jsonl", arithmetic_pairs(5, seed=1)))  # "a + b = c"
    store = Store(tmp_path / "g.duckdb", create=True)
    ingest_generation_checkpoint(store, bundle, pairs, run_id="lm", checkpoint="c", config=IngestConfig(
        projection="pca", batch_size=2, importance_examples=0, attention_examples=-1, max_new_tokens=0))
    heads = store.query("SELECT attn_induction, attn_prev FROM attention_patterns")
    assert len(heads) == 8 and heads.notna().all().all()
    assert heads.attn_induction.between(0, 1).all() and heads.attn_prev.between(0, 1).all()
