"""Live analysis of one prompt → completion pair for the generation task's Instance and Attention heads views.

The store holds an example as the model read it: the prompt's text (``examples.text``) and the reference
completion's token ids (``units.label``), and the checkpoint's greedy generation (``generations.generated_ids``).
:func:`pair_token_ids` rebuilds the prompt's ids the way ingestion encoded them, so that what the views explain
is what was scored. On top of those ids:

- :func:`completion_scores`: each completion token's probability, rank and the model's argmax there, teacher
  forced, with pruned heads masked (one forward pass, no gradient);
- :func:`completion_saliency`: a clicked completion token's saliency over the tokens before it;
- :func:`next_token_alternatives`: the model's top next tokens at the position that predicts a clicked token;
- :func:`completion_heads`: head importance of the example's completion loss (the mean negative log-probability
  of its reference tokens, as ingestion defines it), its attention and its token probabilities, in one forward
  and one backward pass;
- :func:`evaluate_generation`: loss, perplexity, token accuracy and the generations' score over a split, with
  pruned heads (the head view's evaluation button);
- :func:`display_tokens`: tokens as a reader wants to see them (a byte-level BPE's ``Ġ`` and ``Ċ`` decoded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from t3vis.analysis.attention_maps import AttentionMaps, attention_collector, collected_maps
from t3vis.attribution.base import Attribution, AttributionMethod
from t3vis.attribution.completion import CompletionInputs, attribute_completion, completion_target, prepare_completion
from t3vis.data.completions import CompletionSet, encode_completions, final_answer, generated_answer
from t3vis.data.rouge import rouge_l
from t3vis.model.access import AttentionProbe, ModelBundle, eval_mode, run_with_probe
from t3vis.model.heads import Head, head_mask
from t3vis.model.language_models import CompletionScores, completion_token_scores, greedy_generate_batch, \
    stop_token_ids
from t3vis.model.token_scores import score_tokens, scored_positions
from t3vis.progress import Progress, no_progress
from t3vis.record.generation import completion_losses
from t3vis.record.head_importance import head_mask_gradient

NEWLINE = "↵"  # how a line break inside a token is shown; the next token starts a new line
WORD_MARK = "Ġ"  # marks a word's first piece for t3vis.analysis.token_view.merge_word_pieces


# ---- the example's token ids ----------------------------------------------------------------------------------

def pair_token_ids(tokenizer, prompts: Sequence[str], references: Sequence[str],
                   reference_ids: Sequence[Sequence[int]] | None = None, *, data_format: str = "prompt-completion",
                   max_length: int, max_completion_tokens: int | None = None) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) of each stored pair, as ingestion encoded it
    (:func:`t3vis.data.completions.encode_completions` with the run's format and limits).

    ``prompts`` are the prompts as the model reads them (``examples.text``); ``reference_ids`` the stored reference
    token ids (``units.label`` of the kept tokens), which are kept as they are where given (they are the tokens
    the store scored); the prompt is then cut from the left, as ingestion cut it, to leave them room.
    """
    if not prompts:
        return []
    pairs = CompletionSet(example_ids=np.arange(len(prompts), dtype=np.int64), prompts=list(prompts),
                          completions=[reference or " " for reference in references], answers=[None] * len(prompts),
                          extra=pd.DataFrame(index=range(len(prompts))), format=data_format, columns=(),
                          source="store")
    encoded = encode_completions(tokenizer, pairs, max_length=max_length, max_completion_tokens=max_completion_tokens)
    result = []
    for index, (ids, start) in enumerate(zip(encoded.input_ids, encoded.prompt_lengths)):
        prompt, completion = list(ids[:start]), list(ids[start:])
        stored = None if reference_ids is None else [int(token) for token in reference_ids[index]]
        if stored:
            if len(stored) != len(completion):  # the prompt's room follows the stored completion's length
                keep = int(data_format != "chat" and _starts_with_special(tokenizer, prompt))
                room = max(max_length - len(stored), keep + 1)
                if len(prompt) > room:
                    prompt = prompt[:keep] + prompt[len(prompt) - (room - keep):]
            completion = stored
        result.append((prompt, completion))
    return result


