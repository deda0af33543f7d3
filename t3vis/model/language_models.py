"""Causal language models for the generation task: loading one, scoring its completions, generating greedily.

A language model is loaded like a classifier (:func:`t3vis.model.access.load_model`): with the t3vis attention, so
:func:`t3vis.model.access.run_with_probe` captures its attention and masks its heads; a ``peft`` adapter folder
(LoRA over a causal LM) is loaded over its base, which is kept once per process for all the adapters of a run.

Teacher forcing: the logit at position t scores token t+1. Labels follow transformers' convention: ``labels`` has
the length of ``input_ids``, prompt positions hold -100, and ``labels[t]`` (t >= 1) is the gold token scored by
the logits at t-1 (``labels[0]`` is never scored, as in transformers' own loss). The vocabulary is large (49,152
for SmolLM2), so :func:`completion_token_scores` computes logits at the completion positions only (the model's
``logits_to_keep``) and never holds a batch's (T, V) tensor past that batch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from t3vis.errors import ModelError
from t3vis.model.access import (ATTENTION_NAME, AttentionProbe, ModelBundle, _number_attention_layers, eval_mode,
                                install_module_attention, load_adapter, model_max_length, run_with_probe)
from t3vis.model.adapters import adapter_settings, hub_adapter_folder, is_adapter_folder, unwrapped
from t3vis.model.families import family_of, set_padding_token
from t3vis.model.token_scores import score_tokens, scored_positions
from t3vis.model.tokenizers import _check_tokenizer_matches, _load_tokenizer
from t3vis.tasks import GENERATION

IGNORE = -100  # the label of a position that is not scored (a prompt token, padding)


def load_language_model(
    name_or_path: str | Path,
    *,
    tokenizer: str | Path | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    base_model: str | Path | None = None,
) -> ModelBundle:
    """Load a causal language model (``AutoModelForCausalLM``) and its tokenizer, in eval mode, with t3vis attention.

    ``name_or_path`` may be a ``peft`` adapter folder (LoRA over a causal LM): its base (``base_model``, default
    the one the adapter names) is loaded once per process and the adapter attached. A tokenizer without a
    padding token pads with its end-of-sequence token. The bundle has no label names (a language model's outputs
    are its vocabulary, ``len(bundle.tokenizer)``) and ``task`` "generation".

    Parameters
    ----------
    name_or_path : str or Path
        A local folder (a Trainer checkpoint, a saved model, a converted GGUF) or a hub name (needs network).
    tokenizer : str or Path, optional
        Where to load the tokenizer from when the checkpoint folder has none.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default: CUDA when available.
    trust_remote_code : bool
        Run model code shipped with the weights. Off by default: it executes arbitrary code.
    base_model : str or Path, optional
        The base model of an adapter folder, when not the one it names (e.g. moved).
    """
    if is_adapter_folder(name_or_path):
        return _load_adapter(name_or_path, base_model, tokenizer=tokenizer, device=device,
                             trust_remote_code=trust_remote_code)
    source = str(name_or_path)
    if source.endswith(".gguf"):
        raise ModelError(f"{source} is a GGUF file: convert it into a checkpoint folder first "
                         "(t3vis.model.gguf_checkpoints.gguf_to_checkpoint) and load that folder.")
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        hub_adapter = hub_adapter_folder(source)  # a hub repository may hold an adapter (no config.json)
        if hub_adapter is not None:
            return _load_adapter(hub_adapter, base_model, tokenizer=tokenizer, device=device,
                                 trust_remote_code=trust_remote_code)
        raise ModelError(f"Cannot load a model config from {source!r}: {exc}. Give a folder with config.json "
                         "(a Trainer checkpoint or a saved model) or, when online, a hub model name.") from exc
    family = family_of(config)  # an unsupported architecture is refused before its weights are read
    if not family.decoder:
        raise ModelError(f"{source!r} is a {family.name} model, an encoder: generation needs a decoder language model "
                         f"(GPT-2, Llama, Qwen, Mistral).")
    quantized = getattr(config, "quantization_config", None)
    if isinstance(quantized, dict) and quantized.get("quant_method") == "gguf":
        raise ModelError(f"{source!r} names a GGUF quantization in its config.json: convert the GGUF file with "
                         "t3vis.model.gguf_checkpoints.gguf_to_checkpoint and load that folder.")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(source, attn_implementation=ATTENTION_NAME,
                                                           trust_remote_code=trust_remote_code,
                                                           output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"Cannot load a causal language model from {source!r}: {exc}") from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:  # e.g. a classifier checkpoint: its language-model head would be random
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ModelError(f"{source!r} is not a causal language model: {len(missing)} of its weights would be random "
                         f"({shown}). Give a checkpoint saved from AutoModelForCausalLM (or a LoRA adapter over one).")
    tokenizer_obj = _load_tokenizer(source, tokenizer, trust_remote_code=trust_remote_code)
    _check_tokenizer_matches(model, tokenizer_obj, source)
    set_padding_token(model, tokenizer_obj)
    _number_attention_layers(model)
    install_module_attention(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    return ModelBundle(
        model=model,
        tokenizer=tokenizer_obj,
        name=source,
        label_names=(),
        num_layers=int(model.config.num_hidden_layers),
        num_heads=int(model.config.num_attention_heads),
        max_length=model_max_length(model, tokenizer_obj),
        classifier_was_initialised=False,
        task=GENERATION,
    )


def _load_adapter(folder, base_model, *, tokenizer, device, trust_remote_code) -> ModelBundle:
    """The base language model with the adapter attached (one base per process, as for classifiers)."""
    task_type = adapter_settings(folder).get("task_type")
    if task_type not in (None, "CAUSAL_LM"):
        raise ModelError(f"The adapter in {folder} was trained for {task_type}, not as a causal language model "
                         "(peft task_type CAUSAL_LM): load it with t3vis.model.access.load_model.")
    return load_adapter(folder, base_model, lambda base, tokenizer_source, on: load_language_model(
        base, tokenizer=tokenizer or tokenizer_source, device=on, trust_remote_code=trust_remote_code),
        key=(GENERATION, str(tokenizer), trust_remote_code), device=device)


# ---- teacher-forced scores of completion tokens ----------------------------------------------------------------


@dataclass(frozen=True)
class CompletionScores:
    """Teacher-forced scores of the M completion tokens of N examples (one row per token, examples in order).

    Per token: ``example`` (index into the inputs), ``position`` (its index in the example's ``input_ids``; the
    logits at ``position - 1`` score it), ``token_id`` (the gold token, from the labels), ``log_probability`` of
    the gold token, ``rank`` of the gold token among the vocabulary (1 = the model's top token; sorted by logit,
    ties in id order as argmax breaks them, so ``rank == 1`` exactly when ``predicted_id == token_id``) and
    ``predicted_id`` (the argmax). Per example: ``loss`` (mean negative log-probability of its completion tokens,
    transformers' loss on that example alone), ``perplexity`` = exp(loss) and ``completion_tokens``; an example
    with no completion token has NaN loss and perplexity.
    """

    example: np.ndarray  # (M,) int64
    position: np.ndarray  # (M,) int64
    token_id: np.ndarray  # (M,) int64
    log_probability: np.ndarray  # (M,) float64
    rank: np.ndarray  # (M,) int64, 1-based
    predicted_id: np.ndarray  # (M,) int64
    loss: np.ndarray  # (N,) float64
    perplexity: np.ndarray  # (N,) float64
    completion_tokens: np.ndarray  # (N,) int64

    @property
    def gold_probability(self) -> np.ndarray:
        """(M,) the probability of each gold token."""
        return np.exp(self.log_probability)

    @property
    def correct(self) -> np.ndarray:
        """(M,) whether the teacher-forced argmax is the gold token."""
        return self.predicted_id == self.token_id

    @property
    def token_accuracy(self) -> np.ndarray:
        """(N,) the share of each example's completion tokens predicted right (NaN without completion tokens)."""
        right = np.bincount(self.example, weights=self.correct, minlength=len(self.loss))
        with np.errstate(invalid="ignore", divide="ignore"):
            return right / self.completion_tokens


def completion_token_scores(
    bundle: ModelBundle,
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    head_mask: torch.Tensor | None = None,
) -> CompletionScores:
    """Score every completion token (label != -100) of each example, teacher forced, in eval mode, without grad.

    Parameters
    ----------
    bundle : ModelBundle
        A causal language model (:func:`load_language_model`).
    input_ids : sequence of N sequences of int
        Each example's tokens, prompt and completion, unpadded (lengths may differ).
    labels : sequence of N sequences of int
        Same lengths as ``input_ids``: -100 where a token is not scored (the prompt), else the gold token.
    batch_size : int
        Examples per forward pass. Memory: one batch's logits at its completion positions, (tokens, V).
    head_mask : Tensor (L, H), optional
        Multiplies each head's attention (0 removes a head): scores of the pruned model.

    Returns
    -------
    CompletionScores
        M rows for the M completion tokens, N per-example values.
    """
    inputs = _token_lists(input_ids, "input_ids")
    golds = _token_lists(labels, "labels")
    if len(inputs) != len(golds):
        raise ValueError(f"{len(inputs)} input_ids but {len(golds)} labels")
    vocabulary = _vocabulary_size(bundle)
    for index, (ids, gold) in enumerate(zip(inputs, golds)):
        if len(ids) != len(gold):
            raise ValueError(f"example {index}: {len(ids)} input_ids but {len(gold)} labels")
        if not ids:
            raise ValueError(f"example {index} has no tokens")
        if len(ids) > bundle.max_length:
            raise ValueError(f"example {index} has {len(ids)} tokens; the model takes at most {bundle.max_length}")
        if min(ids) < 0 or max(ids) >= vocabulary:
            raise ValueError(f"example {index} has token ids outside the vocabulary [0, {vocabulary})")
        if any(token != IGNORE and not 0 <= token < vocabulary for token in gold):
            raise ValueError(f"example {index} has labels that are neither -100 nor token ids below {vocabulary}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    _check_head_mask(bundle, head_mask)
    return _completion_token_scores(bundle, inputs, golds, batch_size=batch_size, head_mask=head_mask)


def _completion_token_scores(bundle, inputs, golds, *, batch_size, head_mask) -> CompletionScores:
    columns: dict[str, list[np.ndarray]] = {name: [] for name in
                                            ("example", "position", "token_id", "log_probability", "rank", "predicted")}
    order = sorted(range(len(inputs)), key=lambda index: len(inputs[index]))  # similar lengths: little padding
    with torch.no_grad(), eval_mode(bundle.model):
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            for name, values in _score_batch(bundle, chosen, [inputs[i] for i in chosen], [golds[i] for i in chosen],
                                             head_mask).items():
                columns[name].append(values)
    flat = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in columns.items()}
    rows = np.lexsort((flat["position"], flat["example"]))  # examples in input order, tokens in text order
    example = flat["example"][rows].astype(np.int64)
    log_probability = flat["log_probability"][rows].astype(np.float64)
    count = np.bincount(example, minlength=len(inputs)).astype(np.int64)
    total = np.bincount(example, weights=-log_probability, minlength=len(inputs))
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    ids = {name: flat[name][rows].astype(np.int64) for name in ("position", "token_id", "rank", "predicted")}
    return CompletionScores(example=example, position=ids["position"], token_id=ids["token_id"],
                            log_probability=log_probability, rank=ids["rank"], predicted_id=ids["predicted"],
                            loss=loss, perplexity=np.exp(loss), completion_tokens=count)


def _score_batch(bundle, examples, inputs, golds, head_mask) -> dict[str, np.ndarray]:
    device = bundle.device
    length = max(len(ids) for ids in inputs)
    ids = torch.full((len(inputs), length), bundle.pad_token_id, dtype=torch.long)  # right-padded: (B, T)
    mask = torch.zeros((len(inputs), length), dtype=torch.long)
    labels = torch.full((len(inputs), length), IGNORE, dtype=torch.long)
    for row, (tokens, gold) in enumerate(zip(inputs, golds)):
        ids[row, :len(tokens)] = torch.tensor(tokens)
        mask[row, :len(tokens)] = 1
        labels[row, :len(gold)] = torch.tensor(gold)
    rows, scoring = scored_positions(labels, IGNORE)  # (K,), (K,): the batch row and logit position of each score
    if len(rows) == 0:  # no completion token in the batch: no forward pass
        return {name: np.zeros(0) for name in ("example", "position", "token_id", "log_probability", "rank",
                                                "predicted")}
    keep = torch.zeros_like(mask, dtype=torch.bool)
    keep[rows, scoring] = True
    gold = labels[rows, scoring + 1]  # (K,)
    # a boolean (B, T) logits_to_keep: the logits of those positions only, flattened in row order, (K, V)
    logits = _forward(bundle, head_mask, input_ids=ids.to(device), attention_mask=mask.to(device),
                      logits_to_keep=keep.to(device)).logits
    if tuple(logits.shape[:-1]) != (len(rows),):
        raise ModelError(f"{type(unwrapped(bundle.model)).__name__} returned logits for {logits.shape[0]} positions, "
                         f"not the {len(rows)} asked for (logits_to_keep).")
    scores = score_tokens(logits, gold)
    del logits
    return {"example": np.asarray(examples)[rows.numpy()], "position": (scoring + 1).numpy(),
            "token_id": gold.numpy(), "log_probability": scores.log_probability.numpy(),
            "rank": scores.rank.numpy(), "predicted": scores.predicted.numpy()}


# ---- greedy generation ----------------------------------------------------------------------------------------


def greedy_generate(
    bundle: ModelBundle,
    prompt_ids: Sequence[int],
    *,
    max_new_tokens: int,
    head_mask: torch.Tensor | None = None,
    eos_token_ids: Collection[int] | None = None,
) -> list[int]:
    """The model's greedy continuation of one prompt: the new token ids only.

    At most ``max_new_tokens`` (and no more than the model's ``max_length`` leaves after the prompt); it stops
    after an end-of-sequence token, which is then the last id returned. Eval mode, no grad; ``head_mask`` (L, H)
    prunes heads. See :func:`greedy_generate_batch`.
    """
    return greedy_generate_batch(bundle, [prompt_ids], max_new_tokens=max_new_tokens, head_mask=head_mask,
                                 eos_token_ids=eos_token_ids)[0]


def greedy_generate_batch(
    bundle: ModelBundle,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    head_mask: torch.Tensor | None = None,
    eos_token_ids: Collection[int] | None = None,
) -> list[list[int]]:
    """Greedy continuations of several prompts, ``batch_size`` at a time (left-padded, with a key-value cache).

    Parameters
    ----------
    prompts : sequence of N sequences of int
        Token ids of each prompt (with its chat template applied, when the model wants one).
    max_new_tokens : int
        The most tokens generated per prompt; fewer when the model's ``max_length`` is reached first.
    head_mask : Tensor (L, H), optional
        Multiplies each head's attention (0 removes a head) in every step.
    eos_token_ids : collection of int, optional
        Tokens that end a generation; default: the model's generation config's and the tokenizer's
        end-of-sequence tokens.

    Returns
    -------
    list of N lists of int
        The generated ids of each prompt, ending with an end-of-sequence id when the model stopped by itself.
    """
    prompts = _token_lists(prompts, "prompts")
    vocabulary = _vocabulary_size(bundle)
    for index, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {index} is empty")
        if len(prompt) >= bundle.max_length:
            raise ValueError(f"prompt {index} has {len(prompt)} tokens, leaving no room to generate within the "
                             f"model's {bundle.max_length}")
        if min(prompt) < 0 or max(prompt) >= vocabulary:
            raise ValueError(f"prompt {index} has token ids outside the vocabulary [0, {vocabulary})")
    if max_new_tokens < 0 or batch_size < 1:
        raise ValueError("max_new_tokens must be at least 0 and batch_size at least 1")
    _check_head_mask(bundle, head_mask)
    stop = set(stop_token_ids(bundle) if eos_token_ids is None else (int(token) for token in eos_token_ids))
    results: list[list[int]] = [[] for _ in prompts]
    if max_new_tokens == 0:
        return results
    order = sorted(range(len(prompts)), key=lambda index: -len(prompts[index]))
    with torch.no_grad(), eval_mode(bundle.model):
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            limits = [min(max_new_tokens, bundle.max_length - len(prompts[index])) for index in chosen]
            for index, generated in zip(chosen, _generate(bundle, [prompts[i] for i in chosen], limits, stop,
                                                          head_mask)):
                results[index] = generated
    return results


def stop_token_ids(bundle: ModelBundle) -> tuple[int, ...]:
    """The end-of-sequence ids of a language model: its generation config's (what ``generate`` stops at) and its
    tokenizer's (e.g. a chat model's end-of-turn token)."""
    ids = []
    generation_config = getattr(unwrapped(bundle.model), "generation_config", None)
    for value in (getattr(generation_config, "eos_token_id", None), getattr(bundle.model.config, "eos_token_id", None),
                  bundle.tokenizer.eos_token_id):
        ids.extend(value if isinstance(value, (list, tuple)) else [] if value is None else [value])
    return tuple(dict.fromkeys(int(token) for token in ids))


def _generate(bundle, prompts, limits, stop, head_mask) -> list[list[int]]:
    """Greedy decoding of one left-padded batch; ``limits``: the most new tokens of each prompt."""
    device, pad = bundle.device, bundle.pad_token_id
    length = max(len(prompt) for prompt in prompts)
    ids = torch.full((len(prompts), length), pad, dtype=torch.long)  # left-padded: (B, T)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, length - len(prompt):] = torch.tensor(prompt)
        mask[row, length - len(prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T): each prompt's own positions, from 0
    limit = torch.tensor(limits, device=device)  # (B,)
    stop_ids = torch.tensor(sorted(stop), dtype=torch.long, device=device)
    done = limit <= 0  # (B,)
    generated = torch.zeros((len(prompts), 0), dtype=torch.long, device=device)  # (B, steps)
    cache = None  # the key-value cache, made by the first forward pass
    while not bool(done.all()):
        output = _forward(bundle, head_mask, input_ids=ids, attention_mask=mask, position_ids=positions,
                          use_cache=True, logits_to_keep=1, cache=cache)
        cache = output.cache
        following = output.logits[:, -1].argmax(dim=-1)  # (B,)
        following = torch.where(done, torch.full_like(following, pad), following)
        generated = torch.cat([generated, following[:, None]], dim=1)
        done = done | torch.isin(following, stop_ids) | (generated.shape[1] >= limit)
        ids = following[:, None]  # (B, 1): the cache holds everything before
        mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
        positions = positions[:, -1:] + 1
    results = []
    for row, tokens in enumerate(generated.tolist()):
        kept = tokens[:limits[row]]
        end = next((at for at, token in enumerate(kept) if token in stop), None)
        results.append(kept if end is None else kept[:end + 1])
    return results


def _forward(bundle: ModelBundle, head_mask: torch.Tensor | None, **inputs):
    if head_mask is None:
        return bundle.model(**inputs)
    output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=head_mask.to(bundle.device)), **inputs)
    return output


def _check_head_mask(bundle: ModelBundle, head_mask: torch.Tensor | None) -> None:
    if head_mask is not None and tuple(head_mask.shape) != (bundle.num_layers, bundle.num_heads):
        raise ValueError(f"head_mask has shape {tuple(head_mask.shape)}; the model has "
                         f"({bundle.num_layers}, {bundle.num_heads}) layers x heads")


def _vocabulary_size(bundle: ModelBundle) -> int:
    return int(bundle.model.get_input_embeddings().num_embeddings)


def _token_lists(values, name: str) -> list[list[int]]:
    """Each example's ids as a list of int (from lists, arrays or 1-d tensors)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray | torch.Tensor):
        raise TypeError(f"{name} should be a sequence of token id sequences, not {type(values).__name__}")
    lists = []
    for index, ids in enumerate(values):
        if isinstance(ids, (str, bytes)) or isinstance(ids, int) or not hasattr(ids, "__iter__"):
            raise TypeError(f"{name}[{index}] should be a sequence of token ids, not {type(ids).__name__}")
        lists.append([int(token) for token in (ids.tolist() if hasattr(ids, "tolist") else ids)])
    return lists

