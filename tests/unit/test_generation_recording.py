"""The generation task's recording on tiny random Llama and GPT-2 language models: a checkpoint's rows against the
library's own teacher-forced scores and greedy generation, the per-example and per-token training dynamics rows and
the Data Map for generation against hand computations, answers and ROUGE-L."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rouge_score import rouge_scorer

from t3vis.data.completions import encode_completions, generated_answer, load_completions
from t3vis.data.rouge import rouge_l
from t3vis.errors import ModelError
from t3vis.fixtures.generation_store import arithmetic_pairs, write_pairs
from t3vis.fixtures.tiny_models import save_tiny_language_model
from t3vis.model.access import load_model
from t3vis.model.language_models import completion_token_scores, greedy_generate_batch, load_language_model
from t3vis.record.generation import compute_generation_checkpoint, ingest_generation_checkpoint
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.task import RECORDING_TASKS, task_of_model
from t3vis.store.database import RunInfo, Store
from t3vis.store.generation_rows import completion_dynamics_rows
from t3vis.tasks import GENERATION

CONFIG = IngestConfig(projection="pca", importance_examples=4, attention_examples=4, batch_size=3, max_new_tokens=6,
                      max_length=48)


@pytest.fixture(scope="module", params=("llama", "gpt2"))
def bundle(request, tmp_path_factory):
    folder = save_tiny_language_model(tmp_path_factory.mktemp(f"lm-{request.param}") / "lm", request.param)
    return load_language_model(folder, device="cpu")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    rows = arithmetic_pairs(7, seed=4)
    rows[2]["answer"] = "a long answer " * 20 + "\n#### 5"  # cut at the token limit
    rows[5]["answer"] = "no final answer here"  # scored by ROUGE-L
    return load_completions(write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", rows))


def test_a_checkpoint_scores_every_kept_completion_token_as_the_library_does(bundle, pairs):
    record = compute_generation_checkpoint(bundle, pairs, run_id="r", checkpoint="c", config=CONFIG)
    encoded = encode_completions(bundle.tokenizer, pairs, max_length=48)
    expected = completion_token_scores(bundle, encoded.input_ids, encoded.labels)
    tokens = record.results.tables["unit_predictions"].to_pandas()
    assert len(tokens) == int(encoded.completion_lengths.sum()) == len(expected.token_id)
    np.testing.assert_allclose(tokens.gold_prob, np.exp(expected.log_probability), rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(tokens["rank"], expected.rank)
    np.testing.assert_array_equal(tokens.pred, expected.predicted_id)
    assert (tokens.correct == (tokens["rank"] == 1)).all()
    units = record.results.split_tables["units"].to_pandas()
    np.testing.assert_array_equal(units.label, expected.token_id)  # the units are the scored reference tokens
    assert units.kept.all() and (units.groupby("example_id").unit.max() + 1).tolist() == \
        encoded.completion_lengths.tolist()

    rows = record.results.tables["generations"].to_pandas()
    np.testing.assert_allclose(rows.loss, expected.loss, rtol=1e-5)
    np.testing.assert_allclose(rows.perplexity, np.exp(expected.loss), rtol=1e-4)
    np.testing.assert_allclose(rows.token_accuracy, expected.token_accuracy, rtol=1e-6)
    prompts = [ids[:start] for ids, start in zip(encoded.input_ids, encoded.prompt_lengths)]
    greedy = greedy_generate_batch(bundle, prompts, max_new_tokens=6)
    for row, ids in zip(rows.itertuples(), greedy):
        assert list(row.generated_ids) == [token for token in ids if token != 102]  # the EOS (stop) is dropped
        assert row.stopped == (ids[-1:] == [102])
    texts = bundle.tokenizer.batch_decode(list(rows.generated_ids), skip_special_tokens=True)
    assert rows.generation.tolist() == texts
    assert _values(rows.answer) == [generated_answer(text) for text in texts]
    assert _values(rows.reference_answer) == pairs.answers
    with_answer = rows.reference_answer.notna()
    assert (rows.exact_match[with_answer] == (rows.answer[with_answer] == rows.reference_answer[with_answer])).all()
    assert rows.exact_match.isna()[5] and rows.score[5] == pytest.approx(rows.rougeL[5])  # no final answer: ROUGE-L
    assert set(rows.score.drop(index=5).unique()) <= {0.0, 1.0}

    summary = record.summary
    metrics = record.checkpoint.metrics["validation"]
    assert summary.n_truncated == int(encoded.truncated.sum()) >= 1
    assert metrics["loss"] == pytest.approx(-expected.log_probability.mean())
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["loss"]))
    assert metrics["accuracy"] == pytest.approx(np.mean(expected.rank == 1))
    assert record.run.task == GENERATION and record.run.label_names == ()
    assert {"head_importance", "attention_patterns", "projections"} <= set(record.results.tables)


def _values(column) -> list:
    """A column's values with None for missing ones (pandas reads a NULL string as NaN)."""
    return [None if value is None or value != value else value for value in column]


