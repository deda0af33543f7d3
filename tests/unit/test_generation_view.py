"""The generation task's live analysis (t3vis.analysis.generation_view) on a tiny random Llama language model: the
stored pair's token ids are ingestion's; the head-masked scores and the head analysis agree with
completion_token_scores under the same mask; head importance is the gradient of the completion loss; a clicked
token's saliency covers the tokens before it (LRP conserving its logit on a bias-free copy); the top next tokens;
the split's evaluation; tokens as shown; the charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import vl_convert
from tokenizers import ByteLevelBPETokenizer
from transformers import PreTrainedTokenizerFast

from t3vis import charts
from t3vis.analysis.generation_view import (completion_heads, completion_saliency, completion_scores,
                                            display_tokens, evaluate_generation, next_token_alternatives,
                                            next_token_probabilities, pair_token_ids, pruning_table)
from t3vis.analysis.token_view import layout_tokens, merge_word_pieces
from t3vis.attribution import METHODS
from t3vis.attribution.completion import attribute_completion, completion_target, prepare_completion
from t3vis.data.completions import CompletionSet, encode_completions
from t3vis.data.rouge import rouge_l
from t3vis.fixtures.tiny_models import save_tiny_language_model
from t3vis.model.heads import head_mask
from t3vis.model.language_models import completion_token_scores, greedy_generate_batch, load_language_model

PROMPTS = ["What is 3 plus 4?\n", "Name a colour of the sky on a clear day, please.\n"]
REFERENCES = ["3 + 4 = 7\n#### 7", "blue, mostly"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_language_model(save_tiny_language_model(tmp_path_factory.mktemp("tiny-llama-lm"), "llama"),
                               device="cpu")


@pytest.fixture(scope="module")
def bias_free(tmp_path_factory):
    """The tiny Llama with its RMSNorm weights away from 1 (a Llama has no biases: LRP can conserve)."""
    bundle = load_language_model(save_tiny_language_model(tmp_path_factory.mktemp("bias-free-lm"), "llama", seed=3),
                                 device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            assert not name.endswith("bias")
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    return bundle


@pytest.fixture(scope="module")
def pair(bundle):
    ((prompt, completion),) = pair_token_ids(bundle.tokenizer, PROMPTS[:1], REFERENCES[:1], max_length=64)
    return prompt, completion


def _pairs(prompts, references):
    return CompletionSet(example_ids=np.arange(len(prompts)), prompts=prompts, completions=references,
                         answers=[None] * len(prompts), extra=pd.DataFrame(index=range(len(prompts))),
                         format="question-answer", columns=(), source="test")


@pytest.mark.parametrize("max_length", [64, 12])
def test_a_stored_pairs_ids_are_the_ones_ingestion_encoded(bundle, max_length):
    encoded = encode_completions(bundle.tokenizer, _pairs(PROMPTS, REFERENCES), max_length=max_length)
    stored = [ids[start:] for ids, start in zip(encoded.input_ids, encoded.prompt_lengths)]  # units.label
    for reference_ids in (None, stored):
        rebuilt = pair_token_ids(bundle.tokenizer, PROMPTS, REFERENCES, reference_ids, data_format="question-answer",
                                 max_length=max_length)
        assert [prompt + completion for prompt, completion in rebuilt] == encoded.input_ids
        assert [len(prompt) for prompt, _ in rebuilt] == encoded.prompt_lengths.tolist()
    if max_length == 12:
        assert encoded.truncated.any()  # the prompt's start was cut, its BOS kept


def test_head_masked_scores_and_the_head_analysis_equal_completion_token_scores_under_the_same_mask(bundle, pair):
    prompt, completion = pair
    pruned = [(0, 1), (1, 3)]
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads)  # (L, H)
    expected = completion_token_scores(bundle, [prompt + completion], [[-100] * len(prompt) + completion],
                                       head_mask=mask)
    scores = completion_scores(bundle, prompt, completion, pruned=pruned)
    heads = completion_heads(bundle, prompt, completion, pruned=pruned)
    np.testing.assert_allclose(scores.gold_probability, expected.gold_probability, rtol=1e-6)
    np.testing.assert_allclose(heads.gold_probability, expected.gold_probability, rtol=1e-4, atol=1e-7)
    assert heads.loss == pytest.approx(float(expected.loss[0]), rel=1e-5)
    assert heads.perplexity == pytest.approx(float(expected.perplexity[0]), rel=1e-5)
    assert (heads.rank == expected.rank).all() and (heads.predicted == expected.predicted_id).all()
    assert heads.token_accuracy == pytest.approx(float(expected.token_accuracy[0]))
    unpruned = completion_token_scores(bundle, [prompt + completion], [[-100] * len(prompt) + completion])
    assert abs(heads.loss - float(unpruned.loss[0])) > 1e-4  # the mask counts
    assert heads.importance.shape == (bundle.num_layers, bundle.num_heads)
    assert heads.importance_global.max() == pytest.approx(1.0)
    assert len(heads.tokens) == len(prompt) + len(completion)
    assert heads.attentions.patterns.shape[:2] == (bundle.num_layers, bundle.num_heads)
    row = heads.attentions[1, 0, len(heads.tokens) - 1]  # (T,) the last token's attention in head L1·H0
    assert row.sum() == pytest.approx(1.0, rel=1e-4)
    assert not heads.attentions[0, 1].any()  # a pruned head's attention is zero


def test_pruning_every_head_of_a_layer_changes_the_example_and_its_tokens(bundle, pair):
    prompt, completion = pair
    before = completion_heads(bundle, prompt, completion)
    after = completion_heads(bundle, prompt, completion, pruned=[(0, head) for head in range(bundle.num_heads)])
    assert abs(after.loss - before.loss) > 1e-3
    assert not np.allclose(after.gold_probability, before.gold_probability)
    table = pruning_table([str(t) for t in completion], before, after, "4 heads pruned")
    assert len(table) == len(completion) and list(table.columns[:5]) == ["#", "token", "all heads", "4 heads pruned",
                                                                        "change"]
    np.testing.assert_allclose(table.change, after.gold_probability - before.gold_probability)


def test_head_importance_is_the_gradient_of_the_completion_loss(bundle, pair):
    """|dL/dm_h| against a central difference of the teacher-forced loss in one head's mask value."""
    prompt, completion = pair
    heads = completion_heads(bundle, prompt, completion)
    layer, head = np.unravel_index(np.argmax(heads.importance), heads.importance.shape)
    step = 1e-2

    def loss(value: float) -> float:
        mask = torch.ones(bundle.num_layers, bundle.num_heads)
        mask[layer, head] = value
        return float(completion_token_scores(bundle, [prompt + completion], [[-100] * len(prompt) + completion],
                                             head_mask=mask).loss[0])

    numeric = abs(loss(1 + step) - loss(1 - step)) / (2 * step)
    assert heads.importance[layer, head] == pytest.approx(numeric, rel=0.05)


