"""Stores of schema version 1 (head importance as |batch gradient|) are refused, and `t3vis upgrade` converts them."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from t3vis.cli import run
from t3vis.data.loading import load_examples
from t3vis.errors import SchemaVersionError
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import SCHEMA_VERSION, Store

CONFIG = IngestConfig(projection="pca", importance_examples=8, batch_size=4, seed=3)


def _importance(path, checkpoint):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT layer, head, importance, n_examples FROM head_importance WHERE checkpoint = ? "
                           "ORDER BY layer, head", [checkpoint]).df()
    finally:
        con.close()


def test_a_version_1_store_is_refused_then_upgraded(tmp_path, tiny_bundle, tiny_model_dir, topic_csv, capsys):
    path = tmp_path / "old.duckdb"
    store = Store(path, create=True)
    examples = load_examples(topic_csv)
    ingest_checkpoint(store, tiny_bundle, examples, run_id="r", checkpoint="kept", step=1, path=tiny_model_dir,
                      config=CONFIG)
    ingest_checkpoint(store, tiny_bundle, examples, run_id="r", checkpoint="gone", step=2, config=CONFIG)
    correct = _importance(path, "kept")
    predictions = store.scalar("SELECT count(*) FROM predictions")
    # what version 1 wrote: another definition of the same column, and its version number
    con = duckdb.connect(str(path))
    con.execute("UPDATE head_importance SET importance = importance * 0.37")
    con.execute("UPDATE t3vis_meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    old_bytes = path.read_bytes()

    with pytest.raises(SchemaVersionError, match="t3vis upgrade --store"):
        Store(path)
    assert run(["info", "--store", str(path)]) == 2
    assert "mean over examples of |gradient|" in capsys.readouterr().err
    assert path.read_bytes() == old_bytes  # refusing changed nothing

    assert run(["upgrade", "--store", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "recomputed: r/kept [validation]" in out and "removed: r/gone [validation]" in out
    assert (tmp_path / "old.duckdb.v1.bak").read_bytes() == old_bytes
    upgraded = Store(path)
    assert upgraded.meta("schema_version") == str(SCHEMA_VERSION)
    after = _importance(path, "kept")
    np.testing.assert_allclose(after.importance, correct.importance, rtol=1e-5)
    assert after.n_examples.tolist() == correct.n_examples.tolist()
    assert _importance(path, "gone").empty
    assert upgraded.scalar("SELECT count(*) FROM predictions") == predictions

    assert run(["upgrade", "--store", str(path), "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out
