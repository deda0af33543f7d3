"""One example's attention kept light: every head pooled on the fly, full matrices kept only when affordable and
otherwise computed for the one head asked for, equal to the dense recording either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t3vis.analysis import attention_maps
from t3vis.analysis.attention_maps import pool_heads
from t3vis.analysis.instance_heads import instance_heads, instance_pattern_frame
from t3vis.charts import pooled_attention
from t3vis.model.access import AttentionProbe, run_with_probe
from t3vis.model.heads import encode_one, head_mask

TEXT = "the striker scored twice in the final match after a long and quiet season " * 3


def _dense(bundle, text: str, pruned=()) -> np.ndarray:
    """Every head's attention recorded the plain way: (L, H, T, T)."""
    inputs, _, _ = encode_one(bundle, text)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads)
    with torch.no_grad():
        _, probe = run_with_probe(bundle.model, AttentionProbe(record=True, head_mask=mask), **inputs)
    return probe.stacked_attentions()[:, 0].numpy()


@pytest.mark.parametrize("size", [5, 16, 17, 40, 333])
def test_pooling_all_heads_at_once_equals_the_charts_pooling_of_each(size):
    probs = torch.softmax(torch.randn(3, size, size, generator=torch.Generator().manual_seed(size)), -1)
    pooled = pool_heads(probs, 16).numpy()  # (H, b, b)
    for head in range(3):
        np.testing.assert_allclose(pooled[head], pooled_attention(probs[head].numpy(), 16), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled.sum(-1), 1.0, atol=1e-5)  # rows stay distributions


def test_a_short_example_keeps_every_heads_matrix(tiny_bundle):
    analysis = instance_heads(tiny_bundle, TEXT, label=0, pruned=[(1, 2)])
    dense = _dense(tiny_bundle, TEXT, pruned=[(1, 2)])
    assert analysis.attentions.all_kept and analysis.attentions.shape == dense.shape
    for layer, head in np.ndindex(*dense.shape[:2]):
        np.testing.assert_allclose(analysis.attentions[layer, head], dense[layer, head], atol=1e-6)
    np.testing.assert_allclose(analysis.attentions[1, 0, 3], dense[1, 0, 3], atol=1e-6)  # one token's row
    frame = instance_pattern_frame(analysis.attentions)
    assert frame.groupby(["layer", "head"]).size().max() <= 16 * 16


def test_a_long_example_keeps_patterns_and_computes_an_asked_head_equal_to_the_recording(tiny_bundle,
                                                                                           monkeypatch):
    monkeypatch.setattr(attention_maps, "FULL_ENTRIES", 1000)  # as if this example were thousands of tokens
    analysis = instance_heads(tiny_bundle, TEXT, label=0, pruned=[(1, 2)])
    dense = _dense(tiny_bundle, TEXT, pruned=[(1, 2)])
    maps = analysis.attentions
    assert not maps.all_kept and maps.patterns.shape == (2, 4, 16, 16)
    for layer, head in np.ndindex(2, 4):  # the pooled patterns are the dense matrices pooled
        np.testing.assert_allclose(maps.patterns[layer, head], pooled_attention(dense[layer, head], 16), atol=1e-5)
    np.testing.assert_allclose(maps[0, 3], dense[0, 3], atol=1e-6)  # computed on demand, with the mask applied
    assert np.all(maps[1, 2] == 0)  # the pruned head stays pruned
    assert maps[0, 3] is maps[0, 3]  # remembered, not recomputed
    with pytest.raises(IndexError, match="L5"):
        maps.head(5, 0)


def test_the_instance_views_outputs_are_one_fast_forward_with_any_heads_attention_on_demand(tiny_bundle):
    from t3vis.analysis.instance_heads import instance_outputs

    outputs = instance_outputs(tiny_bundle, TEXT, pruned=[(1, 2)])
    heads = instance_heads(tiny_bundle, TEXT, label=0, pruned=[(1, 2)])
    np.testing.assert_allclose(outputs.probs, heads.probs, atol=1e-6)  # the same prediction under the mask
    assert outputs.attentions.patterns is None and not outputs.attentions.all_kept  # nothing computed yet
    dense = _dense(tiny_bundle, TEXT, pruned=[(1, 2)])
    np.testing.assert_allclose(outputs.attentions[0, 1, 4], dense[0, 1, 4], atol=1e-6)
    assert np.all(outputs.attentions[1, 2] == 0)
