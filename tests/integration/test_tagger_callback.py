"""T3visCallback on a token classifier trained by transformers.Trainer: per-word dynamics from the training passes."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, Trainer,
                          TrainingArguments)

from helpers import SHARED_DATA
from t3vis.data.tagging import load_tagged
from t3vis.fixtures.tiny_models import save_tiny_tagger
from t3vis.model.word_encoding import IGNORED
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest import IngestConfig
from t3vis.record.trainer_data import TaggingDataset
from t3vis.store.database import Store

CONLL = SHARED_DATA / "conll2003_valid.txt"
pytestmark = pytest.mark.skipif(not CONLL.exists(), reason=f"{CONLL} is not here (the shared CoNLL-2003 data)")


class ReferenceTrainer(Trainer):
    """Keeps (input_ids, logits, labels) of every training forward pass by itself, to check the callback against."""

    seen: list

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            self.seen.append((int(self.state.epoch), inputs["input_ids"].clone(), outputs.logits.detach().clone(),
                              inputs["labels"].clone()))
        return (loss, outputs) if return_outputs else loss


def test_per_word_dynamics_equal_a_reference_recording_of_the_same_passes(tmp_path):
    sentences = load_tagged(CONLL, limit=24)
    folder = save_tiny_tagger(tmp_path / "tagger", sentences.tag_names, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder)
    train = TaggingDataset(sentences, tokenizer, max_length=64)
    evaluation = load_tagged(CONLL, limit=12)
    store = Store(tmp_path / "s.duckdb", create=True)
    callback = T3visCallback(store, run_id="ner", eval_examples=evaluation, train_examples=sentences,
                             ingest_config=IngestConfig(projection="pca", importance_examples=4, batch_size=4))
    trainer = ReferenceTrainer(
        model=model, processing_class=tokenizer, train_dataset=train,
        data_collator=DataCollatorForTokenClassification(tokenizer), callbacks=[callback],
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
                               learning_rate=5e-3, save_strategy="no", report_to=[], logging_strategy="no",
                               use_cpu=True, seed=0),
    )
    trainer.seen = []
    trainer.train()
    assert callback.problems == []

    # By hand: each seen row's sentence (by its tokens), each word's gold-tag probability at its first piece.
    # Identical sentences (CoNLL has repeated datelines) are compared as a group: they take their ids in turn.
    tokens_of = {index: tuple(item["input_ids"]) for index, item in enumerate(train)}
    expected = defaultdict(list)
    for epoch, input_ids, logits, labels in trainer.seen:
        probs = torch.softmax(logits.double(), -1)  # (B, T, K)
        for row in range(len(input_ids)):
            tokens = tuple(t for t in input_ids[row].tolist() if t != tokenizer.pad_token_id)
            positions = torch.nonzero(labels[row] != IGNORED).flatten()
            for word, position in enumerate(positions.tolist()):
                tag = int(labels[row, position])
                expected[(epoch, tokens, word)].append((float(probs[row, position, tag]),
                                                        int(probs[row, position].argmax()) == tag))
    stored = store.query("SELECT epoch, example_id, unit, gold_prob, correct FROM training_dynamics "
                         "ORDER BY epoch, example_id, unit")
    n_words = sum(len(words) for words in sentences.words)
    assert len(stored) == sum(len(values) for values in expected.values()) == 2 * n_words  # every word, both epochs
    got = defaultdict(list)
    for r in stored.itertuples():
        got[(int(r.epoch), tokens_of[int(r.example_id)], int(r.unit))].append((float(r.gold_prob), bool(r.correct)))
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        mine = sorted(got[key])
        np.testing.assert_allclose([v[0] for v in mine], [v[0] for v in sorted(values)], rtol=1e-5, atol=1e-6)
        assert [v[1] for v in mine] == [v[1] for v in sorted(values)]

    # The training words are in the store (the Data Map's points) with their gold tags.
    words = store.query("SELECT example_id, unit, text, label FROM units WHERE split = 'train' ORDER BY 1, 2")
    assert words.text.tolist() == [word for row in sentences.words for word in row]
    assert words.label.tolist() == [int(tag) for row in sentences.tags for tag in row]
    data_map = store.query("SELECT count(*) AS n, min(n_epochs) AS epochs FROM data_map WHERE split = 'train'")
    assert (data_map.n[0], data_map.epochs[0]) == (n_words, 2)

    # Each epoch's checkpoint over the evaluation sentences: words, entity scores, layouts.
    metrics = store.query("SELECT metrics->'validation' AS m FROM checkpoints ORDER BY step").m.tolist()
    assert len(metrics) == 2 and all('"f1"' in m and '"per_type"' in m for m in metrics)
    assert store.scalar("SELECT count(DISTINCT checkpoint) FROM unit_predictions") == 2
    assert store.scalar("SELECT count(*) FROM unit_predictions WHERE checkpoint = 'epoch-2'") == \
        sum(len(words) for words in evaluation.words)