def _starts_with_special(tokenizer, prompt: list[int]) -> bool:
    return bool(prompt) and prompt[0] in set(tokenizer.all_special_ids)


def display_tokens(tokenizer, ids: Sequence[int], *, mark_words: bool = False) -> tuple[list[str], set[int]]:
    """(tokens as shown, indices of the tokens that begin a new line).

    A byte-level BPE's (GPT-2, Llama 3, SmolLM2) or SentencePiece's tokens are decoded one by one: ``Ġthe`` shows
    as ``the``, a line break as ``↵``, and the token after a line break begins a new line. ``mark_words`` puts
    ``Ġ`` before each word's first piece instead of its space, for
    :func:`t3vis.analysis.token_view.merge_word_pieces`. WordPiece tokens (``##ing``) are shown as they are.
    """
    ids = [int(token) for token in ids]
    raw = tokenizer.convert_ids_to_tokens(ids)
    if not any(str(token).startswith(("Ġ", "▁")) or "Ċ" in str(token) for token in raw):
        return [str(token) for token in raw], set()
    special = set(tokenizer.all_special_ids)
    shown, starts, after_break = [], set(), False
    for index, token_id in enumerate(ids):
        text = str(raw[index]) if token_id in special else tokenizer.decode([token_id])
        if after_break:
            starts.add(index)
        word_start = index == 0 or after_break or text[:1].isspace() or token_id in special
        after_break = "\n" in text
        text = visible_text(text)
        stripped = text.lstrip(" ") or ("␣" if text else "�")
        shown.append((WORD_MARK if mark_words and word_start else "") + stripped)
    return shown, starts


# ---- teacher-forced scores --------------------------------------------------------------------------------------

def completion_scores(bundle: ModelBundle, prompt_ids: Sequence[int], completion_ids: Sequence[int], *,
                      pruned: Iterable[Head] = ()) -> CompletionScores:
    """Each completion token's gold probability, rank and the argmax there (teacher forced), with the pruned heads
    masked: :func:`t3vis.model.language_models.completion_token_scores` of the one pair (C rows)."""
    ids = list(prompt_ids) + list(completion_ids)
    labels = [-100] * len(prompt_ids) + list(completion_ids)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads) if pruned else None  # (L, H)
    return completion_token_scores(bundle, [ids[:bundle.max_length]], [labels[:bundle.max_length]], head_mask=mask)


def completion_saliency(method: AttributionMethod, bundle: ModelBundle, example: CompletionInputs, index: int, *,
                        pruned: Iterable[Head] = ()) -> Attribution:
    """The saliency of completion token ``index``'s own logit over the tokens the model read to predict it: the
    prompt and the completion before it (:func:`t3vis.attribution.completion.attribute_completion`), cut after the
    explained token, so ``tokens`` and ``scores`` have ``prompt_length + index + 1`` entries, the last (the token
    itself, which its logit does not read) 0. ``probs`` (V,) is the next-token distribution there."""
    target = completion_target(bundle, example, index)
    result = attribute_completion(method, bundle, example, target, pruned=pruned)
    shown = example.prompt_length + index + 1
    return replace(result, tokens=result.tokens[:shown], scores=result.scores[:shown])


def next_token_probabilities(bundle: ModelBundle, example: CompletionInputs, position: int, *,
                             pruned: Iterable[Head] = ()) -> np.ndarray:
    """(V,) the model's next-token distribution at ``position`` (one forward pass over the tokens up to it, no
    gradient), for when no attribution brought it along."""
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    inputs = {name: value[:, :position + 1] for name, value in example.inputs.items()}  # (1, p + 1)
    with eval_mode(bundle.model), torch.no_grad():
        output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs, logits_to_keep=1,
                                   use_cache=False)
    return torch.softmax(output.logits[0, -1].float(), -1).cpu().numpy()  # (V,)


