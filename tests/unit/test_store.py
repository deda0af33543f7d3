"""The DuckDB store: schema, versioning, transactions, the data_map view, crash safety."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import time

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from t3vis.errors import SchemaVersionError, StoreError
from t3vis.store.database import SCHEMA_VERSION, RunInfo, Store

TABLES = {"t3vis_meta", "runs", "checkpoints", "examples", "predictions", "projections", "head_importance",
          "attention_patterns", "training_dynamics", "data_map"}
RUN = RunInfo(run_id="r", model="m", label_names=("neg", "pos"), num_layers=2, num_heads=4, max_length=16)


def _write_a_run(store: Store) -> None:
    with store.transaction() as con:
        store.write_run(con, RUN)


def test_new_store_has_every_table_and_the_schema_version(store_path):
    store = Store(store_path, create=True)
    assert not store_path.exists()  # nothing is written before the first write
    _write_a_run(store)
    tables = set(store.query("SELECT table_name FROM duckdb_tables()").table_name)
    assert TABLES <= tables
    views = set(store.query("SELECT view_name FROM duckdb_views() WHERE NOT internal").view_name)
    assert "entity_spans" in views and "data_map" not in views  # the Data Map is a table, kept up to date
    assert store.meta("schema_version") == str(SCHEMA_VERSION)
    assert list(Store(store_path).runs().run_id) == ["r"]  # reopening an existing store for reading


def test_a_store_that_is_not_written_yet_reads_as_empty(store_path):
    store = Store(store_path, create=True)
    assert store.runs().empty and store.checkpoints("r").empty
    assert store.previous_checkpoint("r", step=3, exclude="x") is None
    assert not store_path.exists() and not store_path.parent.exists()


def test_a_failed_first_write_leaves_no_file(store_path):
    store = Store(store_path, create=True)
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            store.write_run(con, RUN)
            raise RuntimeError("the data turned out bad")
    assert not store_path.exists() and not store_path.with_name(store_path.name + ".wal").exists()


def _fingerprint(path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_reading_a_store_changes_no_byte(store_path):
    store = Store(store_path, create=True)
    _write_a_run(store)
    before = _fingerprint(store_path)
    reader = Store(store_path)
    reader.runs(), reader.checkpoints("r"), reader.query("SELECT * FROM data_map")
    assert _fingerprint(store_path) == before
    assert sorted(p.name for p in store_path.parent.iterdir()) == [store_path.name]


def test_store_of_another_schema_version_is_refused(store_path):
    _write_a_run(Store(store_path, create=True))
    con = duckdb.connect(str(store_path))
    con.execute("UPDATE t3vis_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    before = _fingerprint(store_path)
    with pytest.raises(SchemaVersionError, match=f"version 99.*reads version {SCHEMA_VERSION}"):
        Store(store_path)
    with pytest.raises(SchemaVersionError):
        Store(store_path, create=True)
    assert _fingerprint(store_path) == before


@pytest.mark.parametrize("tables", [[], ["CREATE TABLE things (x INTEGER)"]])
def test_duckdb_file_that_is_not_a_store_is_refused_and_left_unchanged(tmp_path, tables):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    for statement in tables:
        con.execute(statement)
    con.close()
    before = _fingerprint(path)
    for create in (False, True):
        with pytest.raises(StoreError, match="not a t3vis store"):
            Store(path, create=create)
    assert _fingerprint(path) == before


@pytest.mark.parametrize("name", ["notes.duckdb", "lock-conflicting.duckdb", "empty.duckdb"])
def test_file_that_is_not_duckdb_is_refused_at_once(tmp_path, name):
    path = tmp_path / name
    path.write_text("" if name.startswith("empty") else "just some text, not a database\n" * 100)
    before = _fingerprint(path)
    started = time.monotonic()
    with pytest.raises(StoreError, match="is not a DuckDB database"):
        Store(path, create=True)
    assert time.monotonic() - started < 5  # a lock word in the path is not taken for a lock
    assert _fingerprint(path) == before


def test_missing_store_without_create(tmp_path):
    with pytest.raises(StoreError, match="t3vis demo"):
        Store(tmp_path / "absent.duckdb", create=False)
    assert not (tmp_path / "absent.duckdb").exists()


def test_a_failed_transaction_leaves_the_store_as_it_was(store_path):
    store = Store(store_path, create=True)
    with store.transaction() as con:
        store.write_run(con, RUN)
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            con.execute("DELETE FROM runs")
            raise RuntimeError("crash in the middle")
    assert list(store.runs().run_id) == ["r"]


def test_a_run_with_other_labels_is_refused(store_path):
    store = Store(store_path, create=True)
    with store.transaction() as con:
        store.write_run(con, RUN)
    other = RunInfo(run_id="r", model="m", label_names=("a", "b", "c"), num_layers=2, num_heads=4, max_length=16)
    with pytest.raises(StoreError, match="another `run_id` name"):
        with store.transaction() as con:
            store.write_run(con, other)


def _dynamics(gold_probs: np.ndarray, correct: np.ndarray) -> pa.Table:
    return pa.table({
        "example_id": pa.array(np.arange(len(gold_probs)), type=pa.int64()),
        "gold_prob": pa.array(gold_probs, type=pa.float32()),
        "pred": pa.array(np.where(correct, 1, 0).astype(np.int32)),
        "correct": pa.array(correct),
        "loss": pa.array(-np.log(gold_probs), type=pa.float32()),
    })


def test_the_data_map_matches_a_hand_computation_after_every_epoch_written(store_path):
    store = Store(store_path, create=True)
    rng = np.random.default_rng(1)
    epochs, n = 4, 30
    gold = rng.uniform(0.01, 0.99, size=(epochs, n)).astype(np.float32)
    correct = gold > 0.5
    for epoch in range(epochs):
        store.write_training_dynamics(RUN, "train", epoch, _dynamics(gold[epoch], correct[epoch]))
        so_far = store.query("SELECT n_epochs, confidence FROM data_map WHERE run_id = 'r' ORDER BY example_id")
        assert (so_far.n_epochs == epoch + 1).all()  # the table follows each epoch as it is written
        np.testing.assert_allclose(so_far.confidence, gold[:epoch + 1].astype(np.float64).mean(0), rtol=1e-5)
    other = RunInfo(run_id="other", model="m", label_names=("neg", "pos"), num_layers=2, num_heads=4, max_length=16)
    store.write_training_dynamics(other, "train", 0, _dynamics(gold[0] / 2, correct[0]))  # thirds are per run
    store.write_training_dynamics(RUN, "train", 3, _dynamics(gold[3], correct[3]))  # rewriting an epoch replaces it
    data_map = store.query("SELECT * FROM data_map WHERE run_id = 'r' ORDER BY example_id")
    assert len(data_map) == n and (data_map.n_epochs == epochs).all()
    np.testing.assert_allclose(data_map.confidence, gold.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(data_map.variability, gold.astype(np.float64).std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(data_map.correctness, correct.mean(0))
    forgetting = (correct[:-1] & ~correct[1:]).sum(0)
    np.testing.assert_array_equal(data_map.forgetting_events, forgetting)
    # regions: top third of variability is ambiguous; of the rest, the confidence thirds decide
    variability_rank = data_map.variability.rank(method="min").sub(1) / (n - 1)
    assert set(data_map.region[variability_rank >= 2 / 3]) == {"ambiguous"}
    assert set(data_map.region) <= {"ambiguous", "hard-to-learn", "easy-to-learn", "other"}
    hard = data_map[data_map.region == "hard-to-learn"]
    easy = data_map[data_map.region == "easy-to-learn"]
    assert hard.confidence.max() < easy.confidence.min()


CRASHING_WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, pyarrow as pa
    from t3vis.store.database import CheckpointInfo, CheckpointResults, RunInfo, Store

    store = Store(sys.argv[1], create=True)
    run = RunInfo(run_id="r", model="m", label_names=("neg", "pos"), num_layers=2, num_heads=4, max_length=16)
    n = 5000
    predictions = pa.table({
        "example_id": pa.array(np.arange(n), type=pa.int64()),
        "logits": pa.array([[0.0, 1.0]] * n, type=pa.list_(pa.float32())),
        "probs": pa.array([[0.3, 0.7]] * n, type=pa.list_(pa.float32())),
        "pred": pa.array(np.ones(n, dtype=np.int32)), "gold_prob": pa.array(np.full(n, 0.7, dtype=np.float32)),
        "confidence": pa.array(np.full(n, 0.7, dtype=np.float32)),
        "loss": pa.array(np.full(n, 0.36, dtype=np.float32)), "correct": pa.array(np.ones(n, dtype=bool)),
    })
    projections = pa.table({
        "layer": pa.array(np.ones(n, dtype=np.int32)), "method": pa.array(["pca"] * n),
        "pooling": pa.array(["cls"] * n), "example_id": pa.array(np.arange(n), type=pa.int64()),
        "x": pa.array(np.zeros(n, dtype=np.float32)), "y": pa.array(np.zeros(n, dtype=np.float32)),
    })
    results = CheckpointResults(split="validation", tables={"predictions": predictions, "projections": projections})
    store.write_checkpoint(run, CheckpointInfo(run_id="r", checkpoint="first", step=1), results)
    if sys.argv[2] == "crash":
        original = Store._insert
        def insert_then_die(con, table, rows, **constants):
            original(con, table, rows, **constants)
            if table == "projections":  # predictions of the second checkpoint are in, the rest is not
                os.kill(os.getpid(), signal.SIGKILL)
        Store._insert = staticmethod(insert_then_die)
    store.write_checkpoint(run, CheckpointInfo(run_id="r", checkpoint="second", step=2), results)
""")


