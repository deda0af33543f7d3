"""Ingesting one checkpoint of an extractive summarizer over one split of documents.

One pass over the documents (length-sorted batches) gives every kept sentence's score, each
document's vector at the chosen layers (its first [CLS], or the mean over its tokens) and, per
head, the aggregate attention and head functions. A random sample of batches runs with gradients
to the head mask: head importance for the summarization loss, a document's loss being the mean
binary cross-entropy of its kept sentences. Then the predicted summary of each document (its
three highest-scoring sentences, in document order) is scored with ROUGE against the reference,
and so, once per split, are Lead-3 and the oracle. Everything is written in one transaction.

Under ``torchrun`` / ``accelerate launch`` each process runs its share of the batches and the main
process puts the documents back in order, adds the sums, scores, projects and writes
(:mod:`t3vis.record.sharded_pass`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from t3vis.data.documents import DocumentSet
from t3vis.data.rouge import ORACLE_SENTENCES, RougeScores, rouge
from t3vis.errors import DataError, ModelError
from t3vis.model.access import ModelBundle, check_tokens_are_known, pool_hidden_states
from t3vis.model.summarizer import EncodedDocument, collate_documents, encode_documents, sentence_loss, uses_segments
from t3vis.progress import Progress, no_progress
from t3vis.record.distributed import SINGLE, Shard
from t3vis.record.ingest import (CheckpointRecord, IngestSummary, _jsonable, _resolve_layers, extra_json_lines,
                                 ingest_with_split_tables)
from t3vis.record.layouts import example_projections, sample_units, unit_projections, units_by_example
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.sharded_pass import BatchPlan, HeadSums, ShardPart, gathered_pass, joined, run_batch
from t3vis.store.database import CheckpointInfo, CheckpointResults, RunInfo, Store
from t3vis.store.rows import (baseline_rows, document_score_rows, example_rows, top_units, unit_prediction_rows,
                              unit_rows)
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION

SUMMARY_SIZE = ORACLE_SENTENCES  # sentences in a predicted summary, as in Liu & Lapata


def ingest_summarizer_checkpoint(store: Store | None, bundle: ModelBundle, documents: DocumentSet,
                                 **details) -> IngestSummary | None:
    """Compute everything t3vis records for a summarizer checkpoint over one split and write it.

    As :func:`t3vis.record.ingest.ingest_checkpoint` (same keyword arguments, ``shard`` included: only the main
    process writes and gets the summary), for documents (``t3vis.data.documents.load_documents``) and a summarizer
    (``t3vis.model.summarizer_loading.load_summarizer``).
    """
    return ingest_with_split_tables(store, compute_summarizer_checkpoint, bundle, documents, **details)


def compute_summarizer_checkpoint(
    bundle: ModelBundle,
    documents: DocumentSet,
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
    """Everything :func:`ingest_summarizer_checkpoint` writes, computed without touching the store.

    ``with_split_tables=False`` skips the sentences and the Lead-3 and oracle scores, which the store
    keeps once per run and split (an earlier checkpoint wrote them). ``shard``: this process's part of a
    distributed launch; every process must call it, the main one gets the record, the others None.
    """
    if len(documents) == 0:
        raise DataError("There are no documents to ingest.")
    if bundle.task != EXTRACTIVE_SUMMARIZATION:
        raise ModelError(f"{bundle.name} is a {bundle.task} model; extractive summarization needs a summarizer "
                         "(t3vis.model.summarizer_loading.load_summarizer).")
    max_length = min(config.max_length or bundle.max_length, bundle.max_length)
    layers = _resolve_layers(config.layers, bundle.num_layers)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    encoded = encode_documents(bundle.tokenizer, documents.sentences, max_length=max_length,
                               segments=uses_segments(bundle.model))
    check_tokens_are_known(bundle.tokenizer, [document.input_ids for document in encoded])
    seconds["tokenize"] = time.perf_counter() - started

    started = time.perf_counter()
    laid_out = sentences_to_lay_out(encoded, config)
    result = gathered_pass(lambda: _forward_pass(bundle, encoded, documents.oracle, layers=layers, config=config,
                                                 progress=progress, laid_out=laid_out, shard=shard),
                           shard, len(encoded), n_units=len(laid_out),
                           what=f"the forward pass of checkpoint {checkpoint!r}")
    seconds["forward"] = time.perf_counter() - started
    if result is None:
        return None  # another process (the main one) scores, projects and writes
    scores, losses = result.rows["scores"], result.rows["losses"]

    started = time.perf_counter()
    summaries = [top_units(score, SUMMARY_SIZE) for score in scores]
    rouge_scores = _score(documents, summaries, progress, "ROUGE of the predicted summaries")
    seconds["rouge"] = time.perf_counter() - started
    predictions = unit_prediction_rows(documents.example_ids, scores, documents.oracle, summary_size=SUMMARY_SIZE)

    started = time.perf_counter()
    previous = previous or {}
    projections = example_projections(documents.example_ids, result.pooled, config, progress, previous.get("projections"))
    sentence_layouts = unit_projections(documents.example_ids, laid_out, result.unit_vectors, config, progress,
                                        previous.get("unit_projections"), what="sentences")
    seconds["projection"] = time.perf_counter() - started

    tables = {
        "unit_predictions": predictions,
        "document_scores": document_score_rows(documents.example_ids, losses, rouge_scores, summaries),
        **result.heads.tables(),
    }
    if projections is not None:
        tables["projections"] = projections
    if sentence_layouts is not None:
        tables["unit_projections"] = sentence_layouts
    accuracy = float(np.mean(predictions["correct"].to_numpy(zero_copy_only=False)))
    means = {name: float(np.mean([getattr(score, name) for score in rouge_scores]))
             for name in ("rouge1", "rouge2", "rougeL")}
    loss = float(np.mean(losses))
    metrics = {
        config.split: {"accuracy": accuracy, "loss": loss, **means, "n_examples": len(documents)},
        **({"trainer": extra_metrics} if extra_metrics else {}),
    }
    run = RunInfo(
        run_id=run_id, model=bundle.name, task=EXTRACTIVE_SUMMARIZATION,
        dataset=dataset or Path(documents.source).name or None, label_names=bundle.label_names,
        num_layers=bundle.num_layers, num_heads=bundle.num_heads, max_length=max_length,
        config={**_jsonable(asdict(config)), "layers": list(layers), "summary_size": SUMMARY_SIZE},
    )
    summary = IngestSummary(
        run_id=run_id, checkpoint=checkpoint, split=config.split, n_examples=len(documents),
        n_truncated=sum(document.n_kept < document.n_sentences for document in encoded),
        accuracy=accuracy, loss=loss, seconds=seconds, scores=means,
    )
    return CheckpointRecord(
        run=run,
        checkpoint=CheckpointInfo(run_id=run_id, checkpoint=checkpoint, step=step, epoch=epoch,
                                  path=None if path is None else str(path), metrics=metrics),
        results=CheckpointResults(
            split=config.split, tables=tables, examples=document_examples_table(documents, encoded),
            split_tables=split_tables(documents, encoded, progress) if with_split_tables else {},
        ),
        summary=summary,
    )


def sentences_to_lay_out(encoded: list[EncodedDocument], config: IngestConfig) -> np.ndarray:
    """(M, 2) (document index, sentence) of the kept sentences laid out in 2-D (:func:`sample_units`)."""
    return sample_units([document.n_kept for document in encoded], config)


def document_examples_table(documents: DocumentSet, encoded: list[EncodedDocument]) -> pa.Table:
    """``examples`` rows of documents: the article (sentences joined by spaces) and its reference summary."""
    return example_rows(
        documents.example_ids, documents.texts, None, None,
        n_tokens=np.array([len(document.input_ids) for document in encoded]),
        n_tokens_full=np.array([document.n_tokens_full for document in encoded]),
        extra_json=extra_json_lines(documents.extra), references=["\n".join(reference) for reference in documents.references],
    )


def split_tables(documents: DocumentSet, encoded: list[EncodedDocument], progress: Progress, *,
                 with_baselines: bool = True) -> dict[str, pa.Table]:
    """The tables written once per run and split: the sentences (units) and the Lead-3 and oracle scores."""
    lead = [np.arange(min(SUMMARY_SIZE, len(sentences))) for sentences in documents.sentences]
    oracle = [np.flatnonzero(labels) for labels in documents.oracle]
    n_tokens = [_sentence_lengths(document) for document in encoded]
    units = unit_rows(documents.example_ids, documents.sentences, documents.oracle,
                      [document.n_kept for document in encoded], n_tokens)
    if not with_baselines:
        return {"units": units}
    return {
        "units": units,
        "baseline_scores": pa.concat_tables([
            baseline_rows(documents.example_ids, "lead-3", _score(documents, lead, progress, "ROUGE of Lead-3"), lead),
            baseline_rows(documents.example_ids, "oracle", _score(documents, oracle, progress, "ROUGE of the oracle"),
                          oracle),
        ]),
    }


def _sentence_lengths(document: EncodedDocument) -> list[int]:
    """Word pieces of each sentence (without [CLS] and [SEP]); -1 for the sentences that were cut."""
    kept = [end - start - 2 for start, end in document.sentence_spans]
    return kept + [-1] * (document.n_sentences - document.n_kept)


def _score(documents: DocumentSet, summaries, progress: Progress, phase: str) -> list[RougeScores]:
    scores = []
    for done, (sentences, reference, summary) in enumerate(zip(documents.sentences, documents.references, summaries)):
        if done % 50 == 0:
            progress(phase, done, len(documents))
        scores.append(rouge([sentences[index] for index in summary], reference))
    progress(phase, len(documents), len(documents))
    return scores


def document_losses(output, inputs: dict) -> torch.Tensor:
    """Each document's loss (B,): the mean binary cross-entropy of its kept sentences."""
    mask = inputs["sentence_mask"]  # (B, S)
    return sentence_loss(output.logits, inputs["labels"], mask).sum(1) / mask.sum(1).clamp(min=1)


