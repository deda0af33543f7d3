"""Ingesting one checkpoint over one split into the store.

One pass over the examples (length-sorted batches) gives, per example, the logits and the
pooled hidden states of the chosen layers, and, per head, the aggregate attention pattern.
A random subset of the batches runs with gradients to the head mask, giving head importance
from the same forward passes. Then each layer's pooled states are laid out in 2-D, and
everything is written in one transaction.

Under ``torchrun`` / ``accelerate launch`` (a :class:`~t3vis.record.distributed.Shard` of several)
every process makes the same batches and the same importance and attention samples, runs every
world_size-th batch, and sends its rows and sums to the main process, which puts the rows back in
example order, adds the sums, projects and writes: the store holds what one process would write.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from t3vis.record.distributed import SINGLE, Shard
from t3vis.data.loading import ExampleSet
from t3vis.model.encoding import EncodedExamples, collate, encode, length_sorted_batches
from t3vis.errors import DataError, option
from t3vis.record.head_importance import head_mask_gradient
from t3vis.model.access import ModelBundle, check_tokens_are_known, pool_hidden_states
from t3vis.record.ingest_config import IngestConfig
from t3vis.progress import Progress, no_progress
from t3vis.record.layouts import LAYOUT_TABLES, example_projections, layouts_of, previous_layouts  # noqa: F401
from t3vis.record.sharded_pass import BatchPlan, HeadSums, ShardPart, gathered_pass, run_batch, sampled_batches
from t3vis.store.rows import example_rows, prediction_rows
from t3vis.store.database import CheckpointInfo, CheckpointResults, RunInfo, Store


@dataclass(frozen=True)
class IngestSummary:
    """What an ingestion wrote, for the CLI and the callback to report."""

    run_id: str
    checkpoint: str
    split: str
    n_examples: int
    n_truncated: int
    accuracy: float  # of the examples' labels; of the sentences' oracle labels for summarization
    loss: float
    seconds: dict[str, float]
    scores: dict[str, float] = field(default_factory=dict)  # task metrics, e.g. ROUGE of the predicted summaries


def resolve_label_names(bundle: ModelBundle, examples: ExampleSet) -> tuple[str, ...]:
    """The run's label names: the model's when it names them, else the dataset's; checks the label range."""
    num_labels = len(bundle.label_names)
    if len(examples.labels) and int(examples.labels.max()) >= num_labels:
        bad = sorted({int(label) for label in examples.labels if label >= num_labels})
        raise DataError(
            f"labels out of range: the data has label ids {bad[:10]} but the model has {num_labels} labels "
            f"({list(bundle.label_names)}). Check {option('label_column')}, or load the model with "
            f"{option('num_labels')}."
        )
    return label_names_for(bundle.label_names, examples.label_names)


def label_names_for(model_names: tuple[str, ...], data_names) -> tuple[str, ...]:
    """The model's label names when it names its labels (not LABEL_0, LABEL_1, ...), else the data's,
    padded to the model's number of labels."""
    if not all(name == f"LABEL_{index}" for index, name in enumerate(model_names)) or not data_names:
        return tuple(model_names)
    names = [str(name) for name in data_names][: len(model_names)]
    return tuple(names + [f"LABEL_{index}" for index in range(len(names), len(model_names))])


@dataclass(frozen=True)
class CheckpointRecord:
    """One checkpoint's results over one split, computed and not yet written."""

    run: RunInfo
    checkpoint: CheckpointInfo
    results: CheckpointResults
    summary: IngestSummary

    def write(self, store: Store) -> None:
        """Write it into the store (one transaction)."""
        store.write_checkpoint(self.run, self.checkpoint, self.results)

    def write_timed(self, store: Store, progress: Progress) -> IngestSummary:
        """Write it, reporting the ``write`` phase and its seconds in the summary; returns the summary."""
        started = time.perf_counter()
        progress("write", 0, 1)
        self.write(store)
        progress("write", 1, 1)
        self.summary.seconds["write"] = time.perf_counter() - started
        return self.summary


def ingest_checkpoint(
    store: Store | None,
    bundle: ModelBundle,
    examples: ExampleSet,
    *,
    run_id: str,
    checkpoint: str,
    step: int | None = None,
    config: IngestConfig = IngestConfig(),
    progress: Progress = no_progress,
    shard: Shard = SINGLE,
    **details,
) -> IngestSummary | None:
    """Compute everything t3vis records for one checkpoint over one split and write it in one transaction.

    Parameters
    ----------
    store : Store
        Where to write (``Store(path, create=True)`` for a new store: the file is made by this
        write, so a failure before it leaves no file behind).
    bundle : ModelBundle
        The checkpoint's model and tokenizer (``t3vis.model.access.load_model``).
    examples : ExampleSet
        The split's examples (``t3vis.data.loading.load_examples``).
    run_id, checkpoint : str
        Names; ingesting the same (run, checkpoint, split) again replaces it.
    step : int, optional
        Training step of the checkpoint; it orders checkpoints, and the t-SNE layout starts from
        the previous checkpoint's.
    progress : callable
        ``progress(phase, done, total)``, called as the work advances.
    shard : Shard
        This process's part of a distributed launch (:func:`t3vis.record.distributed.current_shard`): every
        process computes its batches, the main one writes and returns the summary, the others return None
        (their ``store`` may be None: they never open it).
    **details
        ``epoch``, ``path``, ``dataset``, ``extra_metrics``: as for :func:`compute_checkpoint`.
    """
    previous = previous_layouts(store, run_id, checkpoint=checkpoint, step=step, config=config) \
        if shard.is_main else None
    record = compute_checkpoint(bundle, examples, run_id=run_id, checkpoint=checkpoint, step=step, config=config,
                                progress=progress, previous=previous, shard=shard, **details)
    return None if record is None else record.write_timed(store, progress)


