"""Datasets (and a collator) for ``transformers.Trainer`` runs that t3vis records, beyond sequence classification.

Extractive summarization:

    documents = load_documents("cnn_dailymail_train.csv")
    train = SummarizationDataset(documents, tokenizer, max_length=512)
    trainer = Trainer(model=ExtractiveSummarizer.from_encoder(...), train_dataset=train,
                      data_collator=SummarizationCollator(tokenizer), processing_class=tokenizer,
                      callbacks=[T3visCallback(..., eval_examples=validation_documents,
                                               train_examples=documents)])

Items are keyed by the summarizer's argument names (``input_ids``, ``token_type_ids``,
``cls_positions``, ``labels``, ``example_ids``), so the Trainer's removal of unused columns keeps them.
Each carries its document's id; the collator passes the batch's ids to the model (which ignores them),
so the recording callback knows which document each row of logits belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from t3vis.data.documents import DocumentSet
from t3vis.data.tagging import TaggedSentences
from t3vis.model.summarizer import EncodedDocument, collate_documents, encode_documents
from t3vis.model.word_encoding import EncodedWords, encode_words


class SummarizationDataset(torch.utils.data.Dataset):
    """Documents encoded BertSum-style (``[CLS] s [SEP]`` per sentence), with their oracle labels."""

    def __init__(self, documents: DocumentSet, tokenizer: PreTrainedTokenizerBase, *, max_length: int = 512,
                 segments: bool = True):
        self.documents = documents
        self.encoded: list[EncodedDocument] = encode_documents(tokenizer, documents.sentences,
                                                               max_length=max_length, segments=segments)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> dict:
        encoded = self.encoded[index]
        return {"input_ids": encoded.input_ids, "token_type_ids": encoded.token_type_ids,
                "cls_positions": encoded.cls_positions,
                "labels": self.documents.oracle[index][: encoded.n_kept].tolist(),
                "example_ids": int(self.documents.example_ids[index])}


class SummarizationCollator:
    """Pads a batch of :class:`SummarizationDataset` items into the summarizer's inputs."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        documents = [EncodedDocument(input_ids=list(item["input_ids"]), token_type_ids=list(item["token_type_ids"]),
                                     cls_positions=list(item["cls_positions"]), n_sentences=len(item["cls_positions"]),
                                     n_tokens_full=len(item["input_ids"])) for item in items]
        return collate_documents(documents, pad_token_id=self.pad_token_id, labels=[item["labels"] for item in items],
                                 example_ids=[item["example_ids"] for item in items])


class TaggingDataset(torch.utils.data.Dataset):
    """Tagged sentences as word pieces, each word's tag on its first piece (-100 elsewhere), for
    ``AutoModelForTokenClassification`` and ``transformers.DataCollatorForTokenClassification``::

        train = TaggingDataset(load_tagged("conll2003_train.txt"), tokenizer, max_length=128)
        Trainer(model=..., train_dataset=train, data_collator=DataCollatorForTokenClassification(tokenizer),
                processing_class=tokenizer, callbacks=[T3visCallback(..., train_examples=train.sentences)])
    """

    def __init__(self, sentences: TaggedSentences, tokenizer: PreTrainedTokenizerBase, *, max_length: int = 512):
        self.sentences = sentences
        self.encoded: list[EncodedWords] = encode_words(tokenizer, sentences.words, max_length=max_length)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> dict:
        encoded = self.encoded[index]
        item = {"input_ids": encoded.input_ids, "attention_mask": [1] * len(encoded.input_ids),
                "labels": encoded.labels(self.sentences.tags[index])}
        if encoded.token_type_ids is not None:
            item["token_type_ids"] = encoded.token_type_ids
        return item
