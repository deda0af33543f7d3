"""Token attributions: LRP conserves relevance, Input×Gradient matches a hand computation, nothing leaks."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from t3vis.attribution import METHODS, prepare
from t3vis.attribution.lrp import conservative_rules
from t3vis.errors import ModelError
from t3vis.model.access import AttentionProbe, load_model, run_with_probe
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.model.pretrained import minilm_path

TEXT = "the striker scored twice in the final match"


def _zero_biases(model) -> None:
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def peaked_bundle(tmp_path_factory):
    """A tiny random BERT with larger weights (so attributions are far from zero), biases zeroed."""
    folder = save_tiny_model(tmp_path_factory.mktemp("peaked"), num_labels=3, seed=2, initializer_range=0.3)
    bundle = load_model(folder, device="cpu")
    _zero_biases(bundle.model)
    # Make the LayerNorm weights non-trivial too: conservation must not rely on gamma = 1.
    with torch.no_grad():
        for module in bundle.model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
    return bundle


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert", "electra"])
def test_lrp_relevance_sums_to_the_explained_logit_on_a_bias_free_model(tmp_path, model_type):
    folder = save_tiny_model(tmp_path / model_type, model_type, num_labels=3, seed=1, initializer_range=0.3)
    bundle = load_model(folder, device="cpu")
    _zero_biases(bundle.model)
    example = prepare(bundle, TEXT)
    for target in range(3):
        for pruned in ((), [(0, 1), (1, 3)]):
            result = METHODS["lrp"].attribute(bundle, example, target, pruned=pruned)
            assert abs(result.logit) > 1e-3
            assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("activation", ["relu", "silu", "gelu_new", "quick_gelu"])
def test_lrp_conserves_relevance_with_every_activation_it_accepts(tmp_path, activation):
    folder = save_tiny_model(tmp_path / activation, num_labels=3, seed=3, initializer_range=0.3, hidden_act=activation)
    bundle = load_model(folder, device="cpu")
    _zero_biases(bundle.model)
    result = METHODS["lrp"].attribute(bundle, prepare(bundle, TEXT), 1)
    assert abs(result.logit) > 1e-3
    assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-5)


def test_lrp_refuses_an_activation_its_identity_rule_would_falsify(tmp_path):
    """f(x)/x of a sigmoid is unbounded near 0 and its zero branch would change the forward value."""
    folder = save_tiny_model(tmp_path / "sigmoid", num_labels=3, seed=3, hidden_act="sigmoid")
    bundle = load_model(folder, device="cpu")
    hooks = _hooks(bundle.model)
    with pytest.raises(ModelError, match="Sigmoid gives f\\(0\\) = 0.5.*Input×Gradient"):
        METHODS["lrp"].attribute(bundle, prepare(bundle, TEXT), 1)
    assert _hooks(bundle.model) == hooks
    example = prepare(bundle, TEXT)
    assert METHODS["input_x_gradient"].attribute(bundle, example, 1).scores.shape == (len(example.tokens),)


def test_attribution_runs_in_eval_mode_and_restores_the_mode(peaked_bundle):
    example = prepare(peaked_bundle, TEXT)
    model = peaked_bundle.model
    model.train()
    try:
        model.config.hidden_dropout_prob = 0.5
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.5
        for method in ("lrp", "input_x_gradient"):
            first = METHODS[method].attribute(peaked_bundle, example, 1).scores
            second = METHODS[method].attribute(peaked_bundle, example, 1).scores
            np.testing.assert_array_equal(first, second)
            assert model.training
    finally:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.1
        model.eval()


def test_lrp_differs_from_plain_gradient_times_input(peaked_bundle):
    """The rules change the backward pass: without them gradient×input does not conserve."""
    example = prepare(peaked_bundle, TEXT)
    lrp = METHODS["lrp"].attribute(peaked_bundle, example, 1)
    embedding_sum = {}
    norm = peaked_bundle.model.base_model.embeddings.LayerNorm
    handle = norm.register_forward_hook(lambda m, args, out: embedding_sum.setdefault("x", args[0]))
    try:
        with torch.enable_grad():
            output, _ = run_with_probe(peaked_bundle.model, AttentionProbe(), **example.inputs)
            (gradient,) = torch.autograd.grad(output.logits[0, 1], embedding_sum["x"])
    finally:
        handle.remove()
    plain = (gradient * embedding_sum["x"]).sum(-1)[0].detach().numpy()
    assert lrp.total == pytest.approx(lrp.logit, rel=1e-3)
    assert abs(plain.sum() - lrp.logit) > 1e-2
    assert not np.allclose(plain, lrp.scores, atol=1e-3)


def test_input_x_gradient_equals_a_hand_computation(peaked_bundle):
    example = prepare(peaked_bundle, TEXT)
    result = METHODS["input_x_gradient"].attribute(peaked_bundle, example, 2)
    model = peaked_bundle.model
    embeddings = model.get_input_embeddings()(example.inputs["input_ids"]).detach().requires_grad_(True)  # (1, T, D)
    others = {k: v for k, v in example.inputs.items() if k != "input_ids"}
    with torch.enable_grad():
        output, _ = run_with_probe(model, AttentionProbe(), inputs_embeds=embeddings, **others)
        (gradient,) = torch.autograd.grad(output.logits[0, 2], embeddings)
    by_hand = (gradient * embeddings).sum(-1)[0].detach().numpy()  # (T,)
    assert np.allclose(result.scores, by_hand, rtol=1e-4, atol=1e-6)
    assert result.logit == pytest.approx(float(output.logits[0, 2]), rel=1e-5)


def test_integrated_gradients_is_complete(peaked_bundle):
    """IG's scores sum to logit(input) - logit(zero word embeddings), up to the integration error."""
    example = prepare(peaked_bundle, TEXT)
    result = METHODS["integrated_gradients"].attribute(peaked_bundle, example, 0)
    others = {k: v for k, v in example.inputs.items() if k != "input_ids"}
    zeros = torch.zeros_like(peaked_bundle.model.get_input_embeddings()(example.inputs["input_ids"]))
    with torch.no_grad():
        baseline = float(run_with_probe(peaked_bundle.model, AttentionProbe(), inputs_embeds=zeros, **others)[0]
                         .logits[0, 0])
    assert result.total == pytest.approx(result.logit - baseline, rel=0.05, abs=0.02)


