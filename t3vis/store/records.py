"""What the store is given to write and gives back: a run's row, a checkpoint's row, one checkpoint's results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from t3vis.tasks import SEQUENCE_CLASSIFICATION


@dataclass(frozen=True)
class RunInfo:
    """The ``runs`` row of a run."""

    run_id: str
    model: str
    label_names: tuple[str, ...]
    num_layers: int
    num_heads: int
    max_length: int
    task: str = SEQUENCE_CLASSIFICATION  # one of TASKS
    dataset: str | None = None  # free text, e.g. the data file's name
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointInfo:
    """The ``checkpoints`` row of a checkpoint."""

    run_id: str
    checkpoint: str
    step: int | None = None
    epoch: float | None = None
    path: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointResults:
    """Everything one ingestion of a checkpoint over one split writes.

    Each table is an Arrow table whose columns are named as in the schema; the run, checkpoint
    and split columns are filled in by the store.
    """

    split: str
    tables: Mapping[str, pa.Table]  # name in CHECKPOINT_TABLES -> rows
    examples: pa.Table | None = None  # the split's examples, written when the run lacks them
    split_tables: Mapping[str, pa.Table] = field(default_factory=dict)  # name in SPLIT_TABLES -> rows, likewise
