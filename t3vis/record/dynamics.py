"""Training dynamics: the gold-label probability of every training example at every epoch.

Swayamdipta et al. (2020) build Data Maps from statistics that training computes anyway: each
training forward pass gives the logits of the examples in its batch. The recorder keeps those
(detached, a few floats per example) and writes one row per example at the end of each epoch.
Nothing runs an extra pass over the training set.

For your own training loop::

    recorder = DynamicsRecorder(store, run)
    for epoch in range(epochs):
        for batch in loader:
            output = model(**batch["inputs"])
            recorder.log_batch(batch["example_id"], output.logits, batch["labels"])
            ...
        recorder.end_epoch()

The Data Map itself (confidence, variability, correctness, forgetting events, regions) is the
``data_map`` view of the store: SQL over the rows written here.
"""

from __future__ import annotations

import numpy as np
import torch

from t3vis.store.background_writer import BackgroundWriter
from t3vis.store.database import RunInfo, Store
from t3vis.store.rows import dynamics_rows


def _to_numpy(values, dtype) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu() if dtype == np.float32 else values.detach().cpu()
        return values.numpy().astype(dtype, copy=False)
    return np.asarray(values, dtype=dtype)


class DynamicsRecorder:
    """Collects (example id, logits, gold label) of training batches and writes them per epoch.

    Parameters
    ----------
    store : Store
        Where ``end_epoch`` writes.
    run : RunInfo
        The run the dynamics belong to (created in the store if new).
    split : str
        Split name of the training examples.
    writer : BackgroundWriter, optional
        Queue each epoch's write on this writer's thread instead of writing before ``end_epoch``
        returns, so that a reader holding the store never stalls the training loop (call
        ``writer.flush()`` at the end of training).
    """

    def __init__(self, store: Store, run: RunInfo, *, split: str = "train", writer: BackgroundWriter | None = None):
        self.store = store
        self.run = run
        self.split = split
        self.writer = writer
        self.epoch = 0
        self._ids: list[np.ndarray] = []
        self._logits: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    @property
    def pending(self) -> int:
        """Observations logged since the last ``end_epoch``."""
        return sum(len(ids) for ids in self._ids)

    def log_batch(self, example_ids, logits, labels) -> None:
        """Record one training forward pass: ids (B,), logits (B, K), gold labels (B,)."""
        ids = _to_numpy(example_ids, np.int64).reshape(-1)
        values = _to_numpy(logits, np.float32)
        gold = _to_numpy(labels, np.int64).reshape(-1)
        if values.ndim != 2 or not len(ids) == len(values) == len(gold):
            raise ValueError(f"log_batch needs ids (B,), logits (B, K) and labels (B,); got {ids.shape}, "
                             f"{values.shape}, {gold.shape}")
        if len(gold) and (gold.min() < 0 or gold.max() >= values.shape[1]):
            raise ValueError(f"labels must lie in [0, {values.shape[1]}), got {sorted(set(gold.tolist()))[:10]}")
        self._ids.append(ids)
        self._logits.append(values)
        self._labels.append(gold)

    def end_epoch(self, epoch: int | None = None) -> int:
        """Write the epoch's rows (one transaction, or queued on the writer) and start the next epoch;
        returns the number of rows."""
        epoch = self.epoch if epoch is None else epoch
        written = 0
        if self._ids:
            rows = dynamics_rows(np.concatenate(self._ids), np.concatenate(self._logits),
                                 np.concatenate(self._labels))
            if self.writer is None:
                self.store.write_training_dynamics(self.run, self.split, epoch, rows)
            else:
                run, split = self.run, self.split
                self.writer.submit(f"training dynamics of epoch {epoch}",
                                   lambda: self.store.write_training_dynamics(run, split, epoch, rows))
            written = rows.num_rows
        self._ids, self._logits, self._labels = [], [], []
        self.epoch = epoch + 1
        return written
