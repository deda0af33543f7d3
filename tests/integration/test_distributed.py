"""Recording and ingestion under torchrun: two CPU processes (gloo) write what one process writes.

Each test launches real processes with ``python -m torch.distributed.run --nproc_per_node=2`` (what
``torchrun`` runs) and compares the store they write with a single-process run in the same test, for
each task: sequence classification, extractive summarization, token classification.
The tiny random BERT has no dropout, so a training forward pass equals an evaluation forward pass.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distributed_training import N_TRAIN, TOPICS, train, train_tagger, training_texts
from helpers import PROJECT, write_topic_csv
from page_helpers import assert_live_views
from t3vis.record.distributed import Shard
from t3vis.store.database import Store

# Checkpoint tables, and the columns that key their rows.
CHECKPOINT_TABLES = {
    "predictions": ["checkpoint", "example_id"],
    "projections": ["checkpoint", "layer", "example_id"],
    "head_importance": ["checkpoint", "layer", "head"],
    "attention_patterns": ["checkpoint", "layer", "head"],
}


@pytest.fixture(scope="module")
def model_without_dropout(tmp_path_factory):
    from t3vis.fixtures.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("nodropout"), hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Launch two processes as torchrun does; fails the test with their output when one of them fails."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               *map(str, args)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    return done


def _table(store: Store, table: str, keys: list[str]) -> pd.DataFrame:
    frame = store.query(f"SELECT * FROM {table} ORDER BY {', '.join(keys)}")
    return frame.drop(columns=[column for column in ("ingested_at", "created_at") if column in frame])


def _assert_same_value(got, wanted, where: str) -> None:
    """One cell: numbers (and arrays and JSON of numbers) within a float tolerance, anything else equal."""
    if not isinstance(wanted, (list, dict, np.ndarray)) and pd.isna(wanted):  # NULL
        assert not isinstance(got, (list, dict, np.ndarray)) and pd.isna(got), where
        return
    if isinstance(wanted, str) and wanted.startswith(("{", "[")):  # a JSON column: metrics, config, extra
        got, wanted = json.loads(got), json.loads(wanted)
    if isinstance(wanted, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(wanted), where
        for key in wanted:
            _assert_same_value(got[key], wanted[key], f"{where}.{key}")
    elif isinstance(wanted, np.ndarray) and wanted.dtype.kind == "f":
        np.testing.assert_allclose(np.asarray(got), wanted, rtol=1e-4, atol=1e-5, err_msg=where)
    elif isinstance(wanted, (list, np.ndarray)) and not (len(wanted) and isinstance(wanted[0], str)):
        assert len(got) == len(wanted), where
        for index, (item, expected) in enumerate(zip(got, wanted)):
            _assert_same_value(item, expected, f"{where}[{index}]")
    elif isinstance(wanted, (float, np.floating)):
        np.testing.assert_allclose(got, wanted, rtol=1e-4, atol=1e-5, err_msg=where)
    else:
        assert np.asarray(got).tolist() == np.asarray(wanted).tolist(), where


def _assert_same_tables(mine: Store, reference: Store, tables: dict[str, list[str]], *,
                        allow_empty: bool = False) -> None:
    for table, keys in tables.items():
        got, expected = _table(mine, table, keys), _table(reference, table, keys)
        assert len(got) == len(expected) and (allow_empty or len(expected) > 0), table
        for column in expected:
            values, wanted = got[column].to_numpy(), expected[column].to_numpy()
            if expected[column].dtype.kind == "f":
                np.testing.assert_allclose(values, wanted, rtol=1e-4, atol=1e-5, err_msg=f"{table}.{column}")
            elif expected[column].dtype == object:
                for row, (value, expected_value) in enumerate(zip(values, wanted)):
                    _assert_same_value(value, expected_value, f"{table}.{column} row {row}")
            else:
                pd.testing.assert_series_equal(got[column], expected[column], obj=f"{table}.{column}")  # NULLs too


def _assert_same_store(mine: Store, reference: Store, *, but: tuple[str, ...] = ()) -> set[str]:
    """Every table of the two stores (``but`` these), row by row in key order, value by value; returns the tables
    with rows."""
    keys = reference.query("SELECT table_name, constraint_column_names AS keys FROM duckdb_constraints() "
                           "WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name")
    tables = {row.table_name: list(row.keys) for row in keys.itertuples() if row.table_name not in but}
    _assert_same_tables(mine, reference, tables, allow_empty=True)
    return {table for table in tables if reference.scalar(f"SELECT count(*) FROM {table}")}


def _gold_probs_of_the_model(model_dir) -> np.ndarray:
    """(N,) gold-label probability of every training example, one forward pass each: what training with a
    learning rate of 0 sees at every epoch."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    texts, labels = training_texts()
    with torch.no_grad():
        logits = torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in texts])  # (N, K)
    return torch.softmax(logits.double(), -1)[torch.arange(len(labels)), torch.tensor(labels)].numpy()


