"""Token classification as a recording task: one tag per word of a sentence (named entities, POS, chunks).

Encoding is the tokenizer's word pieces with each word's tag on its first piece
(:mod:`t3vis.model.word_encoding`); the output unit is a word, whose logits (K,) at its first piece give a
softmax over the tags; the loss is their cross-entropy, a sentence's loss the mean over its words; the
checkpoint's metrics are entity-level precision, recall and F1 (strict IOB2, per type and overall), word
accuracy and loss; a Data Map point is a training word. The callback recognises each training row by its
token ids, as for sequence classification, and reads each word's tag at its first piece.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from transformers import PreTrainedModel

from t3vis.data.tagging import TaggedSentences, load_tagged
from t3vis.errors import DataError, ModelError
from t3vis.model.access import ModelBundle, load_model
from t3vis.model.word_encoding import IGNORED, encode_words
from t3vis.record.classification_task import TokenIndex, _item_tokens, model_label_names
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.record.ingest import CheckpointRecord, IngestSummary, label_names_for
from t3vis.record.kept_batches import KeptBatches
from t3vis.record.sources import DataSource, ModelSource
from t3vis.record.tagging import compute_tagger_checkpoint, ingest_tagger_checkpoint, sentence_examples_table, \
    word_table
from t3vis.store.database import RunInfo, Store
from t3vis.tasks import SPECS, TOKEN_CLASSIFICATION


class WordCapture(KeptBatches):
    """Keeps what the per-word dynamics need of each training batch, on the CPU: the tokens (to find the sentence),
    and each tagged word's logits (K,) at its first piece with its gold tag; maps rows to sentence ids per epoch.

    Only the tagged positions of a batch's (B, T, K) logits are kept, so an epoch costs a few floats per word,
    not per token, and nothing stays on the accelerator."""

    missing_hint = "no training forward pass gave token logits for the training sentences"

    def __init__(self, index: TokenIndex, item_labels: list[list[int]]):
        self.index = index
        self.item_labels = item_labels  # per training row: (T_real,) labels with IGNORED off first pieces
        self._batches: list[dict] = []

    def keep(self, kwargs: dict, output) -> None:
        input_ids, logits = kwargs.get("input_ids"), getattr(output, "logits", None)
        if input_ids is None or logits is None or logits.dim() != 3:
            return
        labels, mask = kwargs.get("labels"), kwargs.get("attention_mask")
        kept = {"input_ids": input_ids.detach().cpu(), "mask": None if mask is None else mask.detach().cpu()}
        if labels is not None:
            rows, positions = torch.nonzero(labels != IGNORED, as_tuple=True)  # (M,) each, row-major
            kept.update(rows=rows.cpu(), logits=logits.detach()[rows, positions].float().cpu(),  # (M, K)
                        tags=labels[rows, positions].cpu())
        else:  # no labels in the call: the training items' own say which positions are words
            kept["all_logits"] = logits.detach().float().cpu()  # (B, T, K)
        self._batches.append(kept)

    def flush(self, recorder: DynamicsRecorder) -> list[str]:
        self.index.new_epoch()
        try:
            for kept in self._batches:
                ids = self.index.lookup(kept["input_ids"], kept["mask"], None)  # (B,)
                if "all_logits" in kept:
                    labels = self._labels_from_items(ids, kept["input_ids"], kept["mask"])  # (B, T)
                    rows, positions = torch.nonzero(labels != IGNORED, as_tuple=True)
                    logits, tags = kept["all_logits"][rows, positions], labels[rows, positions]
                else:
                    rows, logits, tags = kept["rows"], kept["logits"], kept["tags"]
                rows = rows.numpy()
                words = np.arange(len(rows)) - np.searchsorted(rows, rows)  # (M,) position among its row's words
                matched = ids[rows] >= 0
                recorder.log_word_rows(ids[rows][matched], words[matched], logits.numpy()[matched],
                                       tags.numpy()[matched])
        finally:
            self._batches.clear()
        if not self.index.unmatched:
            return []
        return [f"{self.index.unmatched} training rows matched no training sentence by their tokens (does the "
                "collator change tokens?); they were left out of the training dynamics."]

    def _labels_from_items(self, ids: np.ndarray, input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        labels = torch.full(input_ids.shape, IGNORED, dtype=torch.long)  # (B, T)
        real = torch.ones_like(input_ids, dtype=torch.bool) if mask is None else mask.bool()
        for row, example_id in enumerate(ids):
            if example_id >= 0:
                positions = torch.nonzero(real[row]).flatten()  # the real tokens, left or right padded
                labels[row, positions] = torch.tensor(self.item_labels[example_id][: len(positions)])
        return labels


class TokenClassificationTask:
    """Any ``AutoModelForTokenClassification`` checkpoint over tagged sentences."""

    spec = SPECS[TOKEN_CLASSIFICATION]
    shards_checkpoints = True  # compute_checkpoint takes a shard: each process of a launch runs its batches

    def recognises(self, model: PreTrainedModel) -> bool:
        return type(model).__name__.endswith("ForTokenClassification")

    def encoder(self, model: PreTrainedModel) -> PreTrainedModel:
        return model

    def run_label_names(self, model: PreTrainedModel, given, data) -> tuple[str, ...]:
        return model_label_names(model, given, data)  # a TaggedSentences' label_names are its tag names

    def load_data(self, source: DataSource, *, split: str | None) -> TaggedSentences:
        return load_tagged(source.path, words_column=source.words_column, tags_column=source.tags_column,
                           tag_names=source.label_names, tag_column=source.tag_column, id_column=source.id_column,
                           split=split, encoding=source.encoding, file_format=source.file_format, limit=source.limit)

    def load_model(self, source: ModelSource, data_source: DataSource, data: TaggedSentences) -> ModelBundle:
        options = dict(tokenizer=source.tokenizer, device=source.device, trust_remote_code=source.trust_remote_code,
                       task=TOKEN_CLASSIFICATION, base_model=source.base_model)
        bundle = load_model(source.path, num_labels=source.num_labels, label_names=data_source.label_names, **options)
        if bundle.classifier_was_initialised and source.num_labels is None and data_source.label_names is None:
            # A pretrained encoder without a tagging head: one output per tag of the data, named by it.
            bundle = load_model(source.path, label_names=data.tag_names, **options)
        names = label_names_for(bundle.label_names, data.tag_names)
        return bundle if names == bundle.label_names else replace(bundle, label_names=names)

    def load_checkpoint(self, path: str, *, label_names: tuple[str, ...], device: str | None = None,
                        base_model: str | None = None) -> ModelBundle:
        return load_model(path, label_names=label_names, device=device, task=TOKEN_CLASSIFICATION,
                          base_model=base_model)

    def compute_checkpoint(self, bundle: ModelBundle, data: TaggedSentences, *, first_of_split: bool = True,
                           **details) -> CheckpointRecord | None:
        return compute_tagger_checkpoint(bundle, data, with_split_tables=first_of_split, **details)

    def ingest(self, store: Store | None, bundle: ModelBundle, data: TaggedSentences,
               **details) -> IngestSummary | None:
        return ingest_tagger_checkpoint(store, bundle, data, **details)

    def training_capture(self, train_dataset, train_examples) -> WordCapture:
        if train_dataset is None or not hasattr(train_dataset, "__len__"):
            raise ModelError("T3visCallback needs a map-style training dataset (with len()) to tell sentences "
                             "apart; iterable datasets are not supported.")
        items = [train_dataset[index] for index in range(len(train_dataset))]
        rows = [_item_tokens(item) for item in items]
        labels = [_item_word_labels(item, len(tokens)) for item, tokens in zip(items, rows)]
        index = TokenIndex(rows, np.arange(len(rows)), np.zeros(len(rows), dtype=np.int64))
        return WordCapture(index, labels)

    def training_examples(self, run: RunInfo, data: TaggedSentences, train_dataset, tokenizer):
        if len(data) != len(train_dataset):
            raise DataError(f"train_examples has {len(data)} sentences but the training dataset has "
                            f"{len(train_dataset)}; they must be the same sentences in the same order.")
        # The dynamics know a training sentence by its row index in the training dataset.
        data = replace(data, example_ids=np.arange(len(data), dtype=np.int64))
        encoded = encode_words(tokenizer, data.words, max_length=run.max_length)
        return sentence_examples_table(data, encoded), {"units": word_table(data, encoded)}


def _item_word_labels(item: dict, n_tokens: int) -> list[int]:
    labels = item.get("labels", item.get("label"))
    if labels is None:
        raise ModelError("T3visCallback needs each training item's 'labels' (a tag id at each word's first piece, "
                         "-100 elsewhere), as transformers' token-classification recipe makes them.")
    labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    mask = item.get("attention_mask")
    if mask is not None:  # padded in advance: keep the labels of the real tokens
        keep = mask.tolist() if isinstance(mask, torch.Tensor) else list(mask)
        labels = [label for label, real in zip(labels, keep) if real]
    if len(labels) != n_tokens:
        raise ModelError(f"A training item has {n_tokens} tokens but {len(labels)} labels; token classification "
                         "needs one label per token.")
    return [int(label) for label in labels]
