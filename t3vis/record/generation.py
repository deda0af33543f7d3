"""Ingesting one checkpoint of a causal language model over prompt → completion pairs (the generation task).

One teacher-forced pass over the pairs (length-sorted, right-padded batches; logits only at the completion
positions, so a 49k vocabulary never costs a (T, V) tensor per example) scores every reference completion token:
its gold probability and rank, the argmax and its probability. The same pass gives each example's vector at the
chosen layers (its last token, or the mean over its tokens) and, per head, the aggregate attention and head
functions (induction and previous-token heads included); a random sample of batches runs with gradients to the
head mask: head importance for the completion loss (an example's loss is the mean negative log-probability of its
completion tokens, the loss it is fine-tuned with). Then each prompt is continued greedily (``max_new_tokens``)
and the generation scored against the reference: exact match of the final answer where the reference has one
(GSM8K's ``#### 18``; the generation's answer is what it writes after ``####``, else its last number), ROUGE-L
otherwise. Everything is written in one transaction.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from t3vis.data.completions import CompletionSet, EncodedCompletions, collate_completions, encode_completions, \
    generated_answer
from t3vis.data.rouge import rouge_l
from t3vis.errors import DataError, ModelError
from t3vis.model.access import ModelBundle, check_tokens_are_known, pool_hidden_states
from t3vis.model.language_models import greedy_generate_batch, stop_token_ids
from t3vis.model.token_scores import score_tokens, scored_positions
from t3vis.progress import Progress, no_progress
from t3vis.record.distributed import SINGLE, Shard
from t3vis.record.ingest import (CheckpointRecord, IngestSummary, _jsonable, _resolve_layers, extra_json_lines,
                                 ingest_with_split_tables)
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.layouts import example_projections
from t3vis.record.sharded_pass import BatchPlan, HeadSums, ShardPart, gathered_pass, joined, run_batch
from t3vis.store.database import CheckpointInfo, CheckpointResults, RunInfo
from t3vis.store.generation_rows import completion_token_rows, generation_rows, token_prediction_rows
from t3vis.store.rows import example_rows
from t3vis.tasks import GENERATION

SCORES = ("log_probability", "rank", "predicted", "top_log_probability")  # per completion token, from the pass


def ingest_generation_checkpoint(store, bundle: ModelBundle, data: CompletionSet, **details) -> IngestSummary | None:
    """Compute everything t3vis records for a language-model checkpoint over one split of prompt → completion
    pairs (:func:`t3vis.data.completions.load_completions`) and write it; keyword arguments as
    :func:`t3vis.record.ingest.ingest_checkpoint`, for a model of :func:`t3vis.model.language_models.load_language_model`."""
    return ingest_with_split_tables(store, compute_generation_checkpoint, bundle, data, **details)


def compute_generation_checkpoint(
    bundle: ModelBundle,
    data: CompletionSet,
    *,
    run_id: str,
    checkpoint: str,
    step: int | None = None,
    epoch: float | None = None,
    path: str | Path | None = None,
    dataset: str | None = None,
    extra_metrics: dict | None = None,
    config: IngestConfig = IngestConfig(),
    progress: Progress = no_progress,
    previous: dict[str, pa.Table] | None = None,
    with_split_tables: bool = True,
    shard: Shard = SINGLE,
) -> CheckpointRecord | None:
    """Everything :func:`ingest_generation_checkpoint` writes, computed without touching the store
    (``with_split_tables=False`` skips the completion tokens, ``units``, which the store keeps once per split)."""
    if len(data) == 0:
        raise DataError("There are no prompt → completion pairs to ingest.")
    if bundle.task != GENERATION:
        raise ModelError(f"{bundle.name} is a {bundle.task} model; the generation task needs a causal language "
                         "model (load_language_model, or --task generation).")
    max_length = min(config.max_length or bundle.max_length, bundle.max_length)
    layers = _resolve_layers(config.layers, bundle.num_layers)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    encoded = encode_completions(bundle.tokenizer, data, max_length=max_length,
                                 max_completion_tokens=config.max_completion_tokens)
    check_tokens_are_known(bundle.tokenizer, encoded.input_ids)
    seconds["tokenize"] = time.perf_counter() - started

    started = time.perf_counter()
    result = gathered_pass(lambda: _forward_pass(bundle, encoded, layers=layers, config=config, progress=progress,
                                                 shard=shard),
                           shard, len(encoded), what=f"the forward pass of checkpoint {checkpoint!r}")
    seconds["forward"] = time.perf_counter() - started
    if result is None:
        return None
    scores = {name: result.rows[name] for name in SCORES}  # name -> N arrays (C_i,)

    started = time.perf_counter()
    generated = _generate(bundle, encoded, config, progress)
    seconds["generate"] = time.perf_counter() - started

    started = time.perf_counter()
    projections = example_projections(data.example_ids, result.pooled, config, progress,
                                      (previous or {}).get("projections"))
    seconds["projection"] = time.perf_counter() - started

    per_example = _per_example(scores)
    texts = generated["texts"]
    answers = [None if text is None else generated_answer(text) for text in texts]
    rouge = [None if text is None else rouge_l(text, reference) for text, reference in zip(texts, data.completions)]
    generations = generation_rows(
        data.example_ids, loss=per_example["loss"], token_accuracy=per_example["accuracy"],
        n_tokens=per_example["count"], generations=texts, generated_ids=generated["ids"],
        stopped=generated["stopped"], answers=answers, reference_answers=data.answers, rouge_l=rouge)
    tables = {"unit_predictions": _token_predictions(data.example_ids, scores, encoded), "generations": generations,
              **result.heads.tables()}
    if projections is not None:
        tables["projections"] = projections
    metrics, summary_scores = _metrics(scores, generations, len(data))
    run = RunInfo(
        run_id=run_id, model=bundle.name, task=GENERATION, dataset=dataset or Path(data.source).name or None,
        label_names=(), num_layers=bundle.num_layers, num_heads=bundle.num_heads, max_length=max_length,
        config={**_jsonable(asdict(config)), "layers": list(layers), "format": data.format,
                "columns": list(data.columns)},
    )
    summary = IngestSummary(run_id=run_id, checkpoint=checkpoint, split=config.split, n_examples=len(data),
                            n_truncated=int(encoded.truncated.sum()), accuracy=metrics["accuracy"],
                            loss=metrics["loss"], seconds=seconds, scores=summary_scores)
    return CheckpointRecord(
        run=run,
        checkpoint=CheckpointInfo(run_id=run_id, checkpoint=checkpoint, step=step, epoch=epoch,
                                  path=None if path is None else str(path),
                                  metrics={config.split: metrics, **({"trainer": extra_metrics} if extra_metrics else {})}),
        results=CheckpointResults(
            split=config.split, tables=tables, examples=completion_examples_table(data, encoded),
            split_tables={"units": completion_units_table(data, encoded, bundle.tokenizer)} if with_split_tables else {},
        ),
        summary=summary,
    )


def completion_examples_table(data: CompletionSet, encoded: EncodedCompletions) -> pa.Table:
    """``examples`` rows: the prompt as the model reads it (text) and the reference completion (reference)."""
    return example_rows(data.example_ids, data.prompts, None, None,
                        n_tokens=np.array([len(ids) for ids in encoded.input_ids]), n_tokens_full=encoded.n_tokens_full,
                        extra_json=extra_json_lines(data.extra), references=data.completions)


def completion_units_table(data: CompletionSet, encoded: EncodedCompletions, tokenizer) -> pa.Table:
    """``units`` rows: each kept reference completion token, decoded on its own, its id as the label (the tokens
    cut at the limit are counted in ``examples.n_tokens_full``)."""
    token_ids = [ids[start:] for ids, start in zip(encoded.input_ids, encoded.prompt_lengths)]
    texts = [tokenizer.batch_decode([[token] for token in ids]) for ids in token_ids]
    return completion_token_rows(data.example_ids, token_ids, texts, [len(ids) for ids in token_ids])


def _forward_pass(bundle: ModelBundle, encoded: EncodedCompletions, *, layers: tuple[int, ...], config: IngestConfig,
                  progress: Progress, shard: Shard = SINGLE) -> ShardPart:
    """This process's batches: rows of each example's completion-token scores (SCORES, (C_i,) each), its
    vectors at ``layers``, and the head sums."""
    plan = BatchPlan.of(np.array([len(ids) for ids in encoded.input_ids]), config, shard)
    sums = HeadSums.zeros(bundle, config)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in SCORES}
    pooled: dict[int, list[np.ndarray]] = defaultdict(list)  # layer -> each batch's (B, D)
    n, done = len(plan.my_examples), 0
    progress("forward", 0, n)
    for batch_index in plan.mine:
        indices = plan.batches[batch_index]
        inputs = collate_completions(encoded[indices], bundle.pad_token_id)
        labels = inputs.pop("labels")  # (B, T)
        batch_rows, positions = scored_positions(labels)  # (K,) each: the logits at t score the label at t + 1
        keep = torch.zeros_like(labels, dtype=torch.bool)  # (B, T)
        keep[batch_rows, positions] = True
        gold = labels[batch_rows, positions + 1]  # (K,)
        inputs = {name: value.to(bundle.device) for name, value in inputs.items()}
        inputs["logits_to_keep"] = keep.to(bundle.device)  # logits (K, V), flattened in row order
        device_rows, device_gold = batch_rows.to(bundle.device), gold.to(bundle.device)
        output = run_batch(bundle, inputs, sums, importance=batch_index in plan.with_gradient,
                           attention=batch_index in plan.with_attention,
                           example_losses=lambda out, gold=device_gold, rows=device_rows, batch=len(indices):
                           completion_losses(out.logits, gold, rows, batch))
        scored = score_tokens(output.logits, gold)
        counts = torch.bincount(batch_rows, minlength=len(indices)).tolist()
        for name, values in zip(SCORES, (scored.log_probability, scored.rank, scored.predicted,
                                         scored.top_log_probability)):
            rows[name].extend(part.numpy() for part in torch.split(values, counts))
        for layer in layers:
            hidden = output.hidden_states[layer].detach()  # (B, T, D)
            pooled[layer].append(pool_hidden_states(hidden, inputs["attention_mask"], pooling=config.pooling,
                                                    decoder=True).float().cpu().numpy())
        del output
        done += len(indices)
        progress("forward", done, n)
    return ShardPart(positions=plan.my_examples, rows=rows, pooled=joined(pooled), sums=sums)


def completion_losses(logits: torch.Tensor, gold: torch.Tensor, rows: torch.Tensor, batch: int) -> torch.Tensor:
    """(B,) each example's mean negative log-probability of its completion tokens, from the logits (K, V) at the
    K scoring positions, their gold tokens (K,) and batch rows (K,); differentiable."""
    token_losses = torch.nn.functional.cross_entropy(logits.float(), gold, reduction="none")  # (K,)
    total = torch.zeros(batch, device=logits.device).index_add(0, rows, token_losses)  # (B,)
    count = torch.bincount(rows, minlength=batch).clamp(min=1)  # (B,)
    return total / count


def _generate(bundle: ModelBundle, encoded: EncodedCompletions, config: IngestConfig, progress: Progress) -> dict:
    """Each prompt's greedy continuation: texts (None without generation), ids (stop token dropped), stopped."""
    n = len(encoded)
    if config.max_new_tokens == 0:
        return {"texts": [None] * n, "ids": [None] * n, "stopped": [None] * n}
    prompts = [ids[:start] for ids, start in zip(encoded.input_ids, encoded.prompt_lengths)]
    stop = set(stop_token_ids(bundle))
    generated: list[list[int]] = []
    progress("generate", 0, n)
    for begin in range(0, n, config.batch_size):
        generated.extend(greedy_generate_batch(bundle, prompts[begin:begin + config.batch_size],
                                               max_new_tokens=config.max_new_tokens, batch_size=config.batch_size))
        progress("generate", min(begin + config.batch_size, n), n)
    stopped = [bool(ids) and ids[-1] in stop for ids in generated]
    ids = [tokens[:-1] if ended else tokens for tokens, ended in zip(generated, stopped)]
    texts = bundle.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return {"texts": texts, "ids": ids, "stopped": stopped}


