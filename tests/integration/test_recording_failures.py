"""Everything that could not be recorded is listed in ``callback.problems``, writes that failed on the writer's
thread included; a demo build whose recording had problems fails and puts nothing in place."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from t3vis.data.loading import load_examples
from t3vis.errors import StoreError
from t3vis.record.callback import T3visCallback
from t3vis.store.background_writer import BackgroundWriter, RecordingWarning
from t3vis.store.database import Store


class _Tokenised(torch.utils.data.Dataset):
    def __init__(self, tokenizer, examples):
        self.items = [dict(tokenizer(text), labels=int(label)) for text, label in zip(examples.texts, examples.labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_a_write_that_fails_on_the_writers_thread_is_listed_in_problems(tmp_path, tiny_model_dir, topic_csv,
                                                                       monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    examples = load_examples(topic_csv)
    store = Store(tmp_path / "full.duckdb", create=True)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_training_dynamics", disk_full)
    callback = T3visCallback(store, run_id="full", train_examples=examples)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
                               save_strategy="no", report_to=[], use_cpu=True),
        train_dataset=_Tokenised(tokenizer, examples),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    with pytest.warns(RecordingWarning, match="No space left on device"):
        trainer.train()
    assert callback.writer.failures and callback.problems == callback.writer.failures
    assert [problem for problem in callback.problems if "training dynamics of epoch" in problem
            and "No space left on device" in problem] == callback.problems and len(callback.problems) == 2


def test_the_writer_reports_each_failure_once_from_its_thread():
    reported: list[tuple[str, str]] = []
    writer = BackgroundWriter(on_failure=lambda message: reported.append((threading.current_thread().name, message)))
    writer.submit("a row", lambda: 1 / 0)
    writer.submit("another row", lambda: None)
    assert writer.flush(10)
    assert reported == [("t3vis-writer", "t3vis could not record a row: division by zero")]
    assert writer.failures == [message for _, message in reported] and writer.written == 1


def test_a_demo_whose_recording_had_problems_fails_and_puts_nothing_in_place(tmp_path, monkeypatch):
    from t3vis.demo import build

    def recording_with_a_failed_write(store, weights_dir, *args):
        weights_dir.mkdir(parents=True)
        return ["t3vis could not record checkpoint epoch-1: No space left on device"]

    monkeypatch.setattr(build, "_train", recording_with_a_failed_write)
    with pytest.raises(StoreError, match="recording was incomplete.*epoch-1: No space left on device"):
        build.build_demo(tmp_path / "demo.duckdb")
    assert list(tmp_path.iterdir()) == []
