"""Head importance: per-example |dL(x)/dm| against a finite difference and one pass per example, the stored
mean against the instance view, and the normalisations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t3vis.record.head_importance import head_mask_gradient
from t3vis.store.rows import normalise_importance
from t3vis.model.access import AttentionProbe, run_with_probe


def _loss(bundle, inputs, labels, mask):
    with torch.no_grad():
        output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
    return torch.nn.functional.cross_entropy(output.logits.double(), labels, reduction="sum").item()


def test_gradient_equals_a_finite_difference_for_one_head(tiny_bundle):
    inputs = dict(tiny_bundle.tokenizer(["the striker scored", "shares fell sharply today"], padding=True,
                                        return_tensors="pt"))
    labels = torch.tensor([0, 1])
    _, gradient = head_mask_gradient(tiny_bundle.model, inputs, labels)
    assert gradient.shape == (2, tiny_bundle.num_layers, tiny_bundle.num_heads)  # (B, L, H)
    for layer, head in [(0, 1), (1, 3)]:
        eps = 1e-3
        plus = torch.ones(tiny_bundle.num_layers, tiny_bundle.num_heads)
        plus[layer, head] += eps
        minus = torch.ones(tiny_bundle.num_layers, tiny_bundle.num_heads)
        minus[layer, head] -= eps
        by_hand = (_loss(tiny_bundle, inputs, labels, plus) - _loss(tiny_bundle, inputs, labels, minus)) / (2 * eps)
        # the per-example gradients add up to the gradient of the summed loss
        assert abs(gradient[:, layer, head].sum().item() - by_hand) < 1e-3 * max(1.0, abs(by_hand))
    # the model's parameters received no gradient
    assert all(parameter.grad is None for parameter in tiny_bundle.model.parameters())


def test_per_example_gradients_equal_one_pass_per_example(tiny_bundle):
    texts = ["the striker scored", "shares fell sharply today after the report", "a planet", "the coach"]
    labels = torch.tensor([0, 1, 2, 1])
    batch = dict(tiny_bundle.tokenizer(texts, padding=True, return_tensors="pt"))
    _, together = head_mask_gradient(tiny_bundle.model, batch, labels)  # (4, L, H)
    for index, text in enumerate(texts):
        alone = dict(tiny_bundle.tokenizer([text], return_tensors="pt"))
        _, single = head_mask_gradient(tiny_bundle.model, alone, labels[index:index + 1])  # (1, L, H)
        torch.testing.assert_close(together[index], single[0], atol=2e-5, rtol=1e-4)
    # |sum over the batch| is a different, smaller number when signs differ: the definition matters here
    mean_abs = together.abs().mean(0)
    abs_of_sum = together.sum(0).abs() / len(texts)
    assert bool((mean_abs >= abs_of_sum - 1e-9).all()) and float((mean_abs - abs_of_sum).max()) > 0.2 * float(mean_abs.max())


def test_stored_importance_is_the_mean_of_instance_importances_at_any_batch_size(tiny_bundle, tmp_path):
    from t3vis.data.loading import ExampleSet
    from t3vis.analysis.instance_heads import instance_heads
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.store.database import Store
    import pandas as pd

    texts = ["the striker scored twice", "shares fell", "the telescope found a distant planet",
             "fans cheered as the runner crossed the line", "the bank raised its profit forecast",
             "physicists measured the particle mass", "a late goal", "investors worry about rates"]
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    examples = ExampleSet(example_ids=np.arange(len(texts)), texts=texts, text_pairs=None, labels=labels,
                          label_names=["a", "b", "c"], extra=pd.DataFrame(index=range(len(texts))),
                          text_columns=("text",), label_column="label", source="inline")
    instance = np.mean([instance_heads(tiny_bundle, text, label=int(label)).importance
                        for text, label in zip(texts, labels)], axis=0)  # (L, H)
    for batch_size in (1, 3, 8):
        store = Store(tmp_path / f"b{batch_size}.duckdb", create=True)
        ingest_checkpoint(store, tiny_bundle, examples, run_id="r", checkpoint="c",
                          config=IngestConfig(batch_size=batch_size, importance_examples=-1, projection="none"))
        rows = store.query("SELECT layer, head, importance, n_examples FROM head_importance ORDER BY layer, head")
        assert set(rows.n_examples) == {len(texts)}
        stored = rows.importance.to_numpy().reshape(instance.shape)
        np.testing.assert_allclose(stored, instance, rtol=1e-3, atol=1e-6)


def test_normalisations():
    raw = np.array([[3.0, 4.0], [1.0, 0.0]])
    columns = normalise_importance(raw)
    np.testing.assert_allclose(columns["importance"], raw)
    np.testing.assert_allclose(columns["importance_layer_norm"], [[0.6, 0.8], [1.0, 0.0]])
    np.testing.assert_allclose(columns["importance_global"], raw / 4.0)


def test_auroc_equals_the_share_of_positive_negative_pairs_ranked_right():
    from t3vis.analysis.validation import auroc

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # ties included
    positive = rng.random(60) < 0.3
    pos, neg = scores[positive], scores[~positive]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(scores, positive) == pytest.approx(pairs, abs=1e-12)
    assert auroc(np.arange(4.0), np.array([False, False, True, True])) == 1.0
