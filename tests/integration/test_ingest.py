"""Ingesting checkpoints of a tiny random BERT into a store under tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t3vis.data.loading import load_examples
from t3vis.errors import DataError, StoreError
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.model.access import AttentionProbe, run_with_probe
from t3vis.store.database import Store

CONFIG = IngestConfig(split="validation", layers=(0, 2), projection="pca", batch_size=4, importance_examples=-1)


def _ingest(store, bundle, examples, checkpoint="c1", step=1, config=CONFIG):
    return ingest_checkpoint(store, bundle, examples, run_id="tiny", checkpoint=checkpoint, step=step, config=config)


def test_ingest_writes_every_table(store_path, tiny_bundle, topic_csv):
    store = Store(store_path, create=True)
    examples = load_examples(topic_csv)
    summary = _ingest(store, tiny_bundle, examples)
    n, layers, heads = len(examples), tiny_bundle.num_layers, tiny_bundle.num_heads
    assert summary.n_examples == n == 15
    assert store.scalar("SELECT count(*) FROM examples") == n
    assert store.scalar("SELECT count(*) FROM predictions") == n
    assert store.scalar("SELECT count(*) FROM projections") == n * 2  # two layers
    assert store.scalar("SELECT count(*) FROM head_importance") == layers * heads
    assert store.scalar("SELECT count(*) FROM attention_patterns") == layers * heads
    run = store.run("tiny")
    assert run.label_names == ("business", "science", "sports")
    assert (run.num_layers, run.num_heads) == (layers, heads)
    extra = store.query("SELECT extra->>'source' AS source FROM examples ORDER BY example_id")
    assert extra.source.iloc[0] == "sports-0"


def test_predictions_equal_a_direct_forward_pass(store_path, tiny_bundle, topic_csv):
    store = Store(store_path, create=True)
    examples = load_examples(topic_csv)
    _ingest(store, tiny_bundle, examples)
    stored = store.query("SELECT * FROM predictions ORDER BY example_id")
    inputs = tiny_bundle.tokenizer(examples.texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        output, _ = run_with_probe(tiny_bundle.model, AttentionProbe(), **dict(inputs))
    logits = output.logits.numpy()
    np.testing.assert_allclose(np.stack(stored.logits), logits, atol=1e-5)
    probs = torch.softmax(output.logits, -1).numpy()
    labels = examples.labels
    np.testing.assert_allclose(stored.gold_prob, probs[np.arange(len(labels)), labels], atol=1e-5)
    np.testing.assert_allclose(stored.loss, -np.log(stored.gold_prob), rtol=1e-4)
    np.testing.assert_array_equal(stored.pred, logits.argmax(1))
    np.testing.assert_array_equal(stored.correct, logits.argmax(1) == labels)
    np.testing.assert_allclose(stored.confidence, probs.max(1), atol=1e-5)
    patterns = store.query("SELECT bins, pattern FROM attention_patterns")
    for bins, pattern in zip(patterns.bins, patterns.pattern):
        rows = np.asarray(pattern).reshape(bins, bins)
        filled = rows.sum(1) > 0
        np.testing.assert_allclose(rows.sum(1)[filled], 1.0, atol=1e-4)
    importance = store.query("SELECT * FROM head_importance")
    assert (importance.importance > 0).all() and importance.importance_global.max() == pytest.approx(1.0)
    assert (importance.n_examples == len(examples)).all()


def test_reingesting_a_checkpoint_replaces_it(store_path, tiny_bundle, topic_csv):
    store = Store(store_path, create=True)
    examples = load_examples(topic_csv)
    _ingest(store, tiny_bundle, examples)
    _ingest(store, tiny_bundle, examples)
    assert store.scalar("SELECT count(*) FROM checkpoints") == 1
    assert store.scalar("SELECT count(*) FROM predictions") == len(examples)
    assert store.scalar("SELECT count(*) FROM head_importance") == tiny_bundle.num_layers * tiny_bundle.num_heads
    _ingest(store, tiny_bundle, examples, checkpoint="c2", step=2)
    assert list(store.checkpoints("tiny").checkpoint) == ["c1", "c2"]
    assert store.scalar("SELECT count(*) FROM predictions") == 2 * len(examples)
    assert store.scalar("SELECT count(*) FROM examples") == len(examples)


def test_layouts_start_from_the_previous_checkpoint(store_path, tiny_bundle, tmp_path):
    sentences = [f"sentence number {i} about {topic}" for i in range(20) for topic in ("sport", "money", "space")]
    path = tmp_path / "many.jsonl"
    import json

    path.write_text("\n".join(json.dumps({"text": s, "label": i % 3}) for i, s in enumerate(sentences)))
    store = Store(store_path, create=True)
    examples = load_examples(path)
    config = IngestConfig(layers=(2,), projection="tsne", importance_examples=0)
    _ingest(store, tiny_bundle, examples, "c1", 1, config)
    _ingest(store, tiny_bundle, examples, "c2", 2, config)
    layouts = store.query("SELECT checkpoint, example_id, x, y FROM projections ORDER BY checkpoint, example_id")
    first = layouts[layouts.checkpoint == "c1"][["x", "y"]].to_numpy()
    second = layouts[layouts.checkpoint == "c2"][["x", "y"]].to_numpy()
    # the same weights, started from the first layout: points stay where they were
    spread = first.std(0).mean()
    assert np.linalg.norm(second - first, axis=1).mean() < 0.25 * spread
    assert store.scalar("SELECT count(*) FROM head_importance") == 0  # importance_examples=0 skips it


def test_long_texts_are_truncated_and_recorded(store_path, tiny_bundle, topic_csv):
    store = Store(store_path, create=True)
    examples = load_examples(topic_csv)
    summary = _ingest(store, tiny_bundle, examples, config=IngestConfig(max_length=6, projection="pca"))
    rows = store.query("SELECT n_tokens, n_tokens_full, truncated FROM examples")
    assert (rows.n_tokens <= 6).all()
    assert rows.truncated.equals(rows.n_tokens_full > 6)
    assert summary.n_truncated == int(rows.truncated.sum()) > 0
    assert store.run("tiny").max_length == 6


def test_labels_out_of_range_are_refused_and_nothing_is_written(store_path, tiny_bundle, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\nhello there,0\nmore words,7\n")
    store = Store(store_path, create=True)
    with pytest.raises(DataError, match="labels out of range"):
        _ingest(store, tiny_bundle, load_examples(path), config=IngestConfig(projection="pca"))
    assert store.scalar("SELECT count(*) FROM runs") == 0


def test_a_run_cannot_change_its_examples(store_path, tiny_bundle, topic_csv, tmp_path):
    store = Store(store_path, create=True)
    examples = load_examples(topic_csv)
    _ingest(store, tiny_bundle, examples)
    other = tmp_path / "other.csv"
    other.write_text(topic_csv.read_text().replace("the team won the final match", "a different sentence"))
    with pytest.raises(StoreError, match="other examples"):
        _ingest(store, tiny_bundle, load_examples(other), checkpoint="c2", step=2)
    assert list(store.checkpoints("tiny").checkpoint) == ["c1"]
    assert store.scalar("SELECT count(*) FROM predictions") == len(examples)


@pytest.mark.parametrize("wanted, expected", [(4, 4), (5, 8), (-1, 15)])
def test_aggregate_attention_averages_a_sample_of_whole_batches(store_path, tiny_bundle, topic_csv, wanted, expected):
    store = Store(store_path, create=True)
    config = IngestConfig(projection="none", batch_size=4, importance_examples=0, attention_examples=wanted)
    _ingest(store, tiny_bundle, load_examples(topic_csv), config=config)
    rows = store.query("SELECT n_examples, pattern, bins FROM attention_patterns")
    assert (rows.n_examples == expected).all()
    for pattern, bins in zip(rows.pattern, rows.bins):
        matrix = np.asarray(pattern).reshape(bins, bins)
        used = matrix.sum(1) > 0  # query bins no sampled token fell into stay empty
        assert np.allclose(matrix.sum(1)[used], 1.0, atol=1e-4)