def _forward_pass(bundle: ModelBundle, encoded: list[EncodedDocument], oracle: list[np.ndarray], *,
                  layers: tuple[int, ...], config: IngestConfig, progress: Progress, laid_out: np.ndarray,
                  shard: Shard = SINGLE) -> ShardPart:
    """This process's batches (all of them when not distributed): rows ``scores`` (n arrays (S_kept,): each kept
    sentence's logit) and ``losses`` (n,) (each document's mean sentence loss), the document vectors, and the
    vectors at the [CLS] of its documents' laid-out sentences."""
    plan = BatchPlan.of(np.array([len(document.input_ids) for document in encoded]), config, shard)
    sums = HeadSums.zeros(bundle, config)
    rows_of_document = units_by_example(laid_out, len(encoded))  # document -> (its laid-out sentences, their rows)
    scores: list[np.ndarray] = []
    losses: list[float] = []
    pooled: dict[int, list[np.ndarray]] = defaultdict(list)  # layer -> each batch's (B, D)
    sentence_rows: list[np.ndarray] = []  # each document's laid-out rows (S_laid_out,)
    sentence_vectors: dict[int, list[np.ndarray]] = defaultdict(list)  # layer -> each batch's (M_b, D)
    n = len(plan.my_examples)

    progress("forward", 0, n)
    done = 0
    for batch_index in plan.mine:
        indices = plan.batches[batch_index]
        inputs = collate_documents([encoded[i] for i in indices], pad_token_id=bundle.pad_token_id,
                                   labels=[oracle[i] for i in indices])
        inputs = {name: value.to(bundle.device) for name, value in inputs.items()}
        output = run_batch(bundle, inputs, sums, importance=batch_index in plan.with_gradient,
                           attention=batch_index in plan.with_attention,
                           example_losses=lambda out: document_losses(out, inputs))
        losses.extend(document_losses(output, inputs).detach().double().cpu().numpy())  # (B,)
        batch_scores = output.logits.detach().float().cpu().numpy()  # (B, S)
        scores.extend(batch_scores[row, : encoded[index].n_kept] for row, index in enumerate(indices))
        # the batch's laid-out sentences, document by document: their rows in the batch and [CLS] tokens, (M_b,) each
        batch_rows = torch.tensor([row for row, index in enumerate(indices) for _ in rows_of_document[index][0]],
                                  dtype=torch.long, device=bundle.device)  # (M_b,)
        units = torch.tensor([unit for index in indices for unit in rows_of_document[index][0]], dtype=torch.long,
                             device=bundle.device)  # (M_b,)
        cls_tokens = inputs["cls_positions"][batch_rows, units]  # (M_b,)
        sentence_rows.extend(rows_of_document[index][1] for index in indices)
        for layer in layers:
            hidden = output.hidden_states[layer].detach()  # (B, T, D)
            pooled[layer].append(pool_hidden_states(hidden, inputs["attention_mask"],
                                                    pooling=config.pooling).float().cpu().numpy())  # (B, D)
            sentence_vectors[layer].append(hidden[batch_rows, cls_tokens].float().cpu().numpy())  # (M_b, D)
        done += len(indices)
        progress("forward", done, n)
    return ShardPart(
        positions=plan.my_examples, rows={"scores": scores, "losses": np.asarray(losses, dtype=np.float64)},
        pooled=joined(pooled), sums=sums,
        unit_positions=np.concatenate(sentence_rows) if sentence_rows else np.zeros(0, dtype=np.int64),
        unit_vectors=joined(sentence_vectors),
    )