def compute_checkpoint(
    bundle: ModelBundle,
    examples: ExampleSet,
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
    shard: Shard = SINGLE,
) -> CheckpointRecord | None:
    """Everything :func:`ingest_checkpoint` writes, computed without touching the store.

    Parameters
    ----------
    bundle, examples, run_id, checkpoint, step, config, progress
        As for :func:`ingest_checkpoint`.
    epoch : float, optional
        Training epoch of the checkpoint.
    path : str or Path, optional
        Folder of the checkpoint's weights, recorded so the app can load them.
    dataset : str, optional
        Free-text name of the run's dataset (default: the data file's name).
    extra_metrics : dict, optional
        Numbers logged by the trainer at this step, stored under ``metrics.trainer``.
    previous : dict of Arrow tables, optional
        The layouts the t-SNE starts from, by table (:func:`previous_layouts`, or :func:`layouts_of` a
        record kept in memory by a recorder whose writes are queued).
    shard : Shard
        This process's part of a distributed launch: it runs every world_size-th batch; the main process
        gathers the rows and sums and returns the record, the others return None. Every process must call it.
    """
    if len(examples) == 0:
        raise DataError("There are no examples to ingest.")
    label_names = resolve_label_names(bundle, examples)
    max_length = min(config.max_length or bundle.max_length, bundle.max_length)
    layers = _resolve_layers(config.layers, bundle.num_layers)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    encoded = encode(bundle.tokenizer, examples.texts, examples.text_pairs, max_length=max_length)
    check_tokens_are_known(bundle.tokenizer, encoded.input_ids)
    seconds["tokenize"] = time.perf_counter() - started

    started = time.perf_counter()
    result = gathered_pass(lambda: _forward_pass(bundle, encoded, examples.labels, layers=layers, config=config,
                                                 progress=progress, shard=shard),
                           shard, len(encoded), what=f"the forward pass of checkpoint {checkpoint!r}")
    seconds["forward"] = time.perf_counter() - started
    if result is None:
        return None  # another process (the main one) projects and writes

    predictions = prediction_rows(examples.example_ids, result.rows["logits"], examples.labels)
    run = RunInfo(
        run_id=run_id,
        model=bundle.name,
        dataset=dataset or Path(examples.source).name,
        label_names=label_names,
        num_layers=bundle.num_layers,
        num_heads=bundle.num_heads,
        max_length=max_length,
        config={**_jsonable(asdict(config)), "layers": list(layers)},
    )

    started = time.perf_counter()
    projections = example_projections(examples.example_ids, result.pooled, config, progress,
                               (previous or {}).get("projections"))
    seconds["projection"] = time.perf_counter() - started

    tables = {"predictions": predictions, **result.heads.tables()}
    if projections is not None:
        tables["projections"] = projections
    accuracy = float(pc.mean(predictions["correct"].cast(pa.float64())).as_py())
    loss = float(pc.mean(predictions["loss"]).as_py())
    metrics = {
        config.split: {"accuracy": accuracy, "loss": loss, "n_examples": len(examples)},
        **({"trainer": extra_metrics} if extra_metrics else {}),
    }
    summary = IngestSummary(
        run_id=run_id, checkpoint=checkpoint, split=config.split, n_examples=len(examples),
        n_truncated=int(encoded.truncated.sum()), accuracy=accuracy, loss=loss, seconds=seconds,
    )
    return CheckpointRecord(
        run=run,
        checkpoint=CheckpointInfo(run_id=run_id, checkpoint=checkpoint, step=step, epoch=epoch,
                                  path=None if path is None else str(path), metrics=metrics),
        results=CheckpointResults(split=config.split, tables=tables,
                                  examples=examples_table(examples, encoded, label_names)),
        summary=summary,
    )


def _resolve_layers(layers: tuple[int, ...] | str | None, num_layers: int) -> tuple[int, ...]:
    if layers is None:
        return (num_layers,)
    if layers == "all":
        return tuple(range(num_layers + 1))
    resolved = tuple(sorted({layer if layer >= 0 else num_layers + 1 + layer for layer in layers}))
    bad = [layer for layer in resolved if not 0 <= layer <= num_layers]
    if bad:
        raise DataError(
            f"layers {bad} do not exist: this model has layers 0 (embeddings) to {num_layers}. Fix {option('layers')}."
        )
    return resolved