def next_token_alternatives(tokenizer, probs: np.ndarray, token_id: int, *, top: int = 5) -> pd.DataFrame:
    """The model's ``top`` most likely next tokens, and ``token_id`` (the explained one) when it is not among them.

    ``probs`` (V,): the distribution at the position that predicts the token. Columns: token_id, token (decoded, a
    line break shown as ``↵``), probability, rank (1 = the argmax), explained (the row of ``token_id``).
    """
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")[:top]  # (top,)
    chosen = list(order) + ([int(token_id)] if int(token_id) not in set(order.tolist()) else [])
    ranks = [int((probs > probs[index]).sum()) + 1 for index in chosen]
    return pd.DataFrame({"token_id": [int(index) for index in chosen],
                         "token": [visible_text(tokenizer.decode([int(index)])) for index in chosen],
                         "probability": probs[chosen], "rank": ranks,
                         "explained": [int(index) == int(token_id) for index in chosen]})


def visible_text(text: str) -> str:
    """A decoded token with its line breaks and tabs made visible."""
    return text.replace("\r\n", "\n").replace("\n", NEWLINE).replace("\t", "⇥")


# ---- one example's heads ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompletionHeads:
    """One pair through the model with a head mask: its completion loss, each head's importance for that loss,
    its attention and its completion tokens' probabilities (what the head view shows at instance scale)."""

    tokens: list[str]  # (T,) as shown (display_tokens)
    attentions: AttentionMaps  # (L, H, T, T) after the mask; every head pooled, full matrices kept or on demand
    importance: np.ndarray  # (L, H) |dL/dm|, L = the mean negative log-probability of the completion tokens
    gold_probability: np.ndarray  # (C,) each completion token's probability
    rank: np.ndarray  # (C,) its rank among the vocabulary, 1 = the argmax
    predicted: np.ndarray  # (C,) the argmax token id there
    loss: float  # mean negative log-probability of the completion tokens
    truncated: bool  # prompt + completion was longer than the model takes

    @property
    def perplexity(self) -> float:
        return float(np.exp(self.loss))

    @property
    def token_accuracy(self) -> float:
        return float(np.mean(self.rank == 1)) if len(self.rank) else float("nan")

    @property
    def importance_global(self) -> np.ndarray:
        """Importance divided by its largest value, in [0, 1]."""
        largest = self.importance.max()
        return self.importance / largest if largest > 0 else self.importance


def completion_heads(bundle: ModelBundle, prompt_ids: Sequence[int], completion_ids: Sequence[int], *,
                     pruned: Iterable[Head] = ()) -> CompletionHeads:
    """One forward and one backward pass over ``prompt_ids + completion_ids`` with the pruned heads masked: the
    gradient of the completion loss (ingestion's: :func:`t3vis.record.generation.completion_losses`) to each
    head's mask, the attention, and the completion tokens' scores (logits at the scoring positions only)."""
    example = prepare_completion(bundle, prompt_ids, completion_ids)
    ids = example.inputs["input_ids"]  # (1, T)
    labels = torch.full_like(ids, -100)  # (1, T)
    labels[0, example.prompt_length:] = ids[0, example.prompt_length:]
    rows, positions = scored_positions(labels.cpu())  # (K,) each: the logits at t score the token at t + 1
    gold = ids[0, positions + 1]  # (K,)
    keep = torch.zeros_like(ids, dtype=torch.bool)  # (1, T)
    keep[0, positions] = True
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    collector = attention_collector(bundle.num_layers, bundle.num_heads, len(example.tokens))
    rows = rows.to(bundle.device)
    with eval_mode(bundle.model):
        output, gradient = head_mask_gradient(
            bundle.model, example.inputs, None, probe=AttentionProbe(consumer=collector, observe_only=True),
            head_mask=mask, example_losses=lambda out: completion_losses(out.logits, gold, rows, 1),
            logits_to_keep=keep, use_cache=False)
    scores = score_tokens(output.logits.detach(), gold)  # logits (K, V)
    log_probability = scores.log_probability.numpy()  # (K,)
    return CompletionHeads(
        tokens=display_tokens(bundle.tokenizer, ids[0].tolist())[0],
        attentions=collected_maps(collector, (bundle.num_layers, bundle.num_heads, len(example.tokens)), bundle,
                                  example.inputs, mask),
        importance=gradient[0].abs().numpy(),  # (L, H)
        gold_probability=np.exp(log_probability), rank=scores.rank.numpy(), predicted=scores.predicted.numpy(),
        loss=float(-log_probability.mean()) if len(log_probability) else float("nan"), truncated=example.truncated,
    )