@pytest.mark.parametrize("index", [0, 3])
def test_a_clicked_tokens_saliency_covers_the_tokens_before_it(bundle, pair, index):
    prompt, completion = pair
    example = prepare_completion(bundle, prompt, completion)
    result = completion_saliency(METHODS["input_x_gradient"], bundle, example, index)
    full = attribute_completion(METHODS["input_x_gradient"], bundle, example, completion_target(bundle, example, index))
    assert len(result.tokens) == len(result.scores) == len(prompt) + index + 1
    assert (result.scores[:-1] != 0).all() and result.scores[-1] == 0  # the earlier tokens; not the token itself
    np.testing.assert_array_equal(result.scores, full.scores[:len(prompt) + index + 1])
    assert result.logit == full.logit and result.target == full.target


def test_lrp_of_a_clicked_token_conserves_its_logit_over_the_earlier_tokens(bias_free):
    ((prompt, completion),) = pair_token_ids(bias_free.tokenizer, PROMPTS[:1], REFERENCES[:1], max_length=64)
    example = prepare_completion(bias_free, prompt, completion)
    for index, pruned in ((2, ()), (5, [(0, 0), (1, 2)])):
        result = completion_saliency(METHODS["lrp"], bias_free, example, index, pruned=pruned)
        assert abs(result.logit) > 1e-3
        assert abs(result.total - result.logit) / abs(result.logit) < 1e-3


def test_the_top_next_tokens_at_the_clicked_tokens_position(bundle, pair):
    prompt, completion = pair
    example = prepare_completion(bundle, prompt, completion)
    index = 2
    position = len(prompt) + index - 1
    probs = next_token_probabilities(bundle, example, position, pruned=[(1, 1)])  # (V,)
    attributed = completion_saliency(METHODS["lrp"], bundle, example, index, pruned=[(1, 1)])
    np.testing.assert_allclose(probs, attributed.probs, rtol=1e-4, atol=1e-8)
    token = int(completion[index])
    table = next_token_alternatives(bundle.tokenizer, probs, token, top=5)
    order = np.argsort(-probs)
    assert table.token_id.tolist()[:5] == order[:5].tolist() and table["rank"].tolist()[:5] == [1, 2, 3, 4, 5]
    assert table.probability.is_monotonic_decreasing or not table.explained.iloc[-1]
    own = table[table.explained]
    assert len(own) == 1 and int(own.token_id.iloc[0]) == token
    assert int(own["rank"].iloc[0]) == int((probs > probs[token]).sum()) + 1
    assert len(table) == 5 + (int(own["rank"].iloc[0]) > 5)
    assert table.token.tolist()[0] == bundle.tokenizer.decode([int(order[0])])