def test_callback_under_torchrun_records_each_example_once_as_one_process_does(tmp_path, model_without_dropout):
    eval_csv = write_topic_csv(tmp_path / "eval.csv")
    out = tmp_path / "ddp"
    out.mkdir()
    _torchrun(PROJECT / "tests" / "distributed_training.py", model_without_dropout, eval_csv, out)
    ranks = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [seen["shard"] for seen in ranks] == [[0, 2], [1, 2]], "the Trainer ran as two processes"

    single = tmp_path / "single"
    single.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Trainer's own
        train(model_without_dropout, eval_csv, single / "frozen.duckdb", run_id="frozen", learning_rate=0.0)

    # Learning rate 0: each epoch's rows are the initial model's forward passes, each example exactly once.
    ddp, reference = Store(out / "frozen.duckdb"), Store(single / "frozen.duckdb")
    expected = _gold_probs_of_the_model(model_without_dropout)
    for store in (ddp, reference):
        rows = store.query("SELECT epoch, example_id, gold_prob FROM training_dynamics ORDER BY epoch, example_id")
        assert rows.groupby("epoch").example_id.apply(list).tolist() == [list(range(N_TRAIN))] * 2
        for epoch in (0, 1):
            np.testing.assert_allclose(rows[rows.epoch == epoch].gold_prob, expected, rtol=1e-5, atol=1e-6)
    _assert_same_tables(ddp, reference, {"training_dynamics": ["epoch", "example_id"]})

    # Checkpoints: every process ran its share of the evaluation batches; the main process wrote them once.
    _assert_same_tables(ddp, reference, CHECKPOINT_TABLES)
    paths = ddp.query("SELECT checkpoint, path FROM checkpoints ORDER BY step")
    assert paths.values.tolist() == [["epoch-1", "frozen-checkpoints/epoch-1"], ["epoch-2", "frozen-checkpoints/epoch-2"]]
    assert (out / "frozen-checkpoints" / "epoch-2" / "config.json").is_file()
    assert_live_views(out / "frozen.duckdb", "frozen", "epoch-2", 2)  # the weights the main process saved

    # Learning rate > 0, a checkpoint every 3 steps: still one row per training example and epoch.
    learning = Store(out / "learning.duckdb")
    counts = learning.query("SELECT epoch, count(*) AS n, count(DISTINCT example_id) AS ids, max(example_id) AS last "
                            "FROM training_dynamics GROUP BY epoch ORDER BY epoch")
    assert counts.values.tolist() == [[0, N_TRAIN, N_TRAIN, N_TRAIN - 1], [1, N_TRAIN, N_TRAIN, N_TRAIN - 1]]
    steps = learning.query("SELECT step FROM checkpoints ORDER BY step").step.tolist()
    assert steps == [3, 6, 9, 12]  # 43 examples: 6 batches of 4 per process (one padded) per epoch
    assert learning.scalar("SELECT count(*) FROM predictions") == 4 * 15

    # Only the main process opened a store; a run the main process refuses is off on every process, no hang.
    assert [seen["frozen"]["opened_store"] for seen in ranks] == [True, False]
    assert [seen["learning"]["opened_store"] for seen in ranks] == [True, False]
    assert [seen["refused"]["recording"] for seen in ranks] == [False, False]
    assert "already exists" in ranks[0]["refused"]["problems"][0]
    assert "could not start on process 0" in ranks[1]["refused"]["problems"][0]
    assert ddp.scalar("SELECT count(*) FROM training_dynamics") == 2 * N_TRAIN, "the refused run wrote nothing"
    assert ddp.run("frozen").label_names == ("a", "b", "c")

    # A process whose work fails still takes part in the gather: the main process says which and why.
    assert "process 1: RuntimeError: out of memory on purpose" in ranks[0]["gather_error"]
    assert ranks[1]["gather_error"] == "out of memory on purpose"


