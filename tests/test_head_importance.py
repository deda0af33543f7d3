"""Head importance: |dL/dm| against a finite-difference hand computation, and its normalisations."""

from __future__ import annotations

import numpy as np
import torch

from t3vis.head_importance import head_mask_gradient, normalise_importance
from t3vis.model_access import AttentionProbe, run_with_probe


def _loss(bundle, inputs, labels, mask):
    with torch.no_grad():
        output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
    return torch.nn.functional.cross_entropy(output.logits.double(), labels, reduction="sum").item()


def test_gradient_equals_a_finite_difference_for_one_head(tiny_bundle):
    inputs = dict(tiny_bundle.tokenizer(["the striker scored", "shares fell sharply today"], padding=True,
                                        return_tensors="pt"))
    labels = torch.tensor([0, 1])
    _, gradient = head_mask_gradient(tiny_bundle.model, inputs, labels)
    assert gradient.shape == (tiny_bundle.num_layers, tiny_bundle.num_heads)
    for layer, head in [(0, 1), (1, 3)]:
        eps = 1e-3
        plus = torch.ones_like(gradient)
        plus[layer, head] += eps
        minus = torch.ones_like(gradient)
        minus[layer, head] -= eps
        by_hand = (_loss(tiny_bundle, inputs, labels, plus) - _loss(tiny_bundle, inputs, labels, minus)) / (2 * eps)
        assert abs(gradient[layer, head].item() - by_hand) < 1e-3 * max(1.0, abs(by_hand))
    # the model's parameters received no gradient
    assert all(parameter.grad is None for parameter in tiny_bundle.model.parameters())


def test_normalisations():
    raw = np.array([[3.0, 4.0], [1.0, 0.0]])
    columns = normalise_importance(raw)
    np.testing.assert_allclose(columns["importance"], raw)
    np.testing.assert_allclose(columns["importance_layer_norm"], [[0.6, 0.8], [1.0, 0.0]])
    np.testing.assert_allclose(columns["importance_global"], raw / 4.0)
