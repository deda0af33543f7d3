"""Instance-scale head importance and patterns, and pruning by head masks, on a tiny random BERT."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from t3vis.data.loading import load_examples
from t3vis.analysis.evaluation import evaluate
from t3vis.analysis.instance_heads import instance_heads, pool_pattern
from t3vis.model.heads import head_mask
from t3vis.model.access import AttentionProbe, run_with_probe

TEXT = "the striker scored twice in the final match"


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_pruning_a_head_zeroes_its_attention_and_changes_the_logits(tiny_bundle):
    plain = instance_heads(tiny_bundle, TEXT, label=0)
    pruned = instance_heads(tiny_bundle, TEXT, label=0, pruned=[(1, 2)])
    assert np.all(pruned.attentions[1, 2] == 0)
    assert np.allclose(plain.attentions[1, 2].sum(-1), 1.0, atol=1e-5)
    assert not np.allclose(plain.logits, pruned.logits, atol=1e-6)
    # Heads before the pruned layer see the same input: their attention is unchanged.
    assert all(np.array_equal(plain.attentions[0, head], pruned.attentions[0, head]) for head in range(4))


def test_pruning_nothing_reproduces_the_unmasked_logits_exactly(tiny_bundle):
    analysis = instance_heads(tiny_bundle, TEXT, label=1)
    from t3vis.model.heads import encode_one

    inputs, _, _ = encode_one(tiny_bundle, TEXT)
    with torch.no_grad():
        output, _ = run_with_probe(tiny_bundle.model, AttentionProbe(), **inputs)
    assert np.array_equal(analysis.logits, output.logits[0].numpy())
    assert np.allclose(analysis.probs.sum(), 1.0)


def test_instance_importance_equals_a_finite_difference_of_the_loss(tiny_bundle):
    from t3vis.model.heads import encode_one

    label, layer, head, step = 2, 1, 3, 1e-2
    analysis = instance_heads(tiny_bundle, TEXT, label=label)
    inputs, _, _ = encode_one(tiny_bundle, TEXT)

    def loss_at(value: float) -> float:
        mask = torch.ones(tiny_bundle.num_layers, tiny_bundle.num_heads)
        mask[layer, head] = value
        with torch.no_grad():
            output, _ = run_with_probe(tiny_bundle.model, AttentionProbe(head_mask=mask, record=True), **inputs)
        return float(torch.nn.functional.cross_entropy(output.logits.double(), torch.tensor([label])))

    by_hand = abs(loss_at(1 + step) - loss_at(1 - step)) / (2 * step)
    assert analysis.importance[layer, head] == pytest.approx(by_hand, rel=1e-2, abs=1e-6)
    assert analysis.importance.shape == (tiny_bundle.num_layers, tiny_bundle.num_heads)


def test_two_sessions_pruning_different_heads_do_not_see_each_others_masks(tiny_bundle):
    masks = {"a": [(0, 1)], "b": [(1, 0), (1, 3)]}
    expected = {name: instance_heads(tiny_bundle, TEXT, label=0, pruned=pruned).logits
                for name, pruned in masks.items()}
    results: dict[str, list] = {"a": [], "b": []}

    def session(name: str) -> None:
        for _ in range(8):
            results[name].append(instance_heads(tiny_bundle, TEXT, label=0, pruned=masks[name]).logits)

    threads = [threading.Thread(target=session, args=(name,)) for name in masks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in masks:
        assert all(np.allclose(logits, expected[name], atol=1e-6) for logits in results[name])
    assert not np.allclose(expected["a"], expected["b"], atol=1e-6)


def test_no_mask_or_hook_survives_a_call_that_raised(tiny_bundle):
    from t3vis.model.heads import encode_one

    inputs, _, _ = encode_one(tiny_bundle, TEXT)
    before = tiny_bundle.model(**inputs).logits.detach()
    hooks = _hooks(tiny_bundle.model)

    def explode(layer, probs):
        raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer failed"):
        run_with_probe(tiny_bundle.model, AttentionProbe(head_mask=head_mask([(0, 0)], 2, 4), consumer=explode),
                       **inputs)
    with pytest.raises(ValueError, match="outside"):
        instance_heads(tiny_bundle, TEXT, label=0, pruned=[(5, 0)])
    after = tiny_bundle.model(**inputs).logits.detach()
    assert torch.equal(before, after)
    assert _hooks(tiny_bundle.model) == hooks
    assert not any(p.requires_grad and p.grad is not None for p in tiny_bundle.model.parameters())


def test_pool_pattern_keeps_rows_summing_to_one():
    rng = np.random.default_rng(0)
    attention = rng.dirichlet(np.ones(37), size=37)  # (37, 37) rows sum to 1
    pooled = pool_pattern(attention, 8)
    assert pooled.shape == (8, 8)
    assert np.allclose(pooled.sum(1), 1.0)
    assert pool_pattern(attention[:5, :5], 8).shape == (5, 5)


def test_evaluate_with_a_pruned_head_changes_the_loss_and_is_reversible(tiny_bundle, topic_csv):
    examples = load_examples(topic_csv)
    base = evaluate(tiny_bundle, examples, batch_size=4)
    pruned = evaluate(tiny_bundle, examples, pruned=[(0, 0), (1, 1)], batch_size=4)
    again = evaluate(tiny_bundle, examples, batch_size=4)
    assert base.n_examples == 15 and pruned.loss != base.loss
    assert again.loss == pytest.approx(base.loss, abs=1e-6) and again.accuracy == base.accuracy
