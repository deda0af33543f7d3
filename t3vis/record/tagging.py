"""Ingesting one checkpoint of a token classifier over one split of tagged sentences.

One pass over the sentences (length-sorted batches) gives every kept word's tag logits (at its first
word piece), each sentence's vector at the chosen layers (its first token, or the mean over its
tokens), the vectors of a sample of words (entity words first) and, per head, the aggregate attention
and head functions. A random sample of batches runs with gradients to the head mask: head importance
for the tagging loss, a sentence's loss being the mean cross-entropy of its words. Then the
predicted tags are scored: word accuracy, and entity-level precision, recall and F1 per type and
overall (strict IOB2). Everything is written in one transaction.

Under ``torchrun`` / ``accelerate launch`` each process runs its share of the batches and the main
process puts the sentences back in order, adds the sums, scores, projects and writes
(:mod:`t3vis.record.sharded_pass`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from t3vis.data.entity_metrics import entity_scores
from t3vis.data.tagging import TaggedSentences, outside_tag
from t3vis.errors import DataError, ModelError, option
from t3vis.model.access import ModelBundle, check_tokens_are_known, pool_hidden_states
from t3vis.model.word_encoding import EncodedWords, collate_words, encode_words, word_losses
from t3vis.progress import Progress, no_progress
from t3vis.record.distributed import SINGLE, Shard
from t3vis.record.ingest import (CheckpointRecord, IngestSummary, _jsonable, _resolve_layers, extra_json_lines,
                                 ingest_with_split_tables)
from t3vis.record.layouts import example_projections, sample_units, unit_projections, units_by_example
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.sharded_pass import BatchPlan, HeadSums, ShardPart, gathered_pass, joined, run_batch
from t3vis.store.database import CheckpointInfo, CheckpointResults, RunInfo, Store
from t3vis.store.rows import example_rows, tag_prediction_rows, unit_rows
from t3vis.tasks import TOKEN_CLASSIFICATION


def ingest_tagger_checkpoint(store: Store | None, bundle: ModelBundle, sentences: TaggedSentences,
                             **details) -> IngestSummary | None:
    """Compute everything t3vis records for a token-classifier checkpoint over one split and write it.

    As :func:`t3vis.record.ingest.ingest_checkpoint` (same keyword arguments, ``shard`` included: only the main
    process writes and gets the summary), for tagged sentences (``t3vis.data.tagging.load_tagged``) and a token
    classifier (``load_model(..., task="token-classification")``).
    """
    return ingest_with_split_tables(store, compute_tagger_checkpoint, bundle, sentences, **details)


def compute_tagger_checkpoint(
    bundle: ModelBundle,
    sentences: TaggedSentences,
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
    """Everything :func:`ingest_tagger_checkpoint` writes, computed without touching the store.

    ``with_split_tables=False`` skips the words (``units``), which the store keeps once per run and split.
    ``shard``: this process's part of a distributed launch; every process must call it, the main one gets the
    record, the others None.
    """
    if len(sentences) == 0:
        raise DataError("There are no sentences to ingest.")
    if bundle.task != TOKEN_CLASSIFICATION:
        raise ModelError(f"{bundle.name} is a {bundle.task} model; token classification needs a token classifier "
                         "(load_model(..., task='token-classification')).")
    check_tag_range(bundle, sentences)
    max_length = min(config.max_length or bundle.max_length, bundle.max_length)
    layers = _resolve_layers(config.layers, bundle.num_layers)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    encoded = encode_words(bundle.tokenizer, sentences.words, max_length=max_length)
    check_tokens_are_known(bundle.tokenizer, [sentence.input_ids for sentence in encoded])
    seconds["tokenize"] = time.perf_counter() - started

    started = time.perf_counter()
    laid_out = words_to_lay_out(encoded, sentences.tags, config, outside_tag(bundle.label_names))
    result = gathered_pass(lambda: _forward_pass(bundle, encoded, sentences.tags, layers=layers, config=config,
                                                 progress=progress, laid_out=laid_out, shard=shard),
                           shard, len(encoded), n_units=len(laid_out),
                           what=f"the forward pass of checkpoint {checkpoint!r}")
    seconds["forward"] = time.perf_counter() - started
    if result is None:
        return None  # another process (the main one) scores, projects and writes
    logits = result.rows["logits"]

    predictions = tag_prediction_rows(sentences.example_ids, logits, sentences.tags)
    if predictions.num_rows == 0:
        raise DataError(f"No word of the {len(sentences)} sentences fits the token limit ({max_length}); raise "
                        f"{option('max_length')}.")
    outside = outside_tag(bundle.label_names)
    predicted = [_predicted_tags(logits, len(tags), outside) for logits, tags in zip(logits, sentences.tags)]
    entities = entity_scores(sentences.tags, predicted, bundle.label_names)

    started = time.perf_counter()
    previous = previous or {}
    projections = example_projections(sentences.example_ids, result.pooled, config, progress, previous.get("projections"))
    word_layouts = unit_projections(sentences.example_ids, laid_out, result.unit_vectors, config, progress,
                                    previous.get("unit_projections"), what="words")
    seconds["projection"] = time.perf_counter() - started

    tables = {"unit_predictions": predictions, **result.heads.tables()}
    if projections is not None:
        tables["projections"] = projections
    if word_layouts is not None:
        tables["unit_projections"] = word_layouts
    accuracy = float(np.mean(predictions["correct"].to_numpy(zero_copy_only=False)))
    loss = float(np.mean(predictions["loss"].to_numpy()))
    scores = {name: entities[name] for name in ("f1", "precision", "recall")} if entities else {}
    metrics = {
        config.split: {**scores, "accuracy": accuracy, "loss": loss, "n_examples": len(sentences),
                       **({"n_entities": entities["support"], "scheme": entities["scheme"]} if entities else {}),
                       "n_words": int(sum(len(tags) for tags in sentences.tags)),
                       **({"per_type": entities["per_type"]} if entities else {})},
        **({"trainer": extra_metrics} if extra_metrics else {}),
    }
    run = RunInfo(
        run_id=run_id, model=bundle.name, task=TOKEN_CLASSIFICATION,
        dataset=dataset or Path(sentences.source).name or None, label_names=bundle.label_names,
        num_layers=bundle.num_layers, num_heads=bundle.num_heads, max_length=max_length,
        config={**_jsonable(asdict(config)), "layers": list(layers)},
    )
    summary = IngestSummary(
        run_id=run_id, checkpoint=checkpoint, split=config.split, n_examples=len(sentences),
        n_truncated=sum(sentence.n_kept < sentence.n_words for sentence in encoded),
        accuracy=accuracy, loss=loss, seconds=seconds, scores=scores,
    )
    return CheckpointRecord(
        run=run,
        checkpoint=CheckpointInfo(run_id=run_id, checkpoint=checkpoint, step=step, epoch=epoch,
                                  path=None if path is None else str(path), metrics=metrics),
        results=CheckpointResults(
            split=config.split, tables=tables, examples=sentence_examples_table(sentences, encoded),
            split_tables={"units": word_table(sentences, encoded)} if with_split_tables else {},
        ),
        summary=summary,
    )


def check_tag_range(bundle: ModelBundle, sentences: TaggedSentences) -> None:
    """Refuse data whose tags the model does not have."""
    names = tuple(bundle.label_names)
    if tuple(sentences.tag_names) != names[: len(sentences.tag_names)] or len(sentences.tag_names) > len(names):
        raise DataError(f"The data's tags {list(sentences.tag_names)} are not the model's {list(names)} (in id "
                        f"order). Give the model's tags in order with {option('tag_names', flag='--label-names')}, "
                        "or train a model on these tags.")


def _predicted_tags(logits: np.ndarray, n_words: int, outside: int) -> np.ndarray:
    """(W,) predicted tag ids; words cut at the token limit count as the outside tag ("O")."""
    found = np.full(n_words, outside, dtype=np.int64)
    found[: len(logits)] = np.asarray(logits).argmax(1) if len(logits) else []
    return found


def sentence_examples_table(sentences: TaggedSentences, encoded: list[EncodedWords]) -> pa.Table:
    """``examples`` rows of sentences: the words joined by spaces (no label: the tags are per word)."""
    return example_rows(
        sentences.example_ids, sentences.texts, None, None,
        n_tokens=np.array([len(sentence.input_ids) for sentence in encoded]),
        n_tokens_full=np.array([sentence.n_tokens_full for sentence in encoded]),
        extra_json=extra_json_lines(sentences.extra),
    )


def word_table(sentences: TaggedSentences, encoded: list[EncodedWords]) -> pa.Table:
    """``units`` rows: every word with its gold tag, whether it was kept, and its number of word pieces."""
    pieces = [np.bincount([w for w in sentence.word_of_token if w >= 0], minlength=sentence.n_words)
              for sentence in encoded]
    n_tokens = [[int(count) if word < sentence.n_kept else -1 for word, count in enumerate(counts)]
                for sentence, counts in zip(encoded, pieces)]
    return unit_rows(sentences.example_ids, sentences.words, sentences.tags,
                     [sentence.n_kept for sentence in encoded], n_tokens)


def words_to_lay_out(encoded: list[EncodedWords], tags: list[np.ndarray], config: IngestConfig,
                     outside: int = 0) -> np.ndarray:
    """(M, 2) (sentence index, word) of the kept words laid out in 2-D (:func:`sample_units`): the entity words
    (tag other than ``outside``, "O") first."""
    counts = [sentence.n_kept for sentence in encoded]
    entity = np.array([tags[index][word] != outside for index, count in enumerate(counts) for word in range(count)],
                      dtype=bool)
    return sample_units(counts, config, first=entity)


def _forward_pass(bundle: ModelBundle, encoded: list[EncodedWords], tags: list[np.ndarray], *,
                  layers: tuple[int, ...], config: IngestConfig, progress: Progress, laid_out: np.ndarray,
                  shard: Shard = SINGLE) -> ShardPart:
    """This process's batches (all of them when not distributed): rows ``logits`` (n arrays (W_kept, K): each kept
    word's tag logits), the sentence vectors, and the vectors at the first piece of its sentences' laid-out words."""
    model = bundle.model
    decoder = bundle.decoder  # a decoder's pooled token is its last real token
    plan = BatchPlan.of(np.array([len(sentence.input_ids) for sentence in encoded]), config, shard)
    sums = HeadSums.zeros(bundle, config)
    rows_of_sentence = units_by_example(laid_out, len(encoded))  # sentence -> (its laid-out words, their rows)
    logits: list[np.ndarray] = []
    pooled: dict[int, list[np.ndarray]] = defaultdict(list)  # layer -> each batch's (B, D)
    word_rows: list[np.ndarray] = []  # each sentence's laid-out rows (W_laid_out,)
    word_vectors: dict[int, list[np.ndarray]] = defaultdict(list)  # layer -> each batch's (M_b, D)
    n = len(plan.my_examples)

    progress("forward", 0, n)
    done = 0
    for batch_index in plan.mine:
        indices = plan.batches[batch_index]
        inputs = collate_words([encoded[i] for i in indices], pad_token_id=bundle.pad_token_id,
                               tags=[tags[i] for i in indices])
        inputs = {name: value.to(bundle.device) for name, value in inputs.items()}
        labels = inputs.pop("labels")  # (B, T): the model computes no loss; word_losses does
        output = run_batch(bundle, inputs, sums, importance=batch_index in plan.with_gradient,
                           attention=batch_index in plan.with_attention,
                           example_losses=lambda out: word_losses(out.logits, labels))
        batch_logits = output.logits.detach().float().cpu().numpy()  # (B, T, K)
        logits.extend(batch_logits[row, encoded[index].first_pieces] for row, index in enumerate(indices))
        # the batch's laid-out words, sentence by sentence: their rows in the batch and first pieces, (M_b,) each
        batch_rows = [row for row, index in enumerate(indices) for _ in rows_of_sentence[index][0]]
        pieces = [encoded[index].first_pieces[word] for index in indices for word in rows_of_sentence[index][0]]
        word_rows.extend(rows_of_sentence[index][1] for index in indices)
        for layer in layers:
            hidden = output.hidden_states[layer].detach()  # (B, T, D)
            pooled[layer].append(pool_hidden_states(hidden, inputs["attention_mask"], pooling=config.pooling,
                                                    decoder=decoder, input_ids=inputs["input_ids"],
                                                    pad_token_id=model.config.pad_token_id).float().cpu().numpy())
            word_vectors[layer].append(hidden[batch_rows, pieces].float().cpu().numpy())  # (M_b, D)
        done += len(indices)
        progress("forward", done, n)
    return ShardPart(
        positions=plan.my_examples, rows={"logits": logits}, pooled=joined(pooled), sums=sums,
        unit_positions=np.concatenate(word_rows) if word_rows else np.zeros(0, dtype=np.int64),
        unit_vectors=joined(word_vectors),
    )
