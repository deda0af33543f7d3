"""T3visCallback on a BertSum-style summarizer trained by transformers.Trainer: per-sentence dynamics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Trainer, TrainingArguments

from t3vis.data.documents import make_documents
from t3vis.model.pretrained import minilm_path
from t3vis.model.summarizer import ExtractiveSummarizer, ExtractiveSummarizerConfig, collate_documents
from t3vis.fixtures.tiny_models import tiny_config
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest import IngestConfig
from t3vis.record.trainer_data import SummarizationCollator, SummarizationDataset
from t3vis.store.database import Store

ARTICLES = [
    "The council met on Monday. It approved the new budget. Critics called it reckless. The vote was close.",
    "Rain is expected tomorrow. Rivers may flood. Residents should prepare sandbags.",
    "The team won the final. Fans celebrated in the streets. The coach praised the defence. Tickets sold out.",
    "A new vaccine was approved. Doctors welcomed the news. Supplies will arrive in May.",
    "Shares fell sharply. The bank reported losses. Investors were worried about debt.",
    "Scientists found water on the planet. The probe sent images. The mission will continue.",
]
SUMMARIES = ["The council approved the budget .", "Rivers may flood .", "The team won the final .",
             "A vaccine was approved .", "The bank reported losses .", "Scientists found water ."]


def _train(tmp_path, *, learning_rate: float, epochs: int = 2):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    documents = make_documents(ARTICLES, SUMMARIES, example_ids=np.arange(100, 100 + len(ARTICLES)))
    torch.manual_seed(0)
    encoder = tiny_config("bert", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).to_dict()
    model = ExtractiveSummarizer(ExtractiveSummarizerConfig(encoder=encoder, scorer_dropout=0.0))
    store = Store(tmp_path / "s.duckdb", create=True)
    callback = T3visCallback(store, run_id="bertsum", eval_examples=documents, train_examples=documents,
                             ingest_config=IngestConfig(projection="pca", importance_examples=4, batch_size=4),
                             checkpoint_dir=tmp_path / "weights")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=epochs, per_device_train_batch_size=4,
                             learning_rate=learning_rate, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=SummarizationDataset(documents, tokenizer, max_length=64),
                      data_collator=SummarizationCollator(tokenizer), processing_class=tokenizer,
                      callbacks=[callback])
    trainer.train()
    callback.flush(60)
    return store, callback, model, documents, tokenizer


def test_per_sentence_dynamics_come_from_the_training_passes(tmp_path):
    # learning rate 0 and no dropout: each training pass gives exactly the eval-mode scores
    store, callback, model, documents, tokenizer = _train(tmp_path, learning_rate=0.0)
    assert callback.problems == []
    dynamics = store.query("SELECT example_id, unit, epoch, gold_prob, correct FROM training_dynamics "
                           "ORDER BY epoch, example_id, unit")
    dataset = SummarizationDataset(documents, tokenizer, max_length=64)
    kept = sum(document.n_kept for document in dataset.encoded)
    assert len(dynamics) == 2 * kept  # every kept sentence of every document, once per epoch
    assert sorted(dynamics.example_id.unique()) == list(range(100, 106))
    model.eval()
    with torch.no_grad():
        batch = collate_documents(dataset.encoded, pad_token_id=0)
        probs = torch.sigmoid(model(**batch).logits).numpy()  # (N, S)
    expected = []
    for row, (document, labels) in enumerate(zip(dataset.encoded, documents.oracle)):
        for unit in range(document.n_kept):
            expected.append(probs[row, unit] if labels[unit] == 1 else 1 - probs[row, unit])
    first_epoch = dynamics[dynamics.epoch == 0].gold_prob.to_numpy()
    np.testing.assert_allclose(first_epoch, np.array(expected), atol=1e-5)
    data_map = store.query("SELECT * FROM data_map")
    assert len(data_map) == kept and set(data_map.columns) >= {"unit", "confidence", "variability", "region"}
    # the training documents and their sentences are in the store, and the checkpoints over the eval split
    assert store.scalar("SELECT count(*) FROM units WHERE split = 'train'") == sum(map(len, documents.sentences))
    checkpoints = store.checkpoints("bertsum")
    assert checkpoints.checkpoint.tolist() == ["epoch-1", "epoch-2"]
    assert store.scalar("SELECT count(DISTINCT checkpoint) FROM document_scores") == 2
    assert store.run("bertsum").task == "extractive-summarization"


def test_a_learning_summarizer_moves_its_sentence_probabilities(tmp_path):
    store, callback, *_ = _train(tmp_path, learning_rate=5e-3, epochs=3)
    assert callback.problems == []
    by_epoch = store.query("SELECT epoch, avg(loss) AS loss FROM training_dynamics GROUP BY epoch ORDER BY epoch")
    assert by_epoch.loss.iloc[-1] < by_epoch.loss.iloc[0]  # training on the oracle labels lowers their loss
    loaded = store.query("SELECT path FROM checkpoints ORDER BY step").path.tolist()
    assert all(path and "weights" in path for path in loaded)
