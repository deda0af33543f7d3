"""Saliency of a summarizer's sentence score: LRP conserves it on a bias-free model; the methods agree with hand work."""

from __future__ import annotations

import pytest
import torch

from t3vis.attribution import METHODS
from t3vis.attribution.base import prepare_document
from t3vis.fixtures.tiny_models import save_tiny_summarizer
from t3vis.model.access import AttentionProbe, run_with_probe
from t3vis.model.summarizer_loading import load_summarizer

SENTENCES = ["The council met on Monday.", "It approved the new budget after a long debate.",
             "Critics called it reckless.", "The vote was close."]


@pytest.fixture(scope="module")
def bias_free_summarizer(tmp_path_factory):
    folder = save_tiny_summarizer(tmp_path_factory.mktemp("summarizer"), seed=3, initializer_range=0.3)
    bundle = load_summarizer(folder, device="cpu")
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
        for module in bundle.model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
    return bundle


def test_lrp_relevance_of_each_sentence_score_sums_to_that_score(bias_free_summarizer):
    example = prepare_document(bias_free_summarizer, SENTENCES)
    assert example.n_outputs == 4 and len(example.sentence_of_token) == len(example.tokens)
    for sentence in range(4):
        for pruned in ((), [(0, 1), (1, 2)]):
            result = METHODS["lrp"].attribute(bias_free_summarizer, example, sentence, pruned=pruned)
            assert abs(result.logit) > 1e-3
            assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-5)
            assert result.probs.shape == (4,) and 0 < result.probs[sentence] < 1
    with pytest.raises(ValueError, match="4 sentences"):
        METHODS["lrp"].attribute(bias_free_summarizer, example, 4)


def test_input_x_gradient_of_a_sentence_score_equals_a_hand_computation(bias_free_summarizer):
    bundle = bias_free_summarizer
    example = prepare_document(bundle, SENTENCES)
    result = METHODS["input_x_gradient"].attribute(bundle, example, 2)
    embeddings = bundle.model.get_input_embeddings()(example.inputs["input_ids"]).detach().requires_grad_(True)
    others = {key: value for key, value in example.inputs.items() if key != "input_ids"}
    output, _ = run_with_probe(bundle.model, AttentionProbe(), inputs_embeds=embeddings, **others)
    (gradient,) = torch.autograd.grad(output.logits[0, 2], embeddings)
    assert torch.allclose(torch.tensor(result.scores), (gradient * embeddings).sum(-1)[0].detach(), atol=1e-6)
    # the explained score is the sentence's: the logit reported is the model's score of sentence 2
    assert result.logit == pytest.approx(float(output.logits[0, 2]), rel=1e-5)


def test_explanations_of_different_sentences_differ(bias_free_summarizer):
    example = prepare_document(bias_free_summarizer, SENTENCES)
    first = METHODS["lrp"].attribute(bias_free_summarizer, example, 0).scores
    last = METHODS["lrp"].attribute(bias_free_summarizer, example, 3).scores
    assert not torch.allclose(torch.tensor(first), torch.tensor(last), atol=1e-4)