def test_ingesting_writes_one_transaction_that_the_store_reads_back(bundle, pairs, tmp_path):
    store = Store(tmp_path / "g.duckdb", create=True)
    ingest_generation_checkpoint(store, bundle, pairs, run_id="r", checkpoint="c", config=CONFIG)
    assert store.run("r").task == GENERATION
    examples = store.query("SELECT text, reference, truncated FROM examples ORDER BY example_id")
    assert examples.text.tolist() == pairs.prompts and examples.reference.tolist() == pairs.completions
    assert examples.truncated.tolist()[2]
    assert store.scalar("SELECT count(*) FROM generations") == len(pairs)
    joined = store.scalar("""SELECT count(*) FROM unit_predictions p JOIN units u USING (run_id, split, example_id,
                             unit) WHERE p.correct = (p.pred = u.label)""")
    assert joined == store.scalar("SELECT count(*) FROM units")


def test_the_task_is_found_from_the_model_and_a_classifier_is_refused(bundle, tmp_path):
    assert task_of_model(bundle.model) is RECORDING_TASKS[GENERATION]
    classifier = load_model(save_tiny_language_model(tmp_path / "c", "llama"), num_labels=2, device="cpu")
    assert task_of_model(classifier.model).spec.name == "sequence-classification"
    with pytest.raises(ModelError, match="causal language model"):
        compute_generation_checkpoint(classifier, load_completions(write_pairs(tmp_path / "p.jsonl",
                                                                               arithmetic_pairs(2))),
                                      run_id="r", checkpoint="c", config=CONFIG)


def test_the_dynamics_rows_of_an_epoch_match_a_hand_computation():
    ids = np.array([3, 3, 3, 8, 8, 3])
    tokens = np.array([0, 1, 2, 0, 1, 0])  # example 3's token 0 is seen twice: the last observation counts
    token_ids = np.array([11, 12, 13, 21, 22, 11])
    log_probability = np.log([0.9, 0.5, 0.2, 0.6, 0.3, 0.4])
    rank = np.array([1, 1, 4, 1, 2, 2])
    predicted = np.array([11, 12, 99, 21, 7, 5])
    examples, token_rows = completion_dynamics_rows(ids, tokens, token_ids, log_probability, rank, predicted)
    token_frame = token_rows.to_pandas().sort_values(["example_id", "token"])
    assert token_frame[["example_id", "token"]].values.tolist() == [[3, 0], [3, 1], [3, 2], [8, 0], [8, 1]]
    np.testing.assert_allclose(token_frame.gold_prob, [0.4, 0.5, 0.2, 0.6, 0.3], rtol=1e-6)
    assert token_frame.correct.tolist() == [False, True, False, True, False]
    frame = examples.to_pandas().set_index("example_id")
    np.testing.assert_allclose(frame.gold_prob[3], (0.4 * 0.5 * 0.2) ** (1 / 3), rtol=1e-6)  # geometric mean
    np.testing.assert_allclose(frame.loss[8], -(np.log(0.6) + np.log(0.3)) / 2, rtol=1e-6)
    assert frame.pred.tolist() == [1, 1] and frame.correct.tolist() == [False, False]
    np.testing.assert_allclose(frame.token_accuracy, [1 / 3, 1 / 2], rtol=1e-6)


def test_the_data_map_of_generation_averages_the_epochs_geometric_means_and_token_accuracies(tmp_path):
    store = Store(tmp_path / "d.duckdb", create=True)
    run = RunInfo(run_id="g", model="m", label_names=(), num_layers=2, num_heads=4, max_length=64, task=GENERATION)
    epochs = [np.log([[0.9, 0.8], [0.1, 0.5]]), np.log([[0.7, 0.9], [0.4, 0.2]])]  # (examples, tokens) per epoch
    right = [[[1, 1], [0, 1]], [[1, 0], [0, 0]]]
    for epoch, (log_probability, correct) in enumerate(zip(epochs, right)):
        ids, tokens = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
        predicted = np.where(np.ravel(correct), 5, 6)
        rows, token_rows = completion_dynamics_rows(ids, tokens, np.full(4, 5), log_probability.ravel(),
                                                    np.where(np.ravel(correct), 1, 2), predicted)
        store.write_training_dynamics(run, "train", epoch, rows, token_rows)
    data_map = store.query("SELECT * FROM data_map ORDER BY example_id")
    geometric = np.exp(np.stack([epoch.mean(1) for epoch in epochs]))  # (epochs, examples)
    np.testing.assert_allclose(data_map.confidence, geometric.mean(0), rtol=1e-5)
    np.testing.assert_allclose(data_map.variability, geometric.std(0), rtol=1e-4)
    np.testing.assert_allclose(data_map.correctness, np.mean(right, axis=2).mean(0), rtol=1e-6)
    assert store.scalar("SELECT count(*) FROM token_dynamics") == 8


@pytest.mark.parametrize("text, answer", [("so 3 + 4 = 7\n#### 7", "7"), ("The answer is 1,200.", "1200"),
                                          ("#### 12\nmore text 99", "12"), ("no number", None)])
def test_a_generation_answer_is_after_the_marker_else_its_last_number(text, answer):
    assert generated_answer(text) == answer


def test_rouge_l_equals_rouge_score_on_gsm8k_style_texts():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rows = arithmetic_pairs(6, seed=9)
    for row, other in zip(rows, rows[1:] + rows[:1]):
        candidate, reference = row["answer"] + " running totals", other["answer"]
        assert rouge_l(candidate, reference) == pytest.approx(scorer.score(reference, candidate)["rougeL"].fmeasure)
    assert json.dumps(rouge_l("", "x")) == "0.0"
