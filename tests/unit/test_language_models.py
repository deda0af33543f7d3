"""Causal language models (t3vis.model.language_models) on tiny random Llama and GPT-2 decoders: loading with the
t3vis attention, teacher-forced completion scores checked against the model's own logits, greedy generation
checked against transformers' generate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from t3vis.errors import ModelError
from t3vis.fixtures.tiny_models import TINY_LM_EOS, save_tiny_language_model, save_tiny_model
from t3vis.model.access import AttentionProbe, run_with_probe
from t3vis.model.language_models import (GENERATION, completion_token_scores, greedy_generate, greedy_generate_batch,
                                         load_language_model, stop_token_ids)
from t3vis.model.pretrained import minilm_path

DECODERS = ("llama", "gpt2")
EOS = TINY_LM_EOS


save_tiny_causal_lm = save_tiny_language_model


@pytest.fixture(scope="module", params=DECODERS)
def bundle(request, tmp_path_factory):
    folder = save_tiny_causal_lm(tmp_path_factory.mktemp(f"tiny-{request.param}-lm"), request.param)
    return load_language_model(folder, device="cpu")


def _examples(seed: int = 0, count: int = 5):
    """Prompt + completion pairs of random tokens, lengths varying: (input_ids, labels)."""
    generator = np.random.default_rng(seed)
    input_ids, labels = [], []
    for _ in range(count):
        prompt = generator.integers(1000, 30000, size=generator.integers(1, 9)).tolist()
        completion = generator.integers(1000, 30000, size=generator.integers(1, 12)).tolist()
        input_ids.append(prompt + completion)
        labels.append([-100] * len(prompt) + completion)
    return input_ids, labels


def test_the_bundle_is_a_language_model_with_t3vis_attention(bundle):
    assert bundle.task == GENERATION and bundle.label_names == () and not bundle.classifier_was_initialised
    assert bundle.decoder and (bundle.num_layers, bundle.num_heads) == (2, 4) and bundle.max_length == 128
    assert bundle.model.config._attn_implementation == "t3vis" and not bundle.model.training
    assert stop_token_ids(bundle) == (EOS,)
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 1012]])
    with torch.no_grad():
        plain = bundle.model(input_ids=ids).logits
        output, probe = run_with_probe(bundle.model, AttentionProbe(record=True), input_ids=ids)
        mask = torch.ones(2, 4)
        mask[1, 2] = 0
        masked, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), input_ids=ids)
    attention = probe.stacked_attentions()[:, 0]  # (L, H, T, T)
    assert attention.shape == (2, 4, 6, 6)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 4, 6))
    assert bool((attention.triu(diagonal=1) == 0).all())  # causal: no token attends to a later one
    torch.testing.assert_close(output.logits, plain)
    assert (masked.logits - plain).abs().max() > 1e-3  # the masked head mattered


def test_gold_probabilities_are_the_softmax_of_the_models_own_logits_at_the_shifted_positions(bundle):
    input_ids, labels = _examples()
    scores = completion_token_scores(bundle, input_ids, labels, batch_size=2)
    row = 0
    for example, (ids, gold) in enumerate(zip(input_ids, labels)):
        with torch.no_grad():
            logits = bundle.model(input_ids=torch.tensor([ids])).logits[0]  # (T, V), this example alone
            loss = bundle.model(input_ids=torch.tensor([ids]), labels=torch.tensor([gold])).loss
        log_probs = torch.log_softmax(logits.double(), dim=-1)
        positions = [t for t in range(1, len(ids)) if gold[t] != -100]
        for t in positions:
            assert (scores.example[row], scores.position[row], scores.token_id[row]) == (example, t, gold[t])
            assert scores.log_probability[row] == pytest.approx(float(log_probs[t - 1, gold[t]]), abs=1e-5)
            expected_rank = int((logits[t - 1] > logits[t - 1, gold[t]]).sum()) + 1
            assert scores.rank[row] == expected_rank
            assert scores.predicted_id[row] == int(logits[t - 1].argmax())
            row += 1
        nll = -np.mean([float(log_probs[t - 1, gold[t]]) for t in positions])
        assert scores.loss[example] == pytest.approx(nll, abs=1e-5)
        assert scores.loss[example] == pytest.approx(float(loss), abs=1e-5)  # transformers' own loss on the example
        assert scores.perplexity[example] == pytest.approx(np.exp(nll), rel=1e-5)
        assert scores.completion_tokens[example] == len(positions)
    assert row == len(scores.token_id)
    np.testing.assert_allclose(scores.gold_probability, np.exp(scores.log_probability))
    np.testing.assert_array_equal(scores.rank == 1, scores.correct)


def test_rank_one_is_exactly_the_argmax_on_the_models_own_greedy_tokens(bundle):
    prompt = [101, 2023, 2003, 1037]
    generated = greedy_generate(bundle, prompt, max_new_tokens=6, eos_token_ids=())
    scores = completion_token_scores(bundle, [prompt + generated], [[-100] * len(prompt) + generated])
    assert scores.correct.all() and (scores.rank == 1).all() and scores.token_accuracy[0] == 1.0
    wrong = [(token + 1) % 30000 for token in generated]  # never the argmax
    scores = completion_token_scores(bundle, [prompt + wrong], [[-100] * len(prompt) + wrong])
    assert not scores.correct.any() and (scores.rank > 1).all() and scores.token_accuracy[0] == 0.0


def test_batching_and_padding_do_not_change_the_scores(bundle):
    input_ids, labels = _examples(seed=1, count=7)
    one = completion_token_scores(bundle, input_ids, labels, batch_size=1)
    many = completion_token_scores(bundle, input_ids, labels, batch_size=4)
    np.testing.assert_allclose(one.log_probability, many.log_probability, atol=1e-5)
    np.testing.assert_array_equal(one.rank, many.rank)
    np.testing.assert_allclose(one.loss, many.loss, atol=1e-5)


def test_logits_are_computed_only_at_completion_positions(bundle):
    """The (T, V) logits of a batch are never made: the head projects only the positions that score a token."""
    input_ids, labels = _examples(seed=2, count=4)
    rows = []
    head = bundle.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, output: rows.append(tuple(output.shape)))
    try:
        completion_token_scores(bundle, input_ids, labels, batch_size=4)
    finally:
        handle.remove()
    completion = sum(sum(label != -100 for label in gold[1:]) for gold in labels)
    assert rows == [(completion, head.out_features)]


def test_an_example_without_completion_tokens_has_no_loss(bundle):
    scores = completion_token_scores(bundle, [[101, 2023], [101, 2023, 2003]], [[-100, -100], [-100, -100, 2003]])
    assert np.isnan(scores.loss[0]) and np.isnan(scores.perplexity[0]) and scores.completion_tokens.tolist() == [0, 1]
    assert scores.example.tolist() == [1] and np.isfinite(scores.loss[1])


def test_a_head_mask_changes_the_scores_and_ones_change_nothing(bundle):
    input_ids, labels = _examples(seed=3, count=3)
    plain = completion_token_scores(bundle, input_ids, labels)
    ones = completion_token_scores(bundle, input_ids, labels, head_mask=torch.ones(2, 4))
    mask = torch.ones(2, 4)
    mask[0, :] = 0
    pruned = completion_token_scores(bundle, input_ids, labels, head_mask=mask)
    np.testing.assert_allclose(ones.log_probability, plain.log_probability, atol=1e-5)
    assert np.abs(pruned.log_probability - plain.log_probability).max() > 1e-3
    with pytest.raises(ValueError, match="head_mask has shape"):
        completion_token_scores(bundle, input_ids, labels, head_mask=torch.ones(3, 4))


def test_greedy_generation_equals_transformers_generate(bundle):
    prompts = [[101, 2023, 2003, 1037, 3231], [101, 7592], [101, 2023, 2003, 1037, 3231, 1012, 2009, 2001]]
    ours = [greedy_generate(bundle, prompt, max_new_tokens=12) for prompt in prompts]
    for prompt, generated in zip(prompts, ours):
        ids = torch.tensor([prompt])
        with torch.no_grad():
            expected = bundle.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                             max_new_tokens=12, eos_token_id=EOS, pad_token_id=0)
        assert generated == expected[0, len(prompt):].tolist()
    assert greedy_generate_batch(bundle, prompts, max_new_tokens=12, batch_size=3) == ours  # left padding


def test_generation_is_bounded_and_stops_at_the_end_of_sequence_token(bundle):
    prompt = [101, 2023, 2003, 1037]
    free = greedy_generate(bundle, prompt, max_new_tokens=8, eos_token_ids=())
    assert len(free) == 8
    assert greedy_generate(bundle, prompt, max_new_tokens=3, eos_token_ids=()) == free[:3]
    stop = free[2]
    stopped = greedy_generate(bundle, prompt, max_new_tokens=8, eos_token_ids=[stop])
    assert stopped == free[:free.index(stop) + 1] and stopped[-1] == stop
    assert greedy_generate(bundle, prompt, max_new_tokens=0) == []
    long_prompt = [2023] * (bundle.max_length - 2)
    assert len(greedy_generate(bundle, long_prompt, max_new_tokens=10, eos_token_ids=())) == 2  # the model's limit
    with pytest.raises(ValueError, match="no room"):
        greedy_generate(bundle, [2023] * bundle.max_length, max_new_tokens=1)
    with pytest.raises(ValueError, match="empty"):
        greedy_generate(bundle, [], max_new_tokens=1)


def test_generation_runs_in_eval_mode_without_grad_and_gives_the_mode_back(bundle):
    bundle.model.train()
    try:
        prompt = [101, 2023, 2003]
        calls = []
        handle = bundle.model.register_forward_hook(
            lambda module, args, kwargs, output: calls.append((module.training, torch.is_grad_enabled())),
            with_kwargs=True)
        try:
            greedy_generate(bundle, prompt, max_new_tokens=3, eos_token_ids=())
            completion_token_scores(bundle, [prompt + [2023]], [[-100, -100, -100, 2023]])
        finally:
            handle.remove()
        assert calls and all(mode == (False, False) for mode in calls)
        assert bundle.model.training
    finally:
        bundle.model.eval()


def test_a_head_mask_reaches_every_generation_step(bundle):
    prompt = [101, 2023, 2003, 1037, 3231]
    plain = greedy_generate(bundle, prompt, max_new_tokens=10, eos_token_ids=())
    assert greedy_generate(bundle, prompt, max_new_tokens=10, eos_token_ids=(), head_mask=torch.ones(2, 4)) == plain
    mask = torch.zeros(2, 4)
    pruned = greedy_generate(bundle, prompt, max_new_tokens=10, eos_token_ids=(), head_mask=mask)
    # the same with the cache-free reference: one full forward per step, heads masked
    ids = list(prompt)
    for _ in range(10):
        with torch.no_grad():
            output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), input_ids=torch.tensor([ids]))
        ids.append(int(output.logits[0, -1].argmax()))
    assert pruned == ids[len(prompt):]


def test_inputs_are_checked(bundle):
    with pytest.raises(ValueError, match="2 input_ids but 1 labels"):
        completion_token_scores(bundle, [[1, 2], [1, 2]], [[-100, 2]])
    with pytest.raises(ValueError, match="3 input_ids but 2 labels"):
        completion_token_scores(bundle, [[1, 2, 3]], [[-100, 2]])
    with pytest.raises(ValueError, match="neither -100 nor"):
        completion_token_scores(bundle, [[1, 2]], [[-100, 10**6]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        completion_token_scores(bundle, [[1, 10**6]], [[-100, 2]])
    with pytest.raises(TypeError):
        completion_token_scores(bundle, "some text", [[-100]])


def test_a_tokenizer_without_padding_token_pads_with_its_end_of_sequence_token(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.pad_token = None
    tokenizer.eos_token = "[SEP]"
    folder = save_tiny_causal_lm(tmp_path / "lm", "gpt2", tokenizer=tokenizer, pad_token_id=None)
    bundle = load_language_model(folder, device="cpu")
    assert bundle.tokenizer.pad_token == "[SEP]" and bundle.model.config.pad_token_id == EOS
    assert bundle.pad_token_id == EOS


def test_models_that_are_not_causal_language_models_are_refused(tmp_path):
    with pytest.raises(ModelError, match="encoder: generation needs a decoder"):
        load_language_model(save_tiny_model(tmp_path / "bert", "bert"), device="cpu")
    with pytest.raises(ModelError, match="not a causal language model: .*lm_head"):  # a classifier: no LM head
        load_language_model(save_tiny_model(tmp_path / "classifier", "llama", tie_word_embeddings=False), device="cpu")
    folder = tmp_path / "opt"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "opt"}')
    with pytest.raises(ModelError, match="does not support the 'opt' architecture"):
        load_language_model(folder, device="cpu")
    with pytest.raises(ModelError, match="GGUF file"):
        load_language_model(tmp_path / "model.gguf", device="cpu")


def test_a_lora_adapter_over_a_causal_lm_loads_over_its_base(tmp_path):
    peft = pytest.importorskip("peft")
    base = save_tiny_causal_lm(tmp_path / "base", "llama")
    torch.manual_seed(0)
    trained = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                                  peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, init_lora_weights=False,
                                                  target_modules=["q_proj", "v_proj"])).eval()
    trained.save_pretrained(tmp_path / "adapter")
    bundle = load_language_model(tmp_path / "adapter", device="cpu")
    assert type(bundle.model).__name__.startswith("PeftModel") and bundle.task == GENERATION
    assert bundle.name == str(tmp_path / "adapter")
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231]])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        output, probe = run_with_probe(bundle.model, AttentionProbe(record=True), input_ids=ids)
        base_logits = load_language_model(base, device="cpu").model(input_ids=ids).logits
    torch.testing.assert_close(output.logits, expected, atol=1e-5, rtol=1e-5)
    assert (output.logits - base_logits).abs().max() > 1e-3 and probe.stacked_attentions().shape == (2, 1, 4, 5, 5)
    prompt = ids[0].tolist()
    generated = greedy_generate(bundle, prompt, max_new_tokens=6, eos_token_ids=())
    with torch.no_grad():
        reference = trained.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=6, eos_token_id=None, pad_token_id=0)
    assert generated == reference[0, 5:].tolist()
    scores = completion_token_scores(bundle, [prompt + generated], [[-100] * 5 + generated])
    assert scores.correct.all()

    classifier = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                                     peft.LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj"]))
    classifier.save_pretrained(tmp_path / "classifier-adapter")
    with pytest.raises(ModelError, match="trained for SEQ_CLS"):
        load_language_model(tmp_path / "classifier-adapter", device="cpu")
