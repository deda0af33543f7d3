"""Ingesting one checkpoint of a token classifier over one split of tagged sentences.

One pass over the sentences (length-sorted batches) gives every kept word's tag logits (at its first
word piece), each sentence's vector at the chosen layers (its first token, or the mean over its
tokens), the vectors of a sample of words (entity words first) and, per head, the aggregate attention
and head functions. A random sample of batches runs with gradients to the head mask: head importance
for the tagging loss, a sentence's loss being the mean cross-entropy of its words. Then the
predicted tags are scored: word accuracy, and entity-level precision, recall and F1 per type and
overall (strict IOB2). Everything is written in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from t3vis.data.entity_metrics import entity_scores
from t3vis.data.tagging import TaggedSentences, outside_tag
from t3vis.errors import DataError, ModelError, option
from t3vis.model.access import AttentionProbe, ModelBundle, check_tokens_are_known, pool_hidden_states, run_with_probe
from t3vis.model.encoding import length_sorted_batches
from t3vis.model.word_encoding import EncodedWords, collate_words, encode_words, word_losses
from t3vis.progress import Progress, no_progress
from t3vis.record.attention_summary import AttentionAccumulator, token_kinds
from t3vis.record.head_importance import head_mask_gradient
from t3vis.record.ingest import (CheckpointRecord, IngestSummary, _jsonable, _projections, _resolve_layers,
                                 _sampled_batches, extra_json_lines, ingest_with_split_tables, sample_units,
                                 unit_projections, units_by_example)
from t3vis.record.ingest_config import IngestConfig
from t3vis.store.database import CheckpointInfo, CheckpointResults, RunInfo, Store
from t3vis.store.rows import attention_rows, example_rows, importance_rows, tag_prediction_rows, unit_rows
from t3vis.tasks import TOKEN_CLASSIFICATION


def ingest_tagger_checkpoint(store: Store, bundle: ModelBundle, sentences: TaggedSentences,
                             **details) -> IngestSummary:
    """Compute everything t3vis records for a token-classifier checkpoint over one split and write it.

    As :func:`t3vis.record.ingest.ingest_checkpoint` (same keyword arguments), for tagged sentences
    (``t3vis.data.tagging.load_tagged``) and a token classifier (``load_model(..., task="token-classification")``).
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
) -> CheckpointRecord:
    """Everything :func:`ingest_tagger_checkpoint` writes, computed without touching the store.

    ``with_split_tables=False`` skips the words (``units``), which the store keeps once per run and split.
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
    result = _forward_pass(bundle, encoded, sentences.tags, layers=layers, config=config, progress=progress,
                           laid_out=laid_out)
    seconds["forward"] = time.perf_counter() - started

    predictions = tag_prediction_rows(sentences.example_ids, result.logits, sentences.tags)
    if predictions.num_rows == 0:
        raise DataError(f"No word of the {len(sentences)} sentences fits the token limit ({max_length}); raise "
                        f"{option('max_length')}.")
    outside = outside_tag(bundle.label_names)
    predicted = [_predicted_tags(logits, len(tags), outside) for logits, tags in zip(result.logits, sentences.tags)]
    entities = entity_scores(sentences.tags, predicted, bundle.label_names)

    started = time.perf_counter()
    previous = previous or {}
    projections = _projections(sentences.example_ids, result.pooled, config, progress, previous.get("projections"))
    word_layouts = unit_projections(sentences.example_ids, laid_out, result.word_vectors, config, progress,
                                    previous.get("unit_projections"), what="words")
    seconds["projection"] = time.perf_counter() - started

    tables = {
        "unit_predictions": predictions,
        "attention_patterns": attention_rows(result.attention["pattern"], result.attention, result.attention_examples),
    }
    if projections is not None:
        tables["projections"] = projections
    if word_layouts is not None:
        tables["unit_projections"] = word_layouts
    if result.importance is not None:
        tables["head_importance"] = importance_rows(result.importance, result.importance_examples)
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


@dataclass
class _TaggingPass:
    logits: list[np.ndarray]  # N arrays (W_kept, K): each kept word's tag logits
    pooled: dict[int, np.ndarray]  # layer -> (N, D) sentence vectors
    word_vectors: dict[int, np.ndarray]  # layer -> (M, D) vectors at the first piece of the laid-out words
    importance: np.ndarray | None  # (L, H) mean |dL/dm| over the sampled sentences
    importance_examples: int
    attention: dict[str, np.ndarray]  # AttentionAccumulator.summary()
    attention_examples: int


def _forward_pass(bundle: ModelBundle, encoded: list[EncodedWords], tags: list[np.ndarray], *,
                  layers: tuple[int, ...], config: IngestConfig, progress: Progress,
                  laid_out: np.ndarray) -> _TaggingPass:
    model, device = bundle.model, bundle.device
    decoder = bundle.decoder  # a decoder's pooled token is its last real token
    lengths = np.array([len(sentence.input_ids) for sentence in encoded])
    batches = length_sorted_batches(lengths, config.batch_size)
    with_gradient = _sampled_batches(batches, config.importance_examples, config.seed)
    with_attention = _sampled_batches(batches, config.attention_examples, config.seed, first=with_gradient)
    accumulator = AttentionAccumulator(bundle.num_layers, bundle.num_heads, config.attention_bins)
    n = len(encoded)
    logits: list[np.ndarray | None] = [None] * n
    pooled: dict[int, np.ndarray] = {}
    word_vectors: dict[int, np.ndarray] = {}
    rows_of_sentence = units_by_example(laid_out, n)
    importance = torch.zeros(bundle.num_layers, bundle.num_heads, dtype=torch.float64)
    importance_examples = 0

    progress("forward", 0, n)
    done = 0
    for batch_index, indices in enumerate(batches):
        inputs = collate_words([encoded[i] for i in indices], pad_token_id=bundle.pad_token_id,
                               tags=[tags[i] for i in indices])
        inputs = {name: value.to(device) for name, value in inputs.items()}
        labels = inputs.pop("labels")  # (B, T): the model computes no loss; word_losses does
        probe = AttentionProbe()
        if batch_index in with_attention:
            accumulator.set_batch(inputs["attention_mask"], inputs["input_ids"],
                                  *token_kinds(inputs["input_ids"], bundle.tokenizer))
            probe.consumer = accumulator.consume
        if batch_index in with_gradient:
            output, gradient = head_mask_gradient(model, inputs, None, probe=probe, output_hidden_states=True,
                                                  example_losses=lambda out: word_losses(out.logits, labels))
            importance += gradient.abs().double().sum(0)  # (L, H)
            importance_examples += len(indices)
        else:
            with torch.no_grad():
                output, _ = run_with_probe(model, probe, **inputs, output_hidden_states=True)
        batch_logits = output.logits.detach().float().cpu().numpy()  # (B, T, K)
        for row, index in enumerate(indices):
            logits[index] = batch_logits[row, encoded[index].first_pieces]  # (W_kept, K)
        for layer in layers:
            hidden = output.hidden_states[layer].detach()  # (B, T, D)
            vectors = pool_hidden_states(hidden, inputs["attention_mask"], pooling=config.pooling, decoder=decoder,
                                         input_ids=inputs["input_ids"],
                                         pad_token_id=model.config.pad_token_id)  # (B, D)
            if layer not in pooled:
                pooled[layer] = np.empty((n, vectors.shape[1]), dtype=np.float32)
                word_vectors[layer] = np.empty((len(laid_out), vectors.shape[1]), dtype=np.float32)
            pooled[layer][indices] = vectors.float().cpu().numpy()
            for row, index in enumerate(indices):
                words, targets = rows_of_sentence[index]
                if len(words):  # the hidden states at these words' first pieces: (W_laid_out, D)
                    positions = [encoded[index].first_pieces[word] for word in words]
                    word_vectors[layer][targets] = hidden[row, positions].float().cpu().numpy()
        done += len(indices)
        progress("forward", done, n)
    return _TaggingPass(
        logits=logits, pooled=pooled, word_vectors=word_vectors,
        importance=(importance / importance_examples).numpy() if importance_examples else None,
        importance_examples=importance_examples,
        attention=accumulator.summary(), attention_examples=accumulator.n_examples,
    )
