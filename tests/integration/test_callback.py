"""The Trainer callback and the recorder: dynamics from the training passes, keyed by example id."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from t3vis.store.background_writer import RecordingWarning
from t3vis.record.callback import T3visCallback
from t3vis.data.loading import load_examples
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.store.rows import dynamics_rows
from t3vis.record.ingest import IngestConfig
from t3vis.store.database import RunInfo, Store

TOPICS = {0: "match goal team coach league", 1: "shares bank market profit merger", 2: "planet genome theory lab"}


class TokenDataset(torch.utils.data.Dataset):
    """Tokenised examples; ``idx`` is carried along for the reference recording only."""

    def __init__(self, tokenizer, texts, labels, with_idx: bool):
        self.items = [dict(tokenizer(text), labels=label) for text, label in zip(texts, labels)]
        for index, item in enumerate(self.items):
            if with_idx:
                item["idx"] = index

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def collate(tokenizer):
    def run(features):
        extra = {key: torch.tensor([f[key] for f in features]) for key in ("labels", "idx") if key in features[0]}
        tokens = tokenizer.pad([{k: v for k, v in f.items() if k not in extra} for f in features],
                               return_tensors="pt")
        return {**tokens, **extra}
    return run


class ReferenceTrainer(Trainer):
    """Records (idx, logits) of every training forward pass by itself, to check the callback against."""

    seen: list

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        idx = inputs.pop("idx")
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            self.seen.append((None, idx.clone(), outputs.logits.detach().clone(), inputs["labels"].clone()))
        return (loss, outputs) if return_outputs else loss


def _texts(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    words = {label: text.split() for label, text in TOPICS.items()}
    texts = [" ".join(rng.choice(words[label], size=rng.integers(2, 7))) for label in labels]
    texts[5] = texts[6] = "duplicate text here"  # identical token sequences take their ids in turn
    labels[5] = labels[6] = 1
    return texts, labels.tolist()


@pytest.mark.parametrize("workers, accumulation", [(0, 1), (2, 3)])
def test_recorded_dynamics_equal_a_separate_recording_of_the_same_logits(tmp_path, tiny_model_dir, workers,
                                                                         accumulation):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    texts, labels = _texts(40)
    store = Store(tmp_path / "dyn.duckdb", create=True)
    callback = T3visCallback(store, run_id="tiny", label_names=["a", "b", "c"])
    trainer = ReferenceTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=3, per_device_train_batch_size=4,
                               gradient_accumulation_steps=accumulation, dataloader_num_workers=workers,
                               learning_rate=1e-3, save_strategy="no", report_to=[], logging_strategy="no",
                               use_cpu=True, seed=0, remove_unused_columns=False),
        train_dataset=TokenDataset(tokenizer, texts, labels, with_idx=True),
        data_collator=collate(tokenizer),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.seen = []
    trainer.train()
    stored = store.query("SELECT * FROM training_dynamics ORDER BY epoch, example_id")
    assert len(stored) == 3 * 40
    for epoch in range(3):
        batches_per_epoch = 10  # 40 examples in batches of 4
        rows = trainer.seen[epoch * batches_per_epoch : (epoch + 1) * batches_per_epoch]
        ids = torch.cat([entry[1] for entry in rows]).numpy()
        logits = torch.cat([entry[2] for entry in rows]).double()
        gold = torch.cat([entry[3] for entry in rows])
        order = np.argsort(ids)
        assert ids[order].tolist() == list(range(40)), "every example is seen once per epoch"
        probs = torch.softmax(logits, -1)[torch.arange(len(gold)), gold].numpy()[order]
        mine = stored[stored.epoch == epoch].sort_values("example_id")
        duplicates = {5, 6}
        keep = ~np.isin(np.arange(40), list(duplicates))
        np.testing.assert_allclose(mine.gold_prob.to_numpy()[keep], probs[keep], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(mine.correct.to_numpy()[keep], (logits.argmax(1) == gold).numpy()[order][keep])
        # the two identical texts got the two observations of that text, whichever way round
        assert sorted(mine.gold_prob.to_numpy()[[5, 6]]) == pytest.approx(sorted(probs[[5, 6]]), rel=1e-5)
    assert callback._hook is None, "the forward hook is removed when training ends"


def _reference_gold_probs(seen, epoch: int, n: int) -> np.ndarray:
    """(N,) gold-label probability of each example id in one epoch, from the reference recording."""
    rows = [entry for entry in seen if entry[0] == epoch]
    ids = torch.cat([entry[1] for entry in rows]).numpy()
    logits = torch.cat([entry[2] for entry in rows]).double()
    gold = torch.cat([entry[3] for entry in rows])
    probs = torch.softmax(logits, -1)[torch.arange(len(gold)), gold].numpy()
    result = np.full(n, np.nan)
    result[ids] = probs
    return result


class EpochReferenceTrainer(ReferenceTrainer):
    """ReferenceTrainer that tags each observation with its epoch and keeps the labels when the label smoother
    takes them out of the model call."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        idx, labels = inputs.pop("idx"), inputs["labels"].clone()
        loss, outputs = Trainer.compute_loss(self, model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        if model.training:
            self.seen.append((int(self.state.epoch), idx.clone(), outputs.logits.detach().clone(), labels))
        return (loss, outputs) if return_outputs else loss


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_duplicate_texts_with_different_labels_keep_their_ids_and_label_smoothing_records(
        tmp_path, tiny_model_dir, label_smoothing):
    """Rows are matched on tokens and label; with label smoothing the model call carries no labels, and the
    labels come from the dataset items."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    texts, labels = _texts(24, seed=3)
    texts[10] = texts[11] = "the same words with two labels"
    labels[10], labels[11] = 0, 2
    store = Store(tmp_path / "dup.duckdb", create=True)
    callback = T3visCallback(store, run_id="dup", label_names=["a", "b", "c"])
    trainer = EpochReferenceTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
                               learning_rate=1e-3, save_strategy="no", report_to=[], logging_strategy="no",
                               use_cpu=True, seed=1, remove_unused_columns=False,
                               label_smoothing_factor=label_smoothing),
        train_dataset=TokenDataset(tokenizer, texts, labels, with_idx=True),
        data_collator=collate(tokenizer),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecordingWarning)  # nothing may be left unrecorded
        trainer.train()
    stored = store.query("SELECT * FROM training_dynamics ORDER BY epoch, example_id")
    assert len(stored) == 2 * 24
    for epoch in range(2):
        expected = _reference_gold_probs(trainer.seen, epoch, 24)
        mine = stored[stored.epoch == epoch].sort_values("example_id").gold_prob.to_numpy()
        same = [5, 6]  # identical texts with the same label take their ids in turn: compare them as a pair
        # With label smoothing the model call carries no labels, so identical texts with different labels are
        # told apart by neither tokens nor label: they too take their ids in turn (a documented limitation).
        conflicting = [10, 11] if label_smoothing else []
        others = np.setdiff1d(np.arange(24), same + conflicting)
        np.testing.assert_allclose(mine[others], expected[others], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sorted(mine[same]), sorted(expected[same]), rtol=1e-5)


def test_an_epoch_with_nothing_recorded_warns(tmp_path, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    texts, labels = _texts(8)
    loader = torch.utils.data.DataLoader(TokenDataset(tokenizer, texts, labels, with_idx=False))
    callback = T3visCallback(Store(tmp_path / "empty.duckdb", create=True), run_id="empty")
    callback.on_train_begin(None, None, None, model=model, processing_class=tokenizer, train_dataloader=loader)
    with pytest.warns(RecordingWarning, match="no training dynamics in epoch 0"):
        callback.on_epoch_end(None, None, None, model=model)  # no training forward pass happened
    callback.on_train_end(None, None, None)
    assert callback._hook is None


def test_a_bad_setup_warns_and_training_goes_on(tmp_path, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    texts, labels = _texts(8)
    callback = T3visCallback(Store(tmp_path / "bad.duckdb", create=True), run_id="bad")
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1, per_device_train_batch_size=4,
                               save_strategy="no", report_to=[], use_cpu=True),
        train_dataset=TokenDataset(tokenizer, texts, labels, with_idx=False),
        data_collator=collate(tokenizer),
        callbacks=[callback],  # no processing_class: the callback cannot tokenise
    )
    with pytest.warns(RecordingWarning, match="needs the tokenizer.*goes on without t3vis recording"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert not (tmp_path / "bad.duckdb").exists()


def test_callback_ingests_a_checkpoint_per_epoch_and_writes_train_examples(tmp_path, tiny_model_dir, topic_csv):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    examples = load_examples(topic_csv)
    store = Store(tmp_path / "cb.duckdb", create=True)
    callback = T3visCallback(store, run_id="cb", eval_examples=examples, train_examples=examples,
                             ingest_config=IngestConfig(projection="pca", importance_examples=8))
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
                               save_strategy="no", report_to=[], use_cpu=True),
        train_dataset=TokenDataset(tokenizer, examples.texts, examples.labels.tolist(), with_idx=False),
        data_collator=collate(tokenizer),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    assert model.training, "the callback restores the training mode after ingesting"
    assert model.config._attn_implementation != "t3vis"
    checkpoints = store.checkpoints("cb")
    assert checkpoints.checkpoint.tolist() == ["epoch-1", "epoch-2"]  # named after epochs completed
    assert checkpoints.epoch.tolist() == [1.0, 2.0]
    assert checkpoints.step.tolist() == sorted(checkpoints.step.tolist()) and checkpoints.step.iloc[0] > 0
    assert store.scalar("SELECT count(*) FROM predictions") == 2 * len(examples)
    assert store.scalar("SELECT count(*) FROM examples WHERE split = 'train'") == len(examples)
    assert store.run("cb").label_names == tuple(examples.label_names)
    data_map = store.query("SELECT d.*, e.text FROM data_map d JOIN examples e USING (run_id, split, example_id)")
    assert len(data_map) == len(examples) and (data_map.n_epochs == 2).all()


def test_a_mixed_precision_run_records_its_checkpoints_in_the_weights_precision(tmp_path, tiny_model_dir, topic_csv):
    """bf16=True (on the CPU here; fp16/bf16 on a GPU alike): accelerate runs model.forward under autocast, but the
    ingested checkpoint is the fp32 weights' own, as `t3vis ingest` of the saved folder or the app would compute it."""
    from t3vis.model.access import load_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    examples = load_examples(topic_csv)
    store = Store(tmp_path / "bf16.duckdb", create=True)
    callback = T3visCallback(store, run_id="bf16", eval_examples=examples, checkpoint_dir=tmp_path / "weights",
                             ingest_config=IngestConfig(projection="pca", importance_examples=8))
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1, per_device_train_batch_size=4,
                               save_strategy="no", report_to=[], use_cpu=True, bf16=True),
        train_dataset=TokenDataset(tokenizer, examples.texts, examples.labels.tolist(), with_idx=False),
        data_collator=collate(tokenizer), processing_class=tokenizer, callbacks=[callback],
    )
    trainer.train()
    callback.flush(60)
    assert callback.problems == []
    assert "_original_forward" in model.__dict__ and model.forward != model._original_forward, \
        "the Trainer's mixed-precision forward is put back after ingesting"
    saved = load_model(tmp_path / "weights" / "epoch-1", device="cpu")
    inputs = saved.tokenizer(examples.texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = saved.model(**inputs).logits.numpy()
    stored = np.stack(store.query("SELECT logits FROM predictions ORDER BY example_id").logits)
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6)  # under bf16 autocast they differ by ~1e-4


