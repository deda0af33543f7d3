"""The task seam: every task has a spec, a recording implementation and frames, and each layer finds them by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
from types import SimpleNamespace

from t3vis.errors import ModelError
from t3vis.fixtures.tiny_models import tiny_config
from t3vis.model.summarizer import ExtractiveSummarizer, ExtractiveSummarizerConfig
from t3vis.queries.explore import TASK_FRAMES
from t3vis.record.classification_task import ExampleCapture, TokenIndex
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.record.summarization_task import SentenceCapture
from t3vis.record.task import RECORDING_TASKS, RecordingTask, TrainingCapture, recording_task, task_of_model
from t3vis.store.database import RunInfo, Store
from t3vis.tasks import (EXTRACTIVE_SUMMARIZATION, GENERATION, SEQUENCE_CLASSIFICATION, SIGMOID, SOFTMAX, TASKS,
                         TOKEN_CLASSIFICATION, task_spec)


def test_every_task_is_implemented_on_every_side_of_the_seam():
    assert set(TASKS) == set(RECORDING_TASKS) == set(TASK_FRAMES) == {SEQUENCE_CLASSIFICATION, EXTRACTIVE_SUMMARIZATION,
                                                                       TOKEN_CLASSIFICATION, GENERATION}
    for name, task in RECORDING_TASKS.items():
        assert isinstance(task, RecordingTask)
        assert task.spec is task_spec(name)


def test_every_task_has_an_app_side_that_implements_every_method():
    from t3vis_app.tasks import APP_TASKS, app_task
    from t3vis_app.tasks.base import AppTask

    assert set(APP_TASKS) == set(TASKS)
    methods = [name for name, value in vars(AppTask).items() if callable(value) and not name.startswith("_")]
    assert len(methods) >= 10  # the protocol's own methods, as a test that reads them would see them
    for name, task in APP_TASKS.items():
        assert isinstance(task, AppTask) and task.spec is task_spec(name)
        missing = [method for method in methods if getattr(type(task), method, None) is getattr(AppTask, method)
                   or not callable(getattr(task, method, None))]
        assert missing == [], f"{name} does not implement {missing}"
        assert set(task.data_map_points) <= {"examples", "units", "spans"} and task.evaluation_help
        assert all(query.task in (None, name) for query in task.example_queries())
    assert app_task(None) is APP_TASKS[SEQUENCE_CLASSIFICATION]  # a store from before tasks


def test_specs_say_what_a_unit_is_and_how_its_logits_become_probabilities():
    classification, summarization = task_spec(SEQUENCE_CLASSIFICATION), task_spec(EXTRACTIVE_SUMMARIZATION)
    assert (classification.unit, classification.output, classification.per_unit_tables) == ("example", SOFTMAX, False)
    assert (summarization.unit, summarization.output, summarization.per_unit_tables) == ("sentence", SIGMOID, True)
    assert summarization.data_map_point == "sentence" and "rouge1" in summarization.metrics
    assert task_spec(None) is classification  # a store from before tasks
    with pytest.raises(ValueError, match="extractive-summarization"):
        task_spec("translation")
    with pytest.raises(ModelError, match="sequence-classification"):
        recording_task("translation")


def test_the_task_of_a_trainers_model_is_found_from_the_model():
    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_config(tiny_config("bert"))
    summarizer = ExtractiveSummarizer(ExtractiveSummarizerConfig(encoder=tiny_config("bert").to_dict()))
    tagger = AutoModelForTokenClassification.from_config(tiny_config("bert"))
    assert task_of_model(tagger).spec.name == TOKEN_CLASSIFICATION
    assert task_of_model(classifier).spec.name == SEQUENCE_CLASSIFICATION
    assert task_of_model(summarizer).spec.name == EXTRACTIVE_SUMMARIZATION
    assert task_of_model(summarizer).encoder(summarizer) is summarizer.encoder
    assert task_of_model(classifier).encoder(classifier) is classifier


def _recorder(tmp_path) -> DynamicsRecorder:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "s.duckdb", create=True)
    return DynamicsRecorder(store, RunInfo(run_id="r", model="m", label_names=("a", "b"), num_layers=1,
                                           num_heads=1, max_length=8))


def test_an_example_capture_logs_each_kept_row_under_the_example_its_tokens_identify(tmp_path):
    index = TokenIndex([[5, 6, 7], [8, 9]], np.array([0, 1]), np.array([1, 0]))
    capture = ExampleCapture(index)
    assert isinstance(capture, TrainingCapture)
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0]])  # (B=2, K=2): rows in shuffled order
    capture.keep({"input_ids": torch.tensor([[8, 9, 0], [5, 6, 7]]),
                  "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}, SimpleNamespace(logits=logits))
    capture.keep({"input_ids": None}, SimpleNamespace(logits=logits))  # nothing to identify: not kept
    assert capture.pending == 1
    recorder = _recorder(tmp_path)
    assert capture.flush(recorder) == [] and capture.pending == 0
    recorder.end_epoch()
    rows = recorder.store.query("SELECT example_id, pred, gold_prob FROM training_dynamics ORDER BY example_id")
    assert rows.example_id.tolist() == [0, 1] and rows.pred.tolist() == [0, 1]
    expected = [torch.softmax(logits[1], -1)[1].item(), torch.softmax(logits[0], -1)[0].item()]
    np.testing.assert_allclose(rows.gold_prob, expected, rtol=1e-6)


def test_a_sentence_capture_logs_one_row_per_real_sentence(tmp_path):
    capture = SentenceCapture()
    assert isinstance(capture, TrainingCapture)
    scores = torch.tensor([[1.0, -1.0, 0.0], [0.5, 0.0, 0.0]])  # (B=2, S=3) sentence logits
    capture.keep({"example_ids": torch.tensor([7, 3]), "labels": torch.tensor([[1, 0, 0], [0, 0, 0]]),
                  "sentence_mask": torch.tensor([[1, 1, 0], [1, 0, 0]])}, SimpleNamespace(logits=scores))
    capture.keep({"example_ids": torch.tensor([1])}, SimpleNamespace(logits=scores))  # no labels: not kept
    recorder = _recorder(tmp_path)
    capture.flush(recorder)
    recorder.end_epoch()
    rows = recorder.store.query("SELECT example_id, unit, correct, gold_prob FROM training_dynamics "
                                "ORDER BY example_id, unit")
    assert list(zip(rows.example_id, rows.unit, rows.correct)) == [(3, 0, False), (7, 0, True), (7, 1, True)]
    np.testing.assert_allclose(rows.gold_prob, [1 - torch.sigmoid(torch.tensor(0.5)).item(),
                                                torch.sigmoid(torch.tensor(1.0)).item(),
                                                1 - torch.sigmoid(torch.tensor(-1.0)).item()], rtol=1e-6)


def test_a_word_capture_keeps_only_the_tagged_positions_and_needs_no_labels_in_the_call(tmp_path):
    from t3vis.record.tagging_task import WordCapture

    # two training sentences: tokens and their labels (a tag at each word's first piece, -100 elsewhere)
    items = [[101, 7, 8, 9, 102], [101, 5, 102]]
    labels = [[-100, 2, -100, 0, -100], [-100, 1, -100]]
    index = TokenIndex(items, np.arange(2), np.zeros(2, dtype=np.int64))
    input_ids = torch.tensor([[101, 5, 102, 0, 0], [101, 7, 8, 9, 102]])  # shuffled, padded
    mask = (input_ids != 0).long()
    logits = torch.randn(2, 5, 3)  # (B, T, K)
    recorded = []
    for with_labels in (True, False):
        capture = WordCapture(index, labels)
        call = {"input_ids": input_ids, "attention_mask": mask}
        if with_labels:
            call["labels"] = torch.tensor([[-100, 1, -100, -100, -100], [-100, 2, -100, 0, -100]])
        capture.keep(call, SimpleNamespace(logits=logits))
        recorder = _recorder(tmp_path / ("a" if with_labels else "b"))
        assert capture.flush(recorder) == []
        recorder.end_epoch()
        recorded.append(recorder.store.query("SELECT example_id, unit, gold_prob, pred FROM training_dynamics "
                                             "ORDER BY example_id, unit"))
    for rows in recorded:
        assert list(zip(rows.example_id, rows.unit)) == [(0, 0), (0, 1), (1, 0)]
        expected = [torch.softmax(logits[1, 1], -1)[2], torch.softmax(logits[1, 3], -1)[0],
                    torch.softmax(logits[0, 1], -1)[1]]
        np.testing.assert_allclose(rows.gold_prob, [float(value) for value in expected], rtol=1e-6)
