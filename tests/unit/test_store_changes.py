"""What following a training compares: the store file's stamp and a summary of what the store lists."""

from __future__ import annotations

import time
from dataclasses import replace

import duckdb
import pytest

from follow_helpers import CONFIG, grow_checkpoint, grow_epoch
from t3vis.fixtures.synthetic_store import build_synthetic_store
from t3vis.queries.store_changes import contents, file_stamp


@pytest.fixture()
def store(tmp_path):
    return build_synthetic_store(tmp_path / "s.duckdb", CONFIG)


def test_the_stamp_moves_with_a_commit_and_not_with_a_read(store):
    before = file_stamp(store.path)
    store.query("SELECT count(*) FROM predictions")
    assert file_stamp(store.path) == before
    store.write_meta("note", "x")
    assert file_stamp(store.path) != before
    assert file_stamp(store.path.with_name("absent.duckdb")) == ((0, 0), (0, 0))


def test_contents_change_with_a_checkpoint_an_epoch_a_rewrite_and_a_run_and_not_with_other_writes(store):
    first = contents(store)
    assert first.runs == (CONFIG.run_id,)
    assert first.checkpoint_names(CONFIG.run_id) == ["epoch-1", "epoch-2"]
    assert first.latest_checkpoint(CONFIG.run_id) == "epoch-2" and first.latest_checkpoint("other") is None
    assert first.dynamics == ((CONFIG.run_id, "train", 1, 2 * CONFIG.n_train),)
    store.write_meta("note", "x")
    assert contents(store) == first

    grow_checkpoint(store, "epoch-3", seed=1)
    second = contents(store)
    assert second != first and second.latest_checkpoint(CONFIG.run_id) == "epoch-3"
    assert second.checkpoint_names(CONFIG.run_id) == store.checkpoints(CONFIG.run_id).checkpoint.tolist()

    grow_epoch(store, seed=2)
    third = contents(store)
    assert third != second and third.dynamics == ((CONFIG.run_id, "train", 2, 3 * CONFIG.n_train),)

    time.sleep(0.01)
    grow_checkpoint(store, "epoch-3", seed=5)  # written again: same names, a new ingestion time
    fourth = contents(store)
    assert fourth != third and fourth.checkpoint_names(CONFIG.run_id) == third.checkpoint_names(CONFIG.run_id)

    another = replace(store.run(CONFIG.run_id), run_id="another")
    with store.transaction() as con:
        store.write_run(con, another)
    assert contents(store).runs == ("another", CONFIG.run_id)


def test_a_store_held_by_a_writer_gives_no_contents_after_the_wait(store):
    writer = duckdb.connect(str(store.path))  # read-write in this process: a read-only connection cannot open
    try:
        started = time.monotonic()
        assert contents(store, wait=0.2) is None
        assert time.monotonic() - started < 1.5
    finally:
        writer.close()
    assert contents(store, wait=0.2) is not None
    with pytest.raises(ValueError, match="wait"):
        contents(store, wait=-1)