def _write_topic_data(path, n: int = 90, seed: int = 1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    words = {label: text.split() for label, text in TOPICS.items()}
    texts = [" ".join(rng.choice(words[label], size=rng.integers(2, 12))) for label in labels]
    pd.DataFrame({"text": texts, "label": [f"topic{label}" for label in labels]}).to_csv(path, index=False)
    return path


def _ingest_on_one_and_two_processes(options: list, folder, *, n: int) -> tuple[Store, Store]:
    """``t3vis ingest`` with ``options``, in this process into one.duckdb and under torchrun on 2 processes into
    two.duckdb; checks that the main process alone reported and wrote. Returns (two processes', one process's)."""
    from t3vis.cli import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process: the same arithmetic, batch for batch
    try:
        assert run(["ingest", *map(str, options), "--store", str(folder / "one.duckdb")]) == 0
    finally:
        torch.set_num_threads(threads)

    done = _torchrun("-m", "t3vis.cli", "ingest", *options, "--store", folder / "two.duckdb")
    assert done.stdout.count(f"r/c [validation]: {n} examples") == 1, "only the main process reports"
    assert "done in" in done.stdout and "on 2 processes" in done.stdout
    assert sorted(path.name for path in folder.glob("*.duckdb*")) == ["one.duckdb", "two.duckdb"]
    return Store(folder / "two.duckdb"), Store(folder / "one.duckdb")


def test_ingest_under_torchrun_writes_what_one_process_writes(tmp_path, model_without_dropout):
    data = _write_topic_data(tmp_path / "topics.csv")
    # 12 length-sorted batches of 8, of which a few sampled ones for importance and attention, laid out with t-SNE:
    # the main process gathers the pooled states in example order, so the t-SNE input is the same.
    # (--run-id, not --run: torchrun would take --run for its own --run-path.)
    options = ["--model", model_without_dropout, "--data", data, "--run-id", "r", "--checkpoint", "c",
               "--batch-size", "8", "--importance-examples", "24", "--attention-examples", "40", "--quiet"]
    two, one = _ingest_on_one_and_two_processes(options, tmp_path, n=90)
    _assert_same_tables(two, one, {**CHECKPOINT_TABLES, "examples": ["example_id"]})
    importance = two.query("SELECT DISTINCT n_examples FROM head_importance").n_examples.tolist()
    assert importance == [24], "the union of the processes' samples is the single process's sample"
    metrics = [json.loads(store.scalar("SELECT metrics FROM checkpoints")) for store in (two, one)]
    assert metrics[0]["validation"] == pytest.approx(metrics[1]["validation"], rel=1e-5)


def test_each_process_runs_its_own_batches_and_the_merge_is_the_single_pass(tiny_bundle, tmp_path):
    """The sharding itself, without launching: two shards run disjoint batches covering every example, drawing
    the same importance and attention samples; merged, they are the single process's pass."""
    from t3vis.data.loading import load_examples
    from t3vis.model.access import using_t3vis_attention
    from t3vis.model.encoding import encode
    from t3vis.record.ingest import IngestConfig, _forward_pass

    examples = load_examples(_write_topic_data(tmp_path / "topics.csv", n=50))
    encoded = encode(tiny_bundle.tokenizer, examples.texts, max_length=tiny_bundle.max_length)
    config = IngestConfig(batch_size=8, importance_examples=24, attention_examples=32)
    options = dict(layers=(0, 2), config=config, progress=lambda *_: None)
    with using_t3vis_attention(tiny_bundle.model):
        parts = [_forward_pass(tiny_bundle, encoded, examples.labels, shard=Shard(rank, 2), **options)
                 for rank in (0, 1)]
        single = _forward_pass(tiny_bundle, encoded, examples.labels, **options)
    _assert_same_merge(parts, single, 50)


def _assert_same_merge(parts, single, n: int, n_units: int = 0) -> None:
    """Two shards' parts ran disjoint examples, each some importance batches; merged, they equal the single part."""
    from t3vis.record.sharded_pass import merged_parts

    assert all(len(part.positions) for part in parts) and not set(parts[0].positions) & set(parts[1].positions)
    assert all(part.sums.importance_examples for part in parts), "each shard ran some of the importance batches"
    merged, reference = merged_parts(parts, n, n_units=n_units), merged_parts([single], n, n_units=n_units)
    for name, rows in reference.rows.items():
        for got, wanted in ([(merged.rows[name], rows)] if isinstance(rows, np.ndarray)
                            else zip(merged.rows[name], rows, strict=True)):
            np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-6, err_msg=name)
    for found, expected in ((merged.pooled, reference.pooled), (merged.unit_vectors, reference.unit_vectors)):
        assert sorted(found) == sorted(expected)
        for layer, vectors in expected.items():
            np.testing.assert_allclose(found[layer], vectors, rtol=1e-5, atol=1e-6)
    heads, expected = merged.heads, reference.heads
    assert heads.importance_examples == expected.importance_examples > 0
    np.testing.assert_allclose(heads.importance, expected.importance, rtol=1e-6)
    assert heads.attention_examples == expected.attention_examples
    for name, values in expected.attention.items():
        np.testing.assert_allclose(heads.attention[name], values, rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_summarizer_and_a_tagger_shard_their_passes_like_a_classifier(tmp_path):
    """The same without launching, for the tasks with units: sentence scores and losses, word logits, and the
    vectors of the laid-out sentences and words come back in order from two shards."""
    from t3vis.fixtures.summarization_store import synthetic_documents
    from t3vis.fixtures.tagging_store import TAGS, synthetic_sentences
    from t3vis.fixtures.tiny_models import save_tiny_summarizer, save_tiny_tagger
    from t3vis.model.access import load_model, using_t3vis_attention
    from t3vis.model.summarizer import encode_documents, uses_segments
    from t3vis.model.summarizer_loading import load_summarizer
    from t3vis.model.word_encoding import encode_words
    from t3vis.record import summarization, tagging
    from t3vis.record.ingest import IngestConfig

    config = IngestConfig(batch_size=4, importance_examples=8, attention_examples=12, projection="pca")
    summarizer = load_summarizer(save_tiny_summarizer(tmp_path / "summarizer"))
    documents = synthetic_documents(18, seed=3)
    encoded = encode_documents(summarizer.tokenizer, documents.sentences, max_length=summarizer.max_length,
                               segments=uses_segments(summarizer.model))
    laid_out = summarization.sentences_to_lay_out(encoded, config)
    options = dict(layers=(0, 2), config=config, progress=lambda *_: None, laid_out=laid_out)
    with using_t3vis_attention(summarizer.model):
        parts = [summarization._forward_pass(summarizer, encoded, documents.oracle, shard=Shard(rank, 2), **options)
                 for rank in (0, 1)]
        single = summarization._forward_pass(summarizer, encoded, documents.oracle, **options)
    assert sorted(single.rows) == ["losses", "scores"] and len(laid_out) == sum(len(s) for s in documents.sentences)
    _assert_same_merge(parts, single, len(documents), len(laid_out))

    tagger = load_model(save_tiny_tagger(tmp_path / "tagger", TAGS), task="token-classification")
    sentences = synthetic_sentences(18, seed=3)
    encoded = encode_words(tagger.tokenizer, sentences.words, max_length=tagger.max_length)
    laid_out = tagging.words_to_lay_out(encoded, sentences.tags, config)
    options = dict(options, laid_out=laid_out)
    with using_t3vis_attention(tagger.model):
        parts = [tagging._forward_pass(tagger, encoded, sentences.tags, shard=Shard(rank, 2), **options)
                 for rank in (0, 1)]
        single = tagging._forward_pass(tagger, encoded, sentences.tags, **options)
    _assert_same_merge(parts, single, len(sentences), len(laid_out))


def _write_task_data(task: str, folder) -> tuple:
    """(data file, tiny model folder) of a task: 40 generated news documents with references for the summarizer,
    60 generated news sentences with entity tags (JSON lines) for the tagger."""
    from t3vis.fixtures.tiny_models import save_tiny_summarizer, save_tiny_tagger

    if task == "extractive-summarization":
        from t3vis.fixtures.summarization_store import synthetic_documents

        documents = synthetic_documents(40, seed=3)
        data = folder / "news.csv"
        pd.DataFrame({"id": documents.example_ids, "article": documents.texts,
                      "highlights": ["\n".join(lines) for lines in documents.references]}).to_csv(data, index=False)
        return data, save_tiny_summarizer(folder / "summarizer", hidden_dropout_prob=0.0,
                                          attention_probs_dropout_prob=0.0)
    from t3vis.data.tagging import load_tagged
    from t3vis.fixtures.tagging_store import synthetic_sentences

    sentences = synthetic_sentences(60, seed=3)
    names = np.array(sentences.tag_names)
    data = folder / "news.jsonl"
    data.write_text("\n".join(json.dumps({"tokens": words, "ner_tags": names[tags].tolist()})
                              for words, tags in zip(sentences.words, sentences.tags)))
    return data, save_tiny_tagger(folder / "tagger", load_tagged(data).tag_names, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)


@pytest.mark.parametrize("task", ["extractive-summarization", "token-classification"])
def test_ingest_of_a_summarizer_or_a_tagger_under_torchrun_writes_what_one_process_writes(tmp_path, task):
    """Each process runs every other length-sorted batch; the main process puts the documents' sentence scores
    (the sentences' word logits), pooled states and laid-out units' vectors back in order, adds the importance and
    attention sums, scores, projects and writes: every table of the store equals a single process's."""
    from t3vis.record.task import recording_task

    assert recording_task(task).shards_checkpoints, "every process runs its batches (none waits for the main one)"
    data, model = _write_task_data(task, tmp_path)
    options = ["--task", task, "--model", model, "--data", data, "--run-id", "r", "--checkpoint", "c",
               "--batch-size", "4", "--importance-examples", "12", "--attention-examples", "20", "--layers", "all",
               "--projection", "pca", "--quiet"]
    two, one = _ingest_on_one_and_two_processes(options, tmp_path, n=40 if task == "extractive-summarization" else 60)
    written = _assert_same_store(two, one)
    assert {"examples", "units", "unit_predictions", "projections", "unit_projections", "head_importance",
            "attention_patterns"} <= written
    if task == "extractive-summarization":
        assert {"document_scores", "baseline_scores"} <= written
    assert two.query("SELECT DISTINCT n_examples FROM head_importance").n_examples.tolist() == [12]


TASK_TRAININGS = {  # task: (its run id, the tables of its own that its checkpoints write)
    "tagger": ("ner", {"unit_predictions", "unit_projections"}),
    "summarizer": ("bertsum", {"unit_predictions", "projections", "document_scores"}),
}


@pytest.mark.parametrize("task", list(TASK_TRAININGS))
def test_a_tagger_or_summarizer_recorded_under_torchrun_writes_each_checkpoint_once_as_one_process_does(
        tmp_path, task):
    """The callback on a token classifier or an extractive summarizer under two processes (learning rate 0): both
    processes compute each checkpoint on their shares of the evaluation set, the main process writes it once; the
    store equals a single-process run's, training dynamics included."""
    from distributed_training import train_summarizer
    from t3vis.fixtures.tagging_store import TAGS
    from t3vis.fixtures.tiny_models import save_tiny_summarizer, save_tiny_tagger

    run_id, unit_tables = TASK_TRAININGS[task]
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = (save_tiny_tagger(tmp_path / "model", TAGS, **no_dropout) if task == "tagger"
             else save_tiny_summarizer(tmp_path / "model", scorer_dropout=0.0, **no_dropout))
    out = tmp_path / "ddp"
    out.mkdir()
    _torchrun(PROJECT / "tests" / "distributed_training.py", task, model, out)
    ranks = [json.loads((out / f"{task}-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [seen["shard"] for seen in ranks] == [[0, 2], [1, 2]], "the Trainer ran as two processes"
    assert [seen["problems"] for seen in ranks] == [[], []]
    assert [seen["opened_store"] for seen in ranks] == [True, False]
    assert [seen["summaries"] for seen in ranks] == [2, 0], "the main process wrote each checkpoint"

    single = tmp_path / "single"
    single.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Trainer's own
        callback = (train_tagger if task == "tagger" else train_summarizer)(model, single / f"{task}.duckdb")
    assert callback.problems == []

    ddp, reference = Store(out / f"{task}.duckdb"), Store(single / f"{task}.duckdb")
    assert ddp.query("SELECT checkpoint, path FROM checkpoints ORDER BY step").values.tolist() == [
        ["epoch-1", f"{run_id}-checkpoints/epoch-1"], ["epoch-2", f"{run_id}-checkpoints/epoch-2"]]
    metrics = [store.query("SELECT checkpoint, epoch, metrics FROM checkpoints ORDER BY checkpoint")
               for store in (ddp, reference)]
    assert metrics[0].checkpoint.tolist() == metrics[1].checkpoint.tolist()
    assert metrics[0].epoch.tolist() == metrics[1].epoch.tolist() == [1.0, 2.0]
    for got, wanted in zip(metrics[0].metrics, metrics[1].metrics):
        _assert_same_value(json.loads(got)["validation"], json.loads(wanted)["validation"], "metrics")
    n_units = reference.scalar("SELECT count(*) FROM units WHERE split = 'validation' AND kept")
    counts = ddp.query("SELECT checkpoint, count(*) AS n, count(DISTINCT (example_id, unit)) AS units "
                       "FROM unit_predictions GROUP BY 1 ORDER BY 1")
    assert n_units > 0 and counts.values.tolist() == [["epoch-1", n_units, n_units], ["epoch-2", n_units, n_units]]
    written = _assert_same_store(ddp, reference, but=("checkpoints",))  # each process ran half the steps
    assert {"head_importance", "attention_patterns", "training_dynamics"} | unit_tables <= written