def _forward_pass(
    bundle: ModelBundle,
    encoded: EncodedExamples,
    labels: np.ndarray,
    *,
    layers: tuple[int, ...],
    config: IngestConfig,
    progress: Progress,
    shard: Shard = SINGLE,
) -> ShardPart:
    """This process's batches (all of them when not distributed): rows ``logits`` (n, K) and the pooled states."""
    model, device = bundle.model, bundle.device
    decoder = bundle.decoder  # a decoder's pooled token is its last real token
    plan = BatchPlan.of(encoded.n_tokens, config, shard)
    sums = HeadSums.zeros(bundle, config)
    n = len(plan.my_examples)
    logits = None
    pooled: dict[int, np.ndarray] = {}
    labels_tensor = torch.tensor(labels, dtype=torch.long)

    progress("forward", 0, n)
    done = 0
    for batch_index in plan.mine:
        indices = plan.batches[batch_index]
        rows = slice(done, done + len(indices))  # the batch's rows among this process's examples
        inputs = collate(encoded, indices, pad_token_id=bundle.pad_token_id, device=device)
        output = run_batch(bundle, inputs, sums, importance=batch_index in plan.with_gradient,
                           attention=batch_index in plan.with_attention, labels=labels_tensor[indices].to(device))
        batch_logits = output.logits.detach().float().cpu().numpy()  # (B, K)
        if logits is None:
            logits = np.empty((n, batch_logits.shape[1]), dtype=np.float32)
        logits[rows] = batch_logits
        for layer in layers:
            vectors = pool_hidden_states(
                output.hidden_states[layer].detach(), inputs["attention_mask"], pooling=config.pooling,
                decoder=decoder, input_ids=inputs["input_ids"], pad_token_id=model.config.pad_token_id,
            ).float().cpu().numpy()  # (B, D)
            if layer not in pooled:
                pooled[layer] = np.empty((n, vectors.shape[1]), dtype=np.float32)
            pooled[layer][rows] = vectors
        done += len(indices)
        progress("forward", done, n)
    return ShardPart(positions=plan.my_examples, rows={"logits": logits}, pooled=pooled, sums=sums)


def sample_importance(bundle: ModelBundle, examples: ExampleSet, config: IngestConfig) -> tuple[np.ndarray, int]:
    """Head importance (L, H) over the same sample of batches ingestion takes, and the sample's size."""
    max_length = min(config.max_length or bundle.max_length, bundle.max_length)
    encoded = encode(bundle.tokenizer, examples.texts, examples.text_pairs, max_length=max_length)
    batches = length_sorted_batches(encoded.n_tokens, config.batch_size)
    labels = torch.tensor(examples.labels, dtype=torch.long)
    total = torch.zeros(bundle.num_layers, bundle.num_heads, dtype=torch.float64)
    count = 0
    for index in sorted(sampled_batches(batches, config.importance_examples, config.seed)):
        indices = batches[index]
        inputs = collate(encoded, indices, pad_token_id=bundle.pad_token_id, device=bundle.device)
        _, gradient = head_mask_gradient(bundle.model, inputs, labels[indices].to(bundle.device))
        total += gradient.abs().double().sum(0)  # (L, H)
        count += len(indices)
    return (total / max(count, 1)).numpy(), count


def extra_json_lines(extra: pd.DataFrame | None) -> list[str] | None:
    """The dataset's other columns as one JSON object per row (``examples.extra``), or None when there are none."""
    if extra is None or extra.shape[1] == 0:
        return None
    return extra.to_json(orient="records", lines=True, force_ascii=False).splitlines()


def examples_table(examples: ExampleSet, encoded: EncodedExamples, label_names: tuple[str, ...]) -> pa.Table:
    """Rows of the ``examples`` table (without run and split) for tokenised examples."""
    return example_rows(examples.example_ids, examples.texts, examples.labels, label_names,
                        n_tokens=encoded.n_tokens, n_tokens_full=encoded.n_tokens_full,
                        text_pairs=examples.text_pairs, extra_json=extra_json_lines(examples.extra))


def ingest_with_split_tables(store: Store | None, compute, bundle: ModelBundle, data, *, run_id: str,
                             checkpoint: str, step: int | None = None, config: IngestConfig = IngestConfig(),
                             progress: Progress = no_progress, shard: Shard = SINGLE,
                             **details) -> IngestSummary | None:
    """Compute a checkpoint of a task with per-unit tables (``compute``: e.g. a summarizer's or a tagger's
    ``compute_*_checkpoint``) and write it; the split's units are computed only when the store lacks them.
    ``shard``: as for :func:`ingest_checkpoint` (only the main process reads the store, writes and gets the summary)."""
    previous, has_split = {}, True
    if shard.is_main:
        previous = previous_layouts(store, run_id, checkpoint=checkpoint, step=step, config=config)
        has_split = store.scalar(
            "SELECT count(*) FROM units WHERE run_id = ? AND split = ?", [run_id, config.split]) > 0
    record = compute(bundle, data, run_id=run_id, checkpoint=checkpoint, step=step, config=config, progress=progress,
                     previous=previous, with_split_tables=not has_split, shard=shard, **details)
    return None if record is None else record.write_timed(store, progress)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value
