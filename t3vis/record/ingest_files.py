"""Ingesting a checkpoint given by paths: a model folder (or hub name) and a data file.

This is what ``t3vis ingest`` and ``t3vis ingest-dir`` run, as a typed function for Python callers:
load the examples, load the model (sizing a fresh classification head to the data's labels), read
the checkpoint's step and epoch from its folder, and call :func:`t3vis.record.ingest.ingest_checkpoint`
(or, for extractive summarization, load documents and a summarizer and call
:func:`t3vis.record.summarization.ingest_summarizer_checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t3vis.data.loading import load_examples
from t3vis.errors import ModelError, option
from t3vis.model.access import load_model
from t3vis.progress import Progress, no_progress
from t3vis.record.checkpoints import describe_checkpoint
from t3vis.record.ingest import IngestSummary, ingest_checkpoint
from t3vis.record.ingest_config import IngestConfig
from t3vis.store.database import Store
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, SEQUENCE_CLASSIFICATION, TASKS


@dataclass(frozen=True)
class DataSource:
    """Where the examples come from; see :func:`t3vis.data.loading.load_examples` for each field.

    The split named by ``IngestConfig.split`` also picks the split of a ``datasets`` DatasetDict folder.
    """

    path: str | Path
    text_columns: tuple[str, ...] | None = None  # sequence classification
    label_column: str | None = None
    label_names: tuple[str, ...] | None = None
    id_column: str | None = None
    encoding: str = "utf-8"
    file_format: str | None = None
    limit: int | None = None
    article_column: str | None = None  # extractive summarization: the document ...
    summary_column: str | None = None  # ... and its reference summary


@dataclass(frozen=True)
class ModelSource:
    """Which model to run; see :func:`t3vis.model.access.load_model` for each field."""

    path: str | Path
    tokenizer: str | Path | None = None
    num_labels: int | None = None
    device: str | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class FileIngestion:
    """What :func:`ingest_files` wrote, and what the caller may want to tell the user."""

    summary: IngestSummary
    max_length: int  # the token limit the texts were truncated to
    head_was_initialised: bool  # the weights had no classification head: it was initialised at random


def ingest_files(
    store: Store,
    model: ModelSource,
    data: DataSource,
    *,
    config: IngestConfig = IngestConfig(),
    run_id: str | None = None,
    checkpoint: str | None = None,
    step: int | None = None,
    epoch: float | None = None,
    dataset: str | None = None,
    task: str = SEQUENCE_CLASSIFICATION,
    progress: Progress = no_progress,
) -> FileIngestion:
    """Record one checkpoint, given by its path, over one data file.

    ``run_id``, ``checkpoint``, ``step`` and ``epoch`` default to what the checkpoint folder says
    (its name, ``trainer_state.json``, the parent folder of a ``checkpoint-<step>`` folder).
    ``task`` is one of :data:`t3vis.tasks.TASKS`.
    """
    if task not in TASKS:
        raise ModelError(f"Unknown task {task!r}; {option('task')} is one of {', '.join(TASKS)}.")
    folder = Path(model.path)
    described = describe_checkpoint(folder, name=checkpoint) if folder.exists() else None
    details = dict(
        run_id=run_id or default_run_name(model.path),
        checkpoint=checkpoint or (described.name if described else _last_part(model.path)),
        step=step if step is not None else (described.step if described else None),
        epoch=epoch if epoch is not None else (described.epoch if described else None),
        path=folder.resolve() if folder.exists() else str(model.path),
        dataset=dataset,
        extra_metrics=described.trainer_metrics if described else None,
        config=config, progress=progress,
    )
    if task == EXTRACTIVE_SUMMARIZATION:
        return _ingest_summarizer(store, model, data, config, details)
    examples = load_examples(
        data.path, text_columns=data.text_columns, label_column=data.label_column, label_names=data.label_names,
        id_column=data.id_column, split=config.split, encoding=data.encoding, file_format=data.file_format,
        limit=data.limit,
    )
    options = dict(label_names=data.label_names, tokenizer=model.tokenizer, device=model.device,
                   trust_remote_code=model.trust_remote_code)
    bundle = load_model(model.path, num_labels=model.num_labels, **options)
    if bundle.classifier_was_initialised and model.num_labels is None \
            and len(bundle.label_names) != len(examples.label_names):
        # A pretrained encoder without a head: size the new head to the data's labels.
        bundle = load_model(model.path, num_labels=len(examples.label_names), **options)
    summary = ingest_checkpoint(store, bundle, examples, **details)
    return FileIngestion(summary=summary, max_length=config.max_length or bundle.max_length,
                         head_was_initialised=bundle.classifier_was_initialised)


def _ingest_summarizer(store: Store, model: ModelSource, data: DataSource, config: IngestConfig,
                       details: dict) -> FileIngestion:
    from t3vis.data.documents import load_documents
    from t3vis.model.summarizer_loading import load_summarizer
    from t3vis.record.summarization import ingest_summarizer_checkpoint

    documents = load_documents(
        data.path, article_column=data.article_column, summary_column=data.summary_column, id_column=data.id_column,
        split=config.split, encoding=data.encoding, file_format=data.file_format, limit=data.limit,
    )
    bundle = load_summarizer(model.path, tokenizer=model.tokenizer, device=model.device,
                             trust_remote_code=model.trust_remote_code)
    summary = ingest_summarizer_checkpoint(store, bundle, documents, **details)
    return FileIngestion(summary=summary, max_length=min(config.max_length or bundle.max_length, bundle.max_length),
                         head_was_initialised=bundle.classifier_was_initialised)


def default_run_name(model_path: str | Path, *, output_dir: str | Path | None = None) -> str:
    """A run's name when none is given: the Trainer output folder's name, else the model folder's."""
    if output_dir is not None:
        return Path(output_dir).resolve().name
    path = Path(model_path)
    if path.exists() and path.name.startswith("checkpoint-"):
        return path.resolve().parent.name
    return _last_part(model_path)


def _last_part(model_path: str | Path) -> str:
    return str(model_path).rstrip("/").split("/")[-1]
