"""Recording and ingestion under torchrun: two CPU processes (gloo) write what one process writes.

Each test launches real processes with ``python -m torch.distributed.run --nproc_per_node=2`` (what
``torchrun`` runs) and compares the store they write with a single-process run in the same test.
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

from distributed_training import N_TRAIN, TOPICS, train, training_texts
from helpers import PROJECT, write_topic_csv
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


def _assert_same_tables(mine: Store, reference: Store, tables: dict[str, list[str]]) -> None:
    for table, keys in tables.items():
        got, expected = _table(mine, table, keys), _table(reference, table, keys)
        assert len(got) == len(expected) > 0, table
        for column in expected:
            values, wanted = got[column].to_numpy(), expected[column].to_numpy()
            if expected[column].dtype.kind == "f":
                np.testing.assert_allclose(values, wanted, rtol=1e-4, atol=1e-5, err_msg=f"{table}.{column}")
            elif expected[column].dtype == object and len(wanted) and isinstance(wanted[0], np.ndarray):
                np.testing.assert_allclose(np.stack(values), np.stack(wanted), rtol=1e-4, atol=1e-5,
                                           err_msg=f"{table}.{column}")
            else:
                assert values.tolist() == wanted.tolist(), f"{table}.{column}"


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


def test_ingest_under_torchrun_writes_what_one_process_writes(tmp_path, model_without_dropout):
    from t3vis.cli import run

    data = _write_topic_data(tmp_path / "topics.csv")
    # 12 length-sorted batches of 8, of which a few sampled ones for importance and attention, laid out with t-SNE:
    # the main process gathers the pooled states in example order, so the t-SNE input is the same.
    # (--run-id, not --run: torchrun would take --run for its own --run-path.)
    options = ["--model", model_without_dropout, "--data", data, "--run-id", "r", "--checkpoint", "c",
               "--batch-size", "8", "--importance-examples", "24", "--attention-examples", "40", "--quiet"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process: the same arithmetic, batch for batch
    try:
        assert run(["ingest", *map(str, options), "--store", str(tmp_path / "one.duckdb")]) == 0
    finally:
        torch.set_num_threads(threads)

    done = _torchrun("-m", "t3vis.cli", "ingest", *options, "--store", tmp_path / "two.duckdb")
    assert done.stdout.count("r/c [validation]: 90 examples") == 1, "only the main process reports"
    assert "done in" in done.stdout and "on 2 processes" in done.stdout
    assert sorted(path.name for path in tmp_path.glob("*.duckdb*")) == ["one.duckdb", "two.duckdb"]

    two, one = Store(tmp_path / "two.duckdb"), Store(tmp_path / "one.duckdb")
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
    from t3vis.record.distributed import SINGLE, Shard
    from t3vis.record.ingest import IngestConfig, _forward_pass, _merged_passes

    examples = load_examples(_write_topic_data(tmp_path / "topics.csv", n=50))
    encoded = encode(tiny_bundle.tokenizer, examples.texts, max_length=tiny_bundle.max_length)
    config = IngestConfig(batch_size=8, importance_examples=24, attention_examples=32)
    options = dict(layers=(0, 2), config=config, progress=lambda *_: None)
    with using_t3vis_attention(tiny_bundle.model):
        parts = [_forward_pass(tiny_bundle, encoded, examples.labels, shard=Shard(rank, 2), **options)
                 for rank in (0, 1)]
        single = _merged_passes([_forward_pass(tiny_bundle, encoded, examples.labels, shard=SINGLE, **options)], 50)
    assert all(len(part.indices) for part in parts) and not set(parts[0].indices) & set(parts[1].indices)
    assert all(part.importance_examples for part in parts), "each shard ran some of the importance batches"
    merged = _merged_passes(parts, 50)
    np.testing.assert_allclose(merged.logits, single.logits, rtol=1e-5, atol=1e-6)
    for layer in (0, 2):
        np.testing.assert_allclose(merged.pooled[layer], single.pooled[layer], rtol=1e-5, atol=1e-6)
    assert merged.importance_examples == single.importance_examples == 24
    np.testing.assert_allclose(merged.importance, single.importance, rtol=1e-6)
    assert merged.attention_examples == single.attention_examples
    for name, values in single.attention.items():
        np.testing.assert_allclose(merged.attention[name], values, rtol=1e-5, atol=1e-7, err_msg=name)
