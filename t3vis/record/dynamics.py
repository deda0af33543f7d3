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

For an extractive summarizer, ``log_units(example_ids, scores, labels, sentence_mask)`` records
one row per sentence instead (the ``unit`` column), from the (B, S) sentence logits; for a token
classifier, ``log_words(example_ids, logits, labels)`` one row per tagged word, from the (B, T, K)
logits at each word's first piece (the pieces whose label is not -100); for a language model fine-tuned on
prompt → completion pairs, ``log_completion_rows`` one row per example (its completion tokens' geometric-mean
probability and token accuracy) and one per completion token (``token_dynamics``), from each token's scores.

The Data Map itself (confidence, variability, correctness, forgetting events, regions) is the
``data_map`` view of the store: SQL over the rows written here.
"""

from __future__ import annotations

import numpy as np
import torch

from t3vis.store.background_writer import BackgroundWriter
from t3vis.store.database import RunInfo, Store
from t3vis.model.word_encoding import first_piece_rows
from t3vis.store.generation_rows import completion_dynamics_rows
from t3vis.store.rows import dynamics_rows, unit_dynamics_rows, word_dynamics_rows


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
        self._units: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # ids, units, scores, labels
        self._words: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # ids, units, logits, tags
        self._completions: list[tuple[np.ndarray, ...]] = []  # ids, tokens, token ids, log-probs, ranks, argmaxes, right

    @property
    def pending(self) -> int:
        """Observations logged since the last ``end_epoch``."""
        return sum(len(ids) for ids in self._ids) + sum(len(rows[0]) for rows in (*self._units, *self._words,
                                                                                  *self._completions))

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

    def log_units(self, example_ids, scores, labels, unit_mask) -> None:
        """Record one training forward pass of a model with binary units (a summarizer's sentences):
        ids (B,), scores (B, S) logits, labels (B, S) 0/1, unit_mask (B, S) 1 for real units."""
        ids = _to_numpy(example_ids, np.int64).reshape(-1)
        values = _to_numpy(scores, np.float32)
        gold = _to_numpy(labels, np.int64)
        mask = _to_numpy(unit_mask, np.int64).astype(bool)
        if values.ndim != 2 or values.shape != gold.shape or values.shape != mask.shape or len(ids) != len(values):
            raise ValueError(f"log_units needs ids (B,) and scores, labels and mask (B, S); got {ids.shape}, "
                             f"{values.shape}, {gold.shape}, {mask.shape}")
        rows, units = np.nonzero(mask)  # (M,) each
        self._units.append((ids[rows], units.astype(np.int64), values[rows, units], gold[rows, units]))

    def log_words(self, example_ids, logits, labels) -> None:
        """Record one training forward pass of a token classifier: ids (B,), logits (B, T, K), labels (B, T)
        with each word's tag at its first piece and -100 elsewhere."""
        ids = _to_numpy(example_ids, np.int64).reshape(-1)
        values = _to_numpy(logits, np.float32)
        if values.ndim != 3 or len(ids) != len(values) or tuple(labels.shape) != values.shape[:2]:
            raise ValueError(f"log_words needs ids (B,), logits (B, T, K) and labels (B, T); got {ids.shape}, "
                             f"{values.shape}, {tuple(labels.shape)}")
        rows, positions, words = first_piece_rows(torch.as_tensor(labels))  # (M,) each
        gold = _to_numpy(labels, np.int64)[rows, positions]  # (M,)
        self.log_word_rows(ids[rows], words, values[rows, positions], gold)

    def log_word_rows(self, example_ids, units, logits, tags) -> None:
        """Record tagged words already gathered: ids (M,), word indices (M,), logits (M, K), gold tags (M,)."""
        ids, words = _to_numpy(example_ids, np.int64).reshape(-1), _to_numpy(units, np.int64).reshape(-1)
        values, gold = _to_numpy(logits, np.float32), _to_numpy(tags, np.int64).reshape(-1)
        if values.ndim != 2 or not len(ids) == len(words) == len(values) == len(gold):
            raise ValueError(f"log_word_rows needs ids, units and tags (M,) and logits (M, K); got {ids.shape}, "
                             f"{words.shape}, {gold.shape}, {values.shape}")
        if len(gold) and (gold.min() < 0 or gold.max() >= values.shape[1]):
            raise ValueError(f"tags must lie in [0, {values.shape[1]}), got {sorted(set(gold.tolist()))[:10]}")
        self._words.append((ids, words, values, gold))

    def log_completion_rows(self, example_ids, tokens, token_ids, log_probability, rank, predicted,
                            correct=None) -> None:
        """Record scored completion tokens of a language model's training pass, all (M,): example ids, each token's
        position in its completion, its gold id, the gold token's log-probability and rank, and the argmax id
        (-1 for both where the pass gave no logits; ``correct`` then says whether the gold token was the argmax)."""
        correct = _to_numpy(rank, np.int64).reshape(-1) == 1 if correct is None else correct
        columns = (_to_numpy(example_ids, np.int64).reshape(-1), _to_numpy(tokens, np.int64).reshape(-1),
                   _to_numpy(token_ids, np.int64).reshape(-1), _to_numpy(log_probability, np.float64).reshape(-1),
                   _to_numpy(rank, np.int64).reshape(-1), _to_numpy(predicted, np.int64).reshape(-1),
                   _to_numpy(correct, np.int64).reshape(-1).astype(bool))
        if len({len(column) for column in columns}) != 1:
            raise ValueError(f"log_completion_rows needs six (M,) arrays; got {[c.shape for c in columns]}")
        self._completions.append(columns)

    def end_epoch(self, epoch: int | None = None) -> int:
        """Write the epoch's rows (one transaction, or queued on the writer) and start the next epoch;
        returns the number of rows."""
        epoch = self.epoch if epoch is None else epoch
        written = 0
        rows = token_rows = None
        if self._ids:
            rows = dynamics_rows(np.concatenate(self._ids), np.concatenate(self._logits),
                                 np.concatenate(self._labels))
        elif self._units:
            rows = unit_dynamics_rows(*(np.concatenate(part) for part in zip(*self._units)))
        elif self._words:
            rows = word_dynamics_rows(*(np.concatenate(part) for part in zip(*self._words)))
        elif self._completions:
            rows, token_rows = completion_dynamics_rows(*(np.concatenate(part) for part in zip(*self._completions)))
        if rows is not None:
            # the per-token rows only where there are some: a Store subclass of an earlier release keeps working
            extra = () if token_rows is None else (token_rows,)
            if self.writer is None:
                self.store.write_training_dynamics(self.run, self.split, epoch, rows, *extra)
            else:
                run, split = self.run, self.split
                self.writer.submit(f"training dynamics of epoch {epoch}",
                                   lambda: self.store.write_training_dynamics(run, split, epoch, rows, *extra))
            written = rows.num_rows
        self._ids, self._logits, self._labels, self._units, self._words = [], [], [], [], []
        self._completions = []
        self.epoch = epoch + 1
        return written
