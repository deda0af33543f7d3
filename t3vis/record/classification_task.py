"""Sequence classification as a recording task: one label per example (or text pair).

Encoding is the tokenizer's (truncated at the model's limit); the output unit is the example; its
logits (K,) give a softmax over the labels and the loss is their cross-entropy; the checkpoint's
metrics are accuracy and mean loss; a Data Map point is a training example.

The callback recognises each training row by its token ids (:class:`TokenIndex`): batches are
shuffled, accumulated and loaded by worker processes, and the Trainer drops dataset columns the
model does not take (such as an id). Before training the training set is indexed by the tokens of
each example, and at the end of the epoch every logged row is mapped back to its example id (the
row's index in the training set). Rows are matched on tokens and gold label, so that two identical
texts with different labels keep their own ids; identical examples take their ids in turn. The gold
labels come from the training items themselves, so recording works when the model call carries no
``labels`` (``label_smoothing_factor > 0``, ``compute_loss_func``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedModel

from t3vis.data.loading import ExampleSet, load_examples
from t3vis.errors import DataError, ModelError
from t3vis.model.access import ModelBundle, load_model
from t3vis.model.encoding import encode
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.record.ingest import CheckpointRecord, IngestSummary, compute_checkpoint, examples_table, \
    ingest_checkpoint, label_names_for
from t3vis.record.kept_batches import KeptBatches
from t3vis.record.sources import DataSource, ModelSource
from t3vis.store.database import RunInfo, Store
from t3vis.tasks import SEQUENCE_CLASSIFICATION, SPECS


def _token_key(ids) -> bytes:
    """A fingerprint of one example's real token ids."""
    return hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=12).digest()


class TokenIndex:
    """Maps a training row (token ids, and gold label when known) back to its example id.

    Identical examples (same tokens and label) take their ids in turn. A row whose label is
    unknown (the model call carried no labels) is matched on its tokens alone.
    """

    def __init__(self, token_rows, example_ids: np.ndarray, labels: np.ndarray):
        self.labels = np.asarray(labels, dtype=np.int64)  # (N,) gold label of each example id
        self._by_tokens_and_label: dict[tuple[bytes, int], list[int]] = defaultdict(list)
        self._by_tokens: dict[bytes, list[int]] = defaultdict(list)
        for ids, example_id, label in zip(token_rows, example_ids, self.labels):
            key = _token_key(ids)
            self._by_tokens_and_label[(key, int(label))].append(int(example_id))
            self._by_tokens[key].append(int(example_id))
        self._turn: dict = defaultdict(int)
        self.unmatched = 0

    def new_epoch(self) -> None:
        self._turn.clear()
        self.unmatched = 0

    def lookup(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               labels: torch.Tensor | None = None) -> np.ndarray:
        """Example ids (B,) of a padded batch input_ids (B, T) with labels (B,) or None; -1 where nothing matches."""
        rows = input_ids.cpu().numpy()
        mask = np.ones_like(rows, dtype=bool) if attention_mask is None else attention_mask.cpu().numpy().astype(bool)
        gold = None if labels is None else labels.cpu().numpy().reshape(-1)
        found = np.full(len(rows), -1, dtype=np.int64)
        for index, (row, real) in enumerate(zip(rows, mask)):
            tokens = _token_key(row[real])
            if gold is None:
                key, candidates = tokens, self._by_tokens.get(tokens)
            else:
                key = (tokens, int(gold[index]))
                candidates = self._by_tokens_and_label.get(key)
            if not candidates:
                self.unmatched += 1
                continue
            found[index] = candidates[self._turn[key] % len(candidates)]
            self._turn[key] += 1
        return found


class ExampleCapture(KeptBatches):
    """Keeps each training batch's tokens, logits (B, K) and labels; maps rows to example ids per epoch."""

    missing_hint = "no training forward pass gave logits for the training examples"

    def __init__(self, index: TokenIndex):
        self.index = index
        self._batches: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]] = []

    def keep(self, kwargs: dict, output) -> None:
        input_ids, logits = kwargs.get("input_ids"), getattr(output, "logits", None)
        if input_ids is None or logits is None:
            return
        labels, mask = kwargs.get("labels"), kwargs.get("attention_mask")
        # No labels in the call (label smoothing, compute_loss_func): the index supplies them.
        self._batches.append((input_ids.detach(), None if mask is None else mask.detach(), logits.detach(),
                              None if labels is None else labels.detach()))

    def flush(self, recorder: DynamicsRecorder) -> list[str]:
        self.index.new_epoch()
        try:
            for input_ids, mask, logits, labels in self._batches:
                ids = self.index.lookup(input_ids, mask, labels)
                matched = ids >= 0
                ids = ids[matched]
                recorder.log_batch(ids, logits.cpu()[torch.from_numpy(matched)], self.index.labels[ids])
        finally:
            self._batches.clear()
        if not self.index.unmatched:
            return []
        return [f"{self.index.unmatched} training rows matched no training example by their tokens and label "
                "(does the collator change tokens?); they were left out of the training dynamics."]


