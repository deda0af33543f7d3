"""Ingesting a checkpoint given by paths: a model folder (or hub name) and a data file.

This is what ``t3vis ingest`` and ``t3vis ingest-dir`` run, as a typed function for Python callers:
load the examples, load the model (sizing a fresh classification head to the data's labels), read
the checkpoint's step and epoch from its folder, and ingest — each step done by the task's
:class:`~t3vis.record.task.RecordingTask` (sequence classification: an ExampleSet and a classifier;
extractive summarization: a DocumentSet and a summarizer).

Under ``torchrun`` / ``accelerate launch`` every process calls it: each runs its share of the batches,
the main process gathers, projects and writes (the other processes get None and need no store); a task
whose checkpoints are not sharded (``shards_checkpoints = False``) is computed by the main process alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t3vis.model.checkpoint_folders import weights_status
from t3vis.progress import Progress, no_progress
from t3vis.record.distributed import Shard, current_shard, share_main_weights
from t3vis.record.checkpoints import describe_checkpoint
from t3vis.record.ingest import IngestSummary
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.sources import DataSource, ModelSource
from t3vis.record.task import recording_task
from t3vis.store.database import Store
from t3vis.tasks import SEQUENCE_CLASSIFICATION

__all__ = ["DataSource", "FileIngestion", "ModelSource", "default_run_name", "ingest_files"]


@dataclass(frozen=True)
class FileIngestion:
    """What :func:`ingest_files` wrote, and what the caller may want to tell the user."""

    summary: IngestSummary
    max_length: int  # the token limit the texts were truncated to
    head_was_initialised: bool  # the weights had no classification head: it was initialised at random


def ingest_files(
    store: Store | None,
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
    shard: Shard | None = None,
) -> FileIngestion | None:
    """Record one checkpoint, given by its path, over one data file.

    ``run_id``, ``checkpoint``, ``step`` and ``epoch`` default to what the checkpoint folder says
    (its name, ``trainer_state.json``, the parent folder of a ``checkpoint-<step>`` folder).
    ``task`` is one of :data:`t3vis.tasks.TASKS`. ``shard``: this process's part of a distributed launch
    (default: the initialised process group's, if any); only the main process writes into ``store`` (the
    others may pass None) and gets the result, the others get None.
    """
    recorder = recording_task(task)  # refuses an unknown task before anything is read
    shard = current_shard() if shard is None else shard
    sharded = shard.distributed and recorder.shards_checkpoints
    if not shard.is_main and not sharded:
        return None  # the main process computes this task's checkpoints alone
    folder = Path(model.path)
    if folder.exists():  # a local folder: a model, or an adapter whose base is found (else say which base)
        weights_status(folder, base_model=model.base_model).require()
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
    examples = recorder.load_data(data, split=config.split)
    bundle = recorder.load_model(model, data, examples)
    if sharded and bundle.classifier_was_initialised:
        share_main_weights(bundle.model, shard)  # one random head for all processes: the main process's
    summary = recorder.ingest(store, bundle, examples, **details, **({"shard": shard} if sharded else {}))
    if summary is None:
        return None  # another process (the main one) wrote it
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