def _per_example(scores: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """(N,) each: the mean negative log-probability of an example's completion tokens, the share predicted right
    (teacher-forced argmax), their count."""
    log_probability, rank = scores["log_probability"], scores["rank"]
    return {"loss": np.array([-values.mean() for values in log_probability]),
            "accuracy": np.array([(values == 1).mean() for values in rank]),
            "count": np.array([len(values) for values in rank], dtype=np.int64)}


def _token_predictions(example_ids: np.ndarray, scores: dict[str, list[np.ndarray]],
                       encoded: EncodedCompletions) -> pa.Table:
    counts = [len(values) for values in scores["rank"]]
    token_ids = np.concatenate([np.asarray(ids[start:], dtype=np.int64)
                                for ids, start in zip(encoded.input_ids, encoded.prompt_lengths)])
    return token_prediction_rows(
        np.repeat(example_ids, counts), np.concatenate([np.arange(count) for count in counts]), token_ids,
        *(np.concatenate(scores[name]) for name in SCORES))


def _metrics(scores: dict[str, list[np.ndarray]], generations: pa.Table, n: int) -> tuple[dict, dict]:
    """The split's metrics (checkpoints.metrics) and the summary's scores. loss: the mean over all completion
    tokens (what a causal LM trainer reports), perplexity its exp; accuracy: the share of tokens predicted right."""
    log_probability = np.concatenate(scores["log_probability"])
    loss = float(-log_probability.mean())
    accuracy = float(np.mean(np.concatenate(scores["rank"]) == 1))
    frame = generations.select(["score", "exact_match", "rougeL"]).to_pandas()
    generated = {name: (float(frame[name].dropna().astype(float).mean()) if frame[name].notna().any() else None)
                 for name in ("score", "exact_match", "rougeL")}
    metrics = {"loss": loss, "perplexity": float(np.exp(loss)), "accuracy": accuracy, "n_examples": n,
               "n_tokens": len(log_probability), **{k: v for k, v in generated.items() if v is not None}}
    return metrics, {name: metrics[name] for name in ("perplexity", "score", "exact_match", "rougeL") if name in metrics}