class SequenceClassificationTask:
    """The first task: any ``AutoModelForSequenceClassification`` checkpoint over texts (or pairs) with labels."""

    spec = SPECS[SEQUENCE_CLASSIFICATION]
    shards_checkpoints = True  # compute_checkpoint takes a shard: each process of a launch runs its batches

    def recognises(self, model: PreTrainedModel) -> bool:
        return True  # the default: a model with per-example logits

    def encoder(self, model: PreTrainedModel) -> PreTrainedModel:
        return model

    def run_label_names(self, model: PreTrainedModel, given, data) -> tuple[str, ...]:
        return model_label_names(model, given, data)

    def load_data(self, source: DataSource, *, split: str | None) -> ExampleSet:
        return load_examples(
            source.path, text_columns=source.text_columns, label_column=source.label_column,
            label_names=source.label_names, id_column=source.id_column, split=split, encoding=source.encoding,
            file_format=source.file_format, limit=source.limit,
        )

    def load_model(self, source: ModelSource, data_source: DataSource, data: ExampleSet) -> ModelBundle:
        options = dict(label_names=data_source.label_names, tokenizer=source.tokenizer, device=source.device,
                       trust_remote_code=source.trust_remote_code, base_model=source.base_model)
        bundle = load_model(source.path, num_labels=source.num_labels, **options)
        if bundle.classifier_was_initialised and source.num_labels is None \
                and len(bundle.label_names) != len(data.label_names):
            # A pretrained encoder without a head: size the new head to the data's labels.
            bundle = load_model(source.path, num_labels=len(data.label_names), **options)
        return bundle

    def load_checkpoint(self, path: str, *, label_names: tuple[str, ...], device: str | None = None,
                        base_model: str | None = None) -> ModelBundle:
        return load_model(path, label_names=label_names, device=device, base_model=base_model)

    def compute_checkpoint(self, bundle: ModelBundle, data: ExampleSet, *, first_of_split: bool = True,
                           **details) -> CheckpointRecord:
        return compute_checkpoint(bundle, data, **details)  # the examples are written with every checkpoint

    def ingest(self, store: Store | None, bundle: ModelBundle, data: ExampleSet, **details) -> IngestSummary | None:
        return ingest_checkpoint(store, bundle, data, **details)

    def training_capture(self, train_dataset, train_examples: ExampleSet | None) -> ExampleCapture:
        if train_dataset is None or not hasattr(train_dataset, "__len__"):
            raise ModelError("T3visCallback needs a map-style training dataset (with len()) to tell examples "
                             "apart; iterable datasets are not supported.")
        items = [train_dataset[index] for index in range(len(train_dataset))]
        rows = [_item_tokens(item) for item in items]
        if train_examples is not None and len(train_examples) == len(items):
            labels = np.asarray(train_examples.labels, dtype=np.int64)
        else:
            labels = np.array([_item_label(item) for item in items], dtype=np.int64)
        return ExampleCapture(TokenIndex(rows, np.arange(len(rows)), labels))

    def training_examples(self, run: RunInfo, data: ExampleSet, train_dataset, tokenizer) -> tuple[pa.Table, dict]:
        if len(data) != len(train_dataset):
            raise DataError(f"train_examples has {len(data)} rows but the training dataset has {len(train_dataset)}; "
                            "they must be the same examples in the same order.")
        encoded = encode(tokenizer, data.texts, data.text_pairs, max_length=run.max_length)
        rows = examples_table(data, encoded, run.label_names)
        # The dynamics know a training example by its row index in the training dataset.
        rows = rows.set_column(0, "example_id", pa.array(np.arange(len(data)), type=pa.int64()))
        return rows, {}


def model_label_names(model: PreTrainedModel, given, data) -> tuple[str, ...]:
    """A classifier's label names for a run: the given ones, else the model's when it names them (not LABEL_i),
    else the data's (``data.label_names``, padded to the model's number of labels)."""
    if given is not None:
        return tuple(str(name) for name in given)
    config = model.config
    model_names = tuple(str(config.id2label[index]) for index in range(config.num_labels))
    return label_names_for(model_names, None if data is None else data.label_names)


def _item_tokens(item) -> list[int]:
    if not isinstance(item, dict) or "input_ids" not in item:
        raise ModelError("T3visCallback needs training items that hold 'input_ids' (a tokenised dataset), "
                         "to recognise each example in shuffled batches.")
    ids = np.asarray(item["input_ids"].tolist() if isinstance(item["input_ids"], torch.Tensor) else item["input_ids"])
    mask = item.get("attention_mask")
    if mask is not None:  # a dataset padded in advance: only real tokens identify the example
        ids = ids[np.asarray(mask.tolist() if isinstance(mask, torch.Tensor) else mask, dtype=bool)]
    return ids.tolist()


def _item_label(item) -> int:
    label = item.get("labels", item.get("label")) if isinstance(item, dict) else None
    if label is None:
        raise ModelError("T3visCallback needs the gold label of each training item ('labels' or 'label'), or "
                         "train_examples with the labels in the order of the training dataset.")
    label = label.item() if isinstance(label, torch.Tensor) else label
    if isinstance(label, (list, tuple, np.ndarray)):
        raise ModelError("T3visCallback records sequence classification: each training item needs one label.")
    return int(label)