def test_a_writer_killed_mid_checkpoint_leaves_the_earlier_checkpoints_intact(store_path):
    result = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(store_path), "crash"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    store = Store(store_path)
    assert list(store.checkpoints("r").checkpoint) == ["first"]
    counts = store.query("SELECT checkpoint, count(*) AS n FROM predictions GROUP BY checkpoint")
    assert counts.set_index("checkpoint").n.to_dict() == {"first": 5000}
    assert store.scalar("SELECT count(*) FROM projections WHERE checkpoint = 'second'") == 0
    # and the store still takes writes: the same script without the crash completes both checkpoints
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(store_path), "ok"], check=True, timeout=120)
    assert list(store.checkpoints("r").checkpoint) == ["first", "second"]
    assert store.scalar("SELECT count(*) FROM predictions") == 10000


def _immutable(path):
    """chattr +i: even root cannot write (permissions do not stop root). Skips where the filesystem lacks it."""
    result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"chattr +i is not available here ({result.stderr.strip()}): cannot make a read-only folder")


def _mutable(path):
    subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_store_can_be_viewed_and_a_write_fails_with_a_message(tmp_path):
    folder = tmp_path / "shared"
    store = Store(folder / "s.duckdb", create=True)
    _write_a_run(store)
    before = _fingerprint(folder / "s.duckdb")
    _immutable(folder / "s.duckdb")
    _immutable(folder)
    try:
        assert list(Store(folder / "s.duckdb").runs().run_id) == ["r"]
        with pytest.raises(StoreError, match="s.duckdb"):
            Store(folder / "s.duckdb").delete_run("r")
    finally:
        _mutable(folder)
        _mutable(folder / "s.duckdb")
    assert _fingerprint(folder / "s.duckdb") == before


def test_a_store_in_a_folder_that_cannot_be_made_is_refused(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        Store(tmp_path / "a-file" / "sub" / "s.duckdb", create=True)
    locked = tmp_path / "locked"
    locked.mkdir()
    store = Store(locked / "new" / "s.duckdb", create=True)
    _immutable(locked)
    try:
        with pytest.raises(StoreError, match="Cannot create the folder"):
            _write_a_run(store)
    finally:
        _mutable(locked)
    assert list(locked.iterdir()) == []


def test_an_option_in_a_message_reads_as_a_parameter_or_as_a_cli_flag():
    from t3vis.errors import DataError, option

    error = DataError(f"pass {option('encoding', 'latin-1')} or fix {option('run_id', flag='--run')}.")
    assert str(error) == "pass encoding='latin-1' or fix `run_id`."
    assert error.for_cli() == "pass --encoding latin-1 or fix --run."