def test_the_evaluation_scores_the_references_and_the_pruned_models_own_generations(bundle):
    pairs = pair_token_ids(bundle.tokenizer, PROMPTS, REFERENCES, max_length=64)
    pruned = [(0, 2)]
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads)
    seen = []
    result = evaluate_generation(bundle, pairs, REFERENCES, pruned=pruned, max_new_tokens=6,
                                 progress=lambda phase, done, total: seen.append((done, total)))
    scores = completion_token_scores(bundle, [p + c for p, c in pairs], [[-100] * len(p) + c for p, c in pairs],
                                     head_mask=mask)
    assert result.loss == pytest.approx(float(-scores.log_probability.mean()), rel=1e-5)
    assert result.perplexity == pytest.approx(np.exp(result.loss))
    assert result.accuracy == pytest.approx(float(scores.correct.mean()))
    generated = greedy_generate_batch(bundle, [p for p, _ in pairs], max_new_tokens=6, head_mask=mask)
    texts = bundle.tokenizer.batch_decode(generated, skip_special_tokens=True)
    assert result.rougeL == pytest.approx(np.mean([rouge_l(t, r) for t, r in zip(texts, REFERENCES)]))
    assert result.exact_match == 0.0 and result.n_examples == 2  # one reference has a final answer
    assert result.score == pytest.approx((0.0 + rouge_l(texts[1], REFERENCES[1])) / 2)
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)  # scoring, then generating

    given = evaluate_generation(bundle, pairs, REFERENCES, max_new_tokens=6,
                                generations=["so 3 + 4 = 7\n#### 7", "mostly blue"])
    assert given.exact_match == 1.0
    unmarked = evaluate_generation(bundle, pairs, REFERENCES, max_new_tokens=6,
                                   generations=["The answer is 7.", "mostly blue"])  # its last number, as ingestion
    assert unmarked.exact_match == 1.0 and given.score == unmarked.score
    assert given.score == pytest.approx((1.0 + rouge_l("mostly blue", REFERENCES[1])) / 2)


@pytest.fixture(scope="module")
def byte_level():
    """A small byte-level BPE tokenizer (GPT-2's kind: Ġ marks a space, Ċ a line break), trained here."""
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(["the model reads the prompt\nand writes an answer"] * 20, vocab_size=300,
                                min_frequency=1, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=trainer, eos_token="<|endoftext|>")


def test_byte_level_tokens_are_shown_decoded_with_line_breaks_and_merge_into_words(byte_level):
    text = "the model writes\nan answer"
    ids = byte_level(text)["input_ids"] + [byte_level.eos_token_id]
    raw = byte_level.convert_ids_to_tokens(ids)
    assert any(token.startswith("Ġ") for token in raw) and any("Ċ" in token for token in raw)
    shown, line_starts = display_tokens(byte_level, ids)
    assert not any("Ġ" in token or "Ċ" in token for token in shown)
    assert "".join(shown).replace("↵", "") == text.replace(" ", "").replace("\n", "") + "<|endoftext|>"
    assert any("↵" in token for token in shown)
    after_break = next(i for i, token in enumerate(shown) if "↵" in token) + 1
    assert line_starts == {after_break}
    marked, _ = display_tokens(byte_level, ids, mark_words=True)
    words, _, groups = merge_word_pieces(marked, np.ones(len(marked)))
    assert words[:6] == ["the", "model", "writes", "↵", "an", "answer"]  # the line break is a block of its own
    assert sum(len(group) for group in groups) == len(ids)


def test_word_piece_tokens_are_shown_as_they_are(bundle):
    ids = bundle.tokenizer("the unaffable model")["input_ids"]
    shown, line_starts = display_tokens(bundle.tokenizer, ids)
    assert shown == bundle.tokenizer.convert_ids_to_tokens(ids) and not line_starts


def test_the_completion_chart_colours_tokens_by_probability_or_change_and_selects_by_index():
    tokens, values = ["3", "+", "4", "↵", "####", "7"], np.array([0.9, 0.1, np.nan, 0.5, 0.99, 0.3])
    chart = charts.completion_chart(layout_tokens(tokens, line_starts={4}), values, selected_index=2,
                                    hover=pd.DataFrame({"rank": list("123456"), "model's top token": list("abcdef")}))
    spec = chart.to_dict()
    rows = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert rows.token.tolist() == tokens and rows.line.tolist() == [0, 0, 0, 0, 1, 1]
    assert rows.hover1.tolist() == list("abcdef")  # shown as "model's top token": any name is safe as a title
    vl_convert.vegalite_to_svg(spec)  # Vega draws it
    assert [param["name"] for param in spec["params"]] == [charts.COMPLETION]
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"][::5] == [0.0, 1.0]
    assert rows.value.tolist()[2] == 0 and rows.shown.tolist()[2] == "—"  # unknown: drawn as 0, said in the tooltip
    change = charts.completion_chart(layout_tokens(tokens), values - 0.5, change=True).to_dict()
    domain = change["layer"][0]["encoding"]["color"]["scale"]["domain"]
    assert domain[0] == pytest.approx(-0.49) and domain[-1] == pytest.approx(0.49)
    table = pd.DataFrame({"#": [0, 1], "token": ["a", "a"], "all heads": [0.2, 0.9], "1 head pruned": [0.4, 0.1]})
    dots = charts.probability_change_chart(table, before="all heads", after="1 head pruned").to_dict()
    assert len(dots["layer"]) == 2
    vl_convert.vegalite_to_svg(dots)
