"""The recording side of a task: one object per task that ingestion and the callback call.

:data:`t3vis.tasks.SPECS` says what a task is; a :class:`RecordingTask` does its work — loads the
examples and the model, computes a checkpoint's outputs per example and per unit with their loss
and metrics, and says what the callback keeps of each training batch (a :class:`TrainingCapture`)
to write the training dynamics of its Data Map points. ``t3vis ingest``, :func:`ingest_files` and
:class:`~t3vis.record.callback.T3visCallback` only ever talk to this interface, so a new task is
one new implementation registered in :data:`RECORDING_TASKS`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
from transformers import PreTrainedModel

from t3vis.errors import ModelError, option
from t3vis.model.access import ModelBundle
from t3vis.record.classification_task import SequenceClassificationTask
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.record.generation_task import GenerationTask
from t3vis.record.ingest import CheckpointRecord, IngestSummary
from t3vis.record.sources import DataSource, ModelSource
from t3vis.record.summarization_task import ExtractiveSummarizationTask
from t3vis.record.tagging_task import TokenClassificationTask
from t3vis.store.database import RunInfo, Store
from t3vis.tasks import TASKS, TaskSpec


@runtime_checkable
class TrainingCapture(Protocol):
    """What the callback keeps of a task's training forward passes, one epoch at a time."""

    missing_hint: str  # why an epoch could have recorded nothing, and what to change

    def keep(self, kwargs: dict, output: Any) -> None:
        """Keep what the dynamics need of one training forward pass (its inputs and output)."""

    def flush(self, recorder: DynamicsRecorder) -> list[str]:
        """Log the epoch's kept batches into the recorder and forget them; returns problems to report."""

    @property
    def pending(self) -> int:
        """Batches kept since the last flush."""

    def clear(self) -> None:
        """Forget the kept batches (a new epoch begins)."""

    def take_batches(self) -> list:
        """The kept batches, forgotten here (a distributed launch sends them to the main process)."""

    def add_batches(self, batches: list) -> None:
        """Keep batches another process took (the main process of a distributed launch flushes them all)."""


@runtime_checkable
class RecordingTask(Protocol):
    """How one task is recorded."""

    spec: TaskSpec
    shards_checkpoints: bool  # compute_checkpoint and ingest take shard= (each process of a launch runs its batches)

    def recognises(self, model: PreTrainedModel) -> bool:
        """Whether a Trainer's model does this task."""

    def encoder(self, model: PreTrainedModel) -> PreTrainedModel:
        """The Transformer inside the model: its token limit is the run's."""

    def run_label_names(self, model: PreTrainedModel, given: tuple[str, ...] | None, data: Any) -> tuple[str, ...]:
        """The run's label names for a model being trained (given by the user, the model's or the data's)."""

    def load_data(self, source: DataSource, *, split: str | None) -> Any:
        """The examples of a data file (an ExampleSet, a DocumentSet, ...)."""

    def load_model(self, source: ModelSource, data_source: DataSource, data: Any) -> ModelBundle:
        """The checkpoint's model for this task, its new head (if any) sized to the data."""

    def load_checkpoint(self, path: str, *, label_names: tuple[str, ...], device: str | None = None,
                        base_model: str | None = None) -> ModelBundle:
        """A checkpoint the store recorded, for the app's live views (its head has the run's labels); ``path`` may
        be an adapter folder, loaded over ``base_model`` when given (else the base it names)."""

    def compute_checkpoint(self, bundle: ModelBundle, data: Any, *, first_of_split: bool = True,
                           **details) -> CheckpointRecord:
        """A checkpoint's results over one split; ``first_of_split``: also the rows the store keeps once per split."""

    def ingest(self, store: Store, bundle: ModelBundle, data: Any, **details) -> IngestSummary:
        """Compute a checkpoint and write it in one transaction."""

    def training_capture(self, train_dataset: Any, train_examples: Any) -> TrainingCapture:
        """What the callback keeps of training batches; raises ModelError when the dataset cannot be tracked."""

    def training_examples(self, run: RunInfo, data: Any, train_dataset: Any,
                          tokenizer: Any) -> tuple[pa.Table, dict[str, pa.Table]]:
        """The training split's ``examples`` rows (ids as the dynamics use them) and its per-split tables;
        raises DataError when ``data`` does not match the training dataset."""


RECORDING_TASKS: dict[str, RecordingTask] = {
    task.spec.name: task for task in (ExtractiveSummarizationTask(), TokenClassificationTask(), GenerationTask(),
                                      SequenceClassificationTask())
}


def recording_task(name: str) -> RecordingTask:
    """The recording implementation of a task, by name."""
    try:
        return RECORDING_TASKS[name]
    except KeyError:
        raise ModelError(f"Unknown task {name!r}; {option('task')} is one of {', '.join(TASKS)}.") from None


def task_of_model(model: PreTrainedModel) -> RecordingTask:
    """The task a Trainer's model does: the first implementation that recognises it (the most specific
    tasks are registered first; sequence classification takes any other model)."""
    for task in RECORDING_TASKS.values():
        if task.recognises(model):
            return task
    raise ModelError(f"t3vis does not know the task of {type(model).__name__}; it records {', '.join(TASKS)}.")