def test_the_model_is_unchanged_and_no_hook_is_left_also_after_an_exception(peaked_bundle):
    model = peaked_bundle.model
    example = prepare(peaked_bundle, TEXT)
    with torch.no_grad():
        before = model(**example.inputs).logits.clone()
    hooks = _hooks(model)
    for method in METHODS.values():
        method.attribute(peaked_bundle, example, 1, pruned=[(0, 0)])
    broken = dict(example.inputs, input_ids=example.inputs["input_ids"] + 10**6)  # ids outside the vocabulary
    with pytest.raises(IndexError):
        with conservative_rules(model):
            run_with_probe(model, AttentionProbe(detach_probabilities=True), **broken)
    with torch.no_grad():
        after = model(**example.inputs).logits
    assert torch.equal(before, after)
    assert _hooks(model) == hooks
    assert all(parameter.grad is None for parameter in model.parameters())


def test_lrp_in_one_thread_does_not_change_another_threads_gradients(peaked_bundle):
    example = prepare(peaked_bundle, TEXT)
    expected = METHODS["input_x_gradient"].attribute(peaked_bundle, example, 0).scores
    results, errors = [], []

    def lrp_loop():
        for _ in range(6):
            METHODS["lrp"].attribute(peaked_bundle, example, 0)

    def ixg_loop():
        try:
            for _ in range(6):
                results.append(METHODS["input_x_gradient"].attribute(peaked_bundle, example, 0).scores)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=lrp_loop), threading.Thread(target=ixg_loop)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 6
    assert all(np.allclose(scores, expected, rtol=1e-4, atol=1e-6) for scores in results)


@pytest.mark.slow
def test_lrp_on_the_pretrained_minilm_reports_its_sum():
    bundle = load_model(minilm_path(), num_labels=2, device="cpu")
    example = prepare(bundle, "a gripping, funny and deeply moving film")
    result = METHODS["lrp"].attribute(bundle, example, 1)
    # MiniLM has biases, so the sum is the logit minus what the biases absorb; it is reported, and finite.
    print(f"MiniLM LRP: sum of relevances {result.total:.4f}, explained logit {result.logit:.4f}")
    assert np.isfinite(result.scores).all() and len(result.scores) == len(example.tokens)


@pytest.mark.parametrize("name", ["lrp", "input_x_gradient", "integrated_gradients"])
def test_explaining_the_predicted_class_finds_it_in_the_same_pass_and_equals_naming_it(tiny_bundle, name):
    from t3vis.attribution import METHODS, prepare

    example = prepare(tiny_bundle, "the striker scored twice in the final match")
    of_predicted = METHODS[name].attribute(tiny_bundle, example, None, pruned=[(0, 1)])
    assert of_predicted.target == int(np.argmax(of_predicted.probs))
    named = METHODS[name].attribute(tiny_bundle, example, of_predicted.target, pruned=[(0, 1)])
    np.testing.assert_allclose(of_predicted.scores, named.scores, rtol=1e-5, atol=1e-7)
    assert of_predicted.logit == pytest.approx(named.logit, rel=1e-6)
