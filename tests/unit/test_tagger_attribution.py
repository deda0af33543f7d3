"""Saliency of a token classifier's tag logit for one word: LRP conserves it on a bias-free model; the methods
agree with hand work; different words get different explanations."""

from __future__ import annotations

import pytest
import torch

from t3vis.attribution import METHODS
from t3vis.attribution.base import prepare_words, word_target
from t3vis.fixtures.tiny_models import save_tiny_tagger
from t3vis.model.access import AttentionProbe, load_model, run_with_probe

TAGS = ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")
WORDS = ["Peter", "Blackburn", "visited", "Grzegorzewski", "on", "Monday", "."]


@pytest.fixture(scope="module")
def bias_free_tagger(tmp_path_factory):
    folder = save_tiny_tagger(tmp_path_factory.mktemp("tagger"), TAGS, seed=3, initializer_range=0.3)
    bundle = load_model(folder, device="cpu", task="token-classification")
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
        for module in bundle.model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
    return bundle


def test_lrp_relevance_of_a_words_tag_logit_sums_to_that_logit(bias_free_tagger):
    example = prepare_words(bias_free_tagger, WORDS)
    assert len(example.first_pieces) == len(WORDS) and example.first_pieces[0] == 1  # after [CLS]
    for word in (0, 3, 6):
        for tag in (0, 3):
            for pruned in ((), [(0, 1), (1, 2)]):
                result = METHODS["lrp"].attribute(bias_free_tagger, example, word_target(bias_free_tagger, example,
                                                                                          word, tag), pruned=pruned)
                assert abs(result.logit) > 1e-3
                assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-5)
                assert result.probs.shape == (len(TAGS),) and result.probs.sum() == pytest.approx(1, rel=1e-5)
    with pytest.raises(ValueError, match="7 words"):
        word_target(bias_free_tagger, example, 7, 0)


def test_input_x_gradient_of_a_words_tag_equals_a_hand_computation(bias_free_tagger):
    bundle = bias_free_tagger
    example = prepare_words(bundle, WORDS)
    position = example.first_pieces[3]  # "Grzegorzewski" is several pieces: its first one is explained
    assert example.tokens[position + 1].startswith("##")
    result = METHODS["input_x_gradient"].attribute(bundle, example, word_target(bundle, example, 3, 1))
    embeddings = bundle.model.get_input_embeddings()(example.inputs["input_ids"]).detach().requires_grad_(True)
    others = {key: value for key, value in example.inputs.items() if key != "input_ids"}
    output, _ = run_with_probe(bundle.model, AttentionProbe(), inputs_embeds=embeddings, **others)
    (gradient,) = torch.autograd.grad(output.logits[0, position, 1], embeddings)
    assert torch.allclose(torch.tensor(result.scores), (gradient * embeddings).sum(-1)[0].detach(), atol=1e-6)
    assert result.logit == pytest.approx(float(output.logits[0, position, 1].detach()), rel=1e-5)
    expected = torch.softmax(output.logits[0, position].detach(), -1).numpy()
    assert result.probs == pytest.approx(expected, rel=1e-5)


def test_explanations_of_different_words_differ(bias_free_tagger):
    example = prepare_words(bias_free_tagger, WORDS)
    first = METHODS["lrp"].attribute(bias_free_tagger, example, word_target(bias_free_tagger, example, 0, 3)).scores
    last = METHODS["lrp"].attribute(bias_free_tagger, example, word_target(bias_free_tagger, example, 5, 3)).scores
    assert not torch.allclose(torch.tensor(first), torch.tensor(last), atol=1e-4)
