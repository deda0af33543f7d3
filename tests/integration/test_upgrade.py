"""Stores of schema version 1 (head importance as |batch gradient|) are refused, and `t3vis upgrade` converts them."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from t3vis.cli import run
from t3vis.data.loading import load_examples
from t3vis.errors import SchemaVersionError
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import SCHEMA_VERSION, Store

from helpers import PROJECT

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


def test_a_version_2_store_becomes_version_3_keeping_every_row(tmp_path, capsys):
    """Version 2 (tests/data/schema_v2.sql, the schema as released) had free text in runs.task and no units."""
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    con.execute((PROJECT / "tests" / "data" / "schema_v2.sql").read_text())
    con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', '2'), ('created_by', 't3vis'), ('demo_build', 'x')")
    con.execute("INSERT INTO runs (run_id, model, task, label_names, num_layers, num_heads, max_length) "
                "VALUES ('r', 'm', 'SST-2 dev', ['neg', 'pos'], 2, 4, 128)")
    con.execute("INSERT INTO examples VALUES ('r', 'train', 0, 'good', NULL, 1, 'pos', 3, 3, false, NULL), "
                "('r', 'train', 1, 'bad', NULL, 0, 'neg', 3, 3, false, '{\"flipped\": true}')")
    con.execute("INSERT INTO training_dynamics VALUES ('r', 'train', 0, 0, 0.6, 1, true, 0.51), "
                "('r', 'train', 0, 1, 0.8, 1, true, 0.22), ('r', 'train', 1, 0, 0.3, 1, false, 1.2)")
    con.execute("INSERT INTO attention_patterns VALUES ('r', 'c1', 'validation', 0, 0, 2, [0.5, 0.5, 0.5, 0.5], "
                "0.1, 0.2, 0.3, 0.1, 0.1, 0.9, 64)")
    con.close()
    old_bytes = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="t3vis upgrade"):
        Store(path)

    assert run(["upgrade", "--store", str(path), "--quiet"]) == 0
    assert "upgraded from schema version 2" in capsys.readouterr().out
    assert (tmp_path / "v2.duckdb.v2.bak").read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2.duckdb", "v2.duckdb.v2.bak"]  # no scratch left
    store = Store(path)
    run_row = store.run("r")
    assert (run_row.task, run_row.dataset) == ("sequence-classification", "SST-2 dev")
    assert store.meta("demo_build") == "x" and store.meta("schema_version") == str(SCHEMA_VERSION)
    assert store.query("SELECT example_id, label_name, coalesce(extra->>'flipped', '-') AS f FROM examples ORDER BY 1").values.tolist() \
        == [[0, "pos", "-"], [1, "neg", "true"]]
    data_map = store.query("SELECT example_id, unit, n_epochs, confidence FROM data_map ORDER BY example_id")
    assert data_map.unit.tolist() == [0, 0] and data_map.n_epochs.tolist() == [2, 1]
    assert data_map.confidence.tolist() == pytest.approx([0.7, 0.3])
    pattern = store.query("SELECT attn_cls, entropy, attn_same_token, n_examples FROM attention_patterns").iloc[0]
    assert pattern.attn_cls == pytest.approx(0.1) and pattern.n_examples == 64 and np.isnan(pattern.attn_same_token)


def test_a_version_3_store_becomes_current_keeping_every_row(tmp_path, capsys):
    """Version 3 (tests/data/schema_v3.sql, as released) had no layouts of sentences."""
    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path))
    con.execute((PROJECT / "tests" / "data" / "schema_v3.sql").read_text())
    con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', '3'), ('created_by', 't3vis')")
    con.execute("INSERT INTO runs (run_id, model, task, label_names, num_layers, num_heads, max_length) "
                "VALUES ('s', 'm', 'extractive-summarization', ['not in summary', 'in summary'], 2, 4, 512)")
    con.execute("INSERT INTO units VALUES ('s', 'validation', 3, 0, 'First.', 1, true, 2), "
                "('s', 'validation', 3, 1, 'Second.', 0, false, -1)")
    con.execute("INSERT INTO projections VALUES ('s', 'c1', 'validation', 2, 'pca', 'cls', 3, 0.5, -0.5)")
    con.close()
    with pytest.raises(SchemaVersionError, match="unit_projections"):
        Store(path)

    assert run(["upgrade", "--store", str(path), "--quiet"]) == 0
    assert "upgraded from schema version 3" in capsys.readouterr().out
    store = Store(path)
    assert store.meta("schema_version") == str(SCHEMA_VERSION) == "6"
    assert store.query("SELECT unit, text, kept FROM units ORDER BY unit").values.tolist() == [
        [0, "First.", True], [1, "Second.", False]]
    assert store.query("SELECT x, y FROM projections").values.tolist() == [[0.5, -0.5]]
    assert store.scalar("SELECT count(*) FROM unit_projections") == 0


def test_a_version_4_store_gets_its_data_map_as_a_table_equal_to_the_old_view(tmp_path, capsys):
    """Version 4 (tests/data/schema_v4.sql, as released) computed the Data Map in a view on every query."""
    path = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(path))
    con.execute((PROJECT / "tests" / "data" / "schema_v4.sql").read_text())
    con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', '4'), ('created_by', 't3vis')")
    con.execute("INSERT INTO runs (run_id, model, task, label_names, num_layers, num_heads, max_length) "
                "VALUES ('r', 'm', 'sequence-classification', ['a', 'b'], 2, 4, 128)")
    rng = np.random.default_rng(0)
    for example in range(30):
        for epoch in range(4):
            prob = float(rng.random())
            con.execute("INSERT INTO training_dynamics VALUES ('r', 'train', ?, 0, ?, ?, ?, ?, ?)",
                        [example, epoch, prob, int(prob > 0.5), prob > 0.5, -np.log(prob)])
    old_view = con.execute("SELECT * FROM data_map ORDER BY example_id").df()
    con.close()
    with pytest.raises(SchemaVersionError, match="Data Map"):
        Store(path)

    assert run(["upgrade", "--store", str(path), "--quiet"]) == 0
    assert "upgraded from schema version 4" in capsys.readouterr().out
    store = Store(path)
    kind = store.scalar("SELECT table_type FROM information_schema.tables WHERE table_name = 'data_map'")
    assert kind == "BASE TABLE"
    table = store.query("SELECT * FROM data_map ORDER BY example_id")
    pd.testing.assert_frame_equal(table, old_view, check_dtype=False)
    assert set(table.region) >= {"ambiguous", "easy-to-learn", "hard-to-learn"}


def test_a_version_5_store_gains_the_generation_tables_keeping_every_row(tmp_path, capsys):
    """Version 5 (tests/data/schema_v5.sql, as released) had no generation task and no induction head function."""
    path = tmp_path / "v5.duckdb"
    con = duckdb.connect(str(path))
    con.execute((PROJECT / "tests" / "data" / "schema_v5.sql").read_text())
    con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', '5'), ('created_by', 't3vis')")
    con.execute("INSERT INTO runs (run_id, model, task, label_names, num_layers, num_heads, max_length) "
                "VALUES ('r', 'm', 'sequence-classification', ['a', 'b'], 2, 4, 128)")
    con.execute("INSERT INTO training_dynamics VALUES ('r', 'train', 7, 0, 0, 0.25, 0, false, 1.386), "
                "('r', 'train', 7, 0, 1, 0.75, 1, true, 0.288)")
    con.execute("INSERT INTO attention_patterns (run_id, checkpoint, split, layer, head, bins, pattern, attn_cls, "
                "attn_sep, attn_self, attn_prev, attn_next, entropy, n_examples) VALUES "
                "('r', 'c', 'validation', 0, 1, 1, [1.0], 0.5, 0.1, 0.2, 0.1, 0.1, 0.7, 9)")
    con.close()
    with pytest.raises(SchemaVersionError, match="generation"):
        Store(path)

    assert run(["upgrade", "--store", str(path), "--quiet"]) == 0
    assert "upgraded from schema version 5" in capsys.readouterr().out
    store = Store(path)
    assert store.meta("schema_version") == "6"
    dynamics = store.query("SELECT epoch, gold_prob, token_accuracy FROM training_dynamics ORDER BY epoch")
    assert dynamics.gold_prob.tolist() == [0.25, 0.75] and dynamics.token_accuracy.isna().all()
    data_map = store.query("SELECT confidence, correctness FROM data_map").iloc[0]
    assert data_map.confidence == pytest.approx(0.5) and data_map.correctness == pytest.approx(0.5)
    pattern = store.query("SELECT attn_cls, attn_induction, n_examples FROM attention_patterns").iloc[0]
    assert pattern.attn_cls == pytest.approx(0.5) and pattern.n_examples == 9 and np.isnan(pattern.attn_induction)
    assert store.scalar("SELECT count(*) FROM generations") == 0 and store.scalar(
        "SELECT count(*) FROM token_dynamics") == 0
