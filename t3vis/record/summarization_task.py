"""Extractive summarization as a recording task: one binary label per sentence of a document (BertSum).

Encoding puts ``[CLS]`` before and ``[SEP]`` after every sentence (:func:`t3vis.model.summarizer.encode_documents`);
the output unit is a sentence, with one logit (a sigmoid gives the probability that it belongs in the summary);
the loss is the binary cross-entropy per sentence against the greedy-ROUGE oracle; the checkpoint's metrics are
ROUGE-1/2/L of the top-3 sentences, the mean loss and the sentence accuracy; a Data Map point is a training
sentence. The callback needs no token index: the :class:`~t3vis.record.trainer_data.SummarizationCollator`
passes every batch's document ids to the model.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from t3vis.data.documents import DocumentSet, load_documents
from t3vis.errors import DataError
from t3vis.model.access import ModelBundle
from t3vis.model.summarizer import MODEL_TYPE
from t3vis.model.summarizer_loading import load_summarizer
from t3vis.progress import no_progress
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.record.ingest import CheckpointRecord, IngestSummary
from t3vis.record.kept_batches import KeptBatches
from t3vis.record.sources import DataSource, ModelSource
from t3vis.record.summarization import (compute_summarizer_checkpoint, document_examples_table,
                                        ingest_summarizer_checkpoint, split_tables)
from t3vis.store.database import RunInfo, Store
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, SPECS, SUMMARY_LABELS

_BATCH_INPUTS = ("example_ids", "labels", "sentence_mask")  # what each training call must carry


class SentenceCapture(KeptBatches):
    """Keeps each training batch's document ids (B,), sentence logits (B, S), oracle labels and sentence mask."""

    missing_hint = ("no training batch carried example_ids, labels and sentence_mask (use "
                    "t3vis.record.trainer_data's SummarizationDataset and SummarizationCollator)")

    def __init__(self):
        self._batches: list[tuple[torch.Tensor, ...]] = []

    def keep(self, kwargs: dict, output) -> None:
        logits = getattr(output, "logits", None)
        if logits is None or any(kwargs.get(name) is None for name in _BATCH_INPUTS):
            return
        ids, labels, mask = (kwargs[name].detach() for name in _BATCH_INPUTS)
        self._batches.append((ids, logits.detach(), labels, mask))

    def flush(self, recorder: DynamicsRecorder) -> list[str]:
        try:
            for example_ids, logits, labels, mask in self._batches:
                recorder.log_units(example_ids, logits, labels, mask)
        finally:
            self._batches.clear()
        return []


class ExtractiveSummarizationTask:
    """BertSum-style extractive summarization over any supported encoder."""

    spec = SPECS[EXTRACTIVE_SUMMARIZATION]
    shards_checkpoints = True  # compute_checkpoint takes a shard: each process of a launch runs its batches

    def recognises(self, model: PreTrainedModel) -> bool:
        return getattr(model.config, "model_type", None) == MODEL_TYPE

    def encoder(self, model: PreTrainedModel) -> PreTrainedModel:
        return model.encoder

    def run_label_names(self, model: PreTrainedModel, given, data) -> tuple[str, ...]:
        return SUMMARY_LABELS

    def load_data(self, source: DataSource, *, split: str | None) -> DocumentSet:
        return load_documents(
            source.path, article_column=source.article_column, summary_column=source.summary_column,
            id_column=source.id_column, split=split, encoding=source.encoding, file_format=source.file_format,
            limit=source.limit,
        )

    def load_model(self, source: ModelSource, data_source: DataSource, data: DocumentSet) -> ModelBundle:
        return load_summarizer(source.path, tokenizer=source.tokenizer, device=source.device,
                               trust_remote_code=source.trust_remote_code, base_model=source.base_model)

    def load_checkpoint(self, path: str, *, label_names: tuple[str, ...], device: str | None = None,
                        base_model: str | None = None) -> ModelBundle:
        return load_summarizer(path, device=device, base_model=base_model)

    def compute_checkpoint(self, bundle: ModelBundle, data: DocumentSet, *, first_of_split: bool = True,
                           **details) -> CheckpointRecord | None:
        return compute_summarizer_checkpoint(bundle, data, with_split_tables=first_of_split, **details)

    def ingest(self, store: Store | None, bundle: ModelBundle, data: DocumentSet,
               **details) -> IngestSummary | None:
        return ingest_summarizer_checkpoint(store, bundle, data, **details)

    def training_capture(self, train_dataset, train_examples) -> SentenceCapture:
        return SentenceCapture()  # the collator passes the document ids

    def training_examples(self, run: RunInfo, data: DocumentSet, train_dataset, tokenizer):
        encoded = getattr(train_dataset, "encoded", None)
        if encoded is None or len(encoded) != len(data):
            raise DataError("train_examples must be the DocumentSet the SummarizationDataset was made from.")
        rows = document_examples_table(data, encoded)
        return rows, split_tables(data, encoded, no_progress, with_baselines=False)