def test_recorder_for_a_plain_loop(tmp_path):
    store = Store(tmp_path / "loop.duckdb", create=True)
    run = RunInfo(run_id="loop", model="m", label_names=("a", "b"), num_layers=1, num_heads=1, max_length=8)
    recorder = DynamicsRecorder(store, run)
    recorder.log_batch(torch.tensor([3, 1]), torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    recorder.log_batch([2], np.array([[0.0, 1.0]]), [1])
    assert recorder.end_epoch() == 3
    rows = store.query("SELECT * FROM training_dynamics ORDER BY example_id")
    assert rows.example_id.tolist() == [1, 2, 3] and (rows.epoch == 0).all()
    np.testing.assert_allclose(rows.gold_prob, [1 / (1 + np.e), 1 / (1 + np.exp(-1)), 1 / (1 + np.exp(-2))], rtol=1e-6)
    assert rows.correct.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="labels must lie"):
        recorder.log_batch([1], [[0.0, 1.0]], [2])


def test_repeated_ids_keep_the_last_observation():
    rows = dynamics_rows(np.array([7, 8, 7]), np.array([[0.0, 5.0], [1.0, 0.0], [5.0, 0.0]]), np.array([0, 0, 0]))
    assert rows.column("example_id").to_pylist() == [8, 7]
    assert rows.column("correct").to_pylist() == [True, True]