def pruning_table(tokens: Sequence[str], before: CompletionHeads, after: CompletionHeads,
                  pruned_label: str) -> pd.DataFrame:
    """Each completion token's probability with all heads and with the pruned ones, and the change."""
    kept = min(len(tokens), len(before.gold_probability), len(after.gold_probability))
    return pd.DataFrame({
        "#": np.arange(kept), "token": list(tokens[:kept]),
        "all heads": before.gold_probability[:kept], pruned_label: after.gold_probability[:kept],
        "change": after.gold_probability[:kept] - before.gold_probability[:kept],
        "rank (all heads)": before.rank[:kept], f"rank ({pruned_label})": after.rank[:kept],
    })


# ---- a split, with pruned heads -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenerationEvaluation:
    loss: float  # mean negative log-probability over all reference completion tokens (as ingestion's metrics)
    perplexity: float  # exp(loss)
    accuracy: float  # share of reference tokens the teacher-forced argmax predicts
    score: float  # mean generation score: exact match of the final answer where the reference has one, else ROUGE-L
    # (a generation's answer: after "####", else its last number, as ingestion reads it)
    exact_match: float  # share of exact final answers among references with one (NaN without any)
    rougeL: float  # mean ROUGE-L F1 of the generations against the references
    n_examples: int


def evaluate_generation(bundle: ModelBundle, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                        references: Sequence[str], *, pruned: Iterable[Head] = (), max_new_tokens: int,
                        generations: Sequence[str] | None = None, batch_size: int = 8,
                        progress: Progress = no_progress) -> GenerationEvaluation:
    """Teacher-forced loss, perplexity and token accuracy of the reference completions, and each prompt's greedy
    generation (at most ``max_new_tokens``) scored as ingestion scores it, with the pruned heads masked.

    Parameters
    ----------
    pairs : sequence of N (prompt ids, completion ids)
        The split's pairs as encoded (:func:`pair_token_ids`).
    references : sequence of N str
        The reference completions' texts (their final answer, after ``####``, is compared exactly).
    generations : sequence of N str, optional
        Generations to score instead of generating (e.g. the store's, for the unpruned model).
    """
    pruned = tuple(pruned)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads) if pruned else None  # (L, H)
    n = len(pairs)
    steps = n if generations is not None else 2 * n
    progress("evaluate", 0, steps)
    log_probability, correct = [], []
    for start in range(0, n, batch_size):
        chunk = pairs[start:start + batch_size]
        scores = completion_token_scores(bundle, [list(p) + list(c) for p, c in chunk],
                                         [[-100] * len(p) + list(c) for p, c in chunk], batch_size=batch_size,
                                         head_mask=mask)
        log_probability.append(scores.log_probability)
        correct.append(scores.correct)
        progress("evaluate", min(start + batch_size, n), steps)
    if generations is None:
        generations = []
        stop = set(stop_token_ids(bundle))
        for start in range(0, n, batch_size):
            generated = greedy_generate_batch(bundle, [list(p) for p, _ in pairs[start:start + batch_size]],
                                              max_new_tokens=max_new_tokens, batch_size=batch_size, head_mask=mask)
            ids = [tokens[:-1] if tokens and tokens[-1] in stop else tokens for tokens in generated]
            generations += bundle.tokenizer.batch_decode(ids, skip_special_tokens=True)
            progress("evaluate", n + min(start + batch_size, n), steps)
    matches, rouge, score = [], [], []
    for text, reference in zip(generations, references):
        text = text or ""
        wanted = final_answer(reference)
        rouge.append(rouge_l(text, reference))
        if wanted is not None:
            matches.append(generated_answer(text) == wanted)
        score.append(float(matches[-1]) if wanted is not None else rouge[-1])
    losses = -np.concatenate(log_probability) if log_probability else np.zeros(0)
    loss = float(losses.mean()) if len(losses) else float("nan")
    return GenerationEvaluation(
        loss=loss, perplexity=float(np.exp(loss)),
        accuracy=float(np.concatenate(correct).mean()) if correct else float("nan"),
        score=float(np.mean(score)) if score else float("nan"),
        exact_match=float(np.mean(matches)) if matches else float("nan"),
        rougeL=float(np.mean(rouge)) if rouge else float("nan"), n_examples=n)
