"""`t3vis export --parquet`: every table and view as Parquet, partitioned by run and checkpoint, read back equal;
the store is only read, and an existing folder with files is refused untouched."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pandas as pd
import pytest

from t3vis.cli import run
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

TABLES = ("runs", "checkpoints", "examples", "predictions", "projections", "head_importance", "attention_patterns",
          "training_dynamics", "data_map")


@pytest.fixture()
def two_run_store(tmp_path):
    path = tmp_path / "s.duckdb"
    build_synthetic_store(path, SyntheticConfig(n_examples=300, run_id="first", seed=1))
    build_synthetic_store(path, SyntheticConfig(n_examples=200, run_id="second", seed=2))
    return path


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_table_round_trips_through_parquet_by_run_and_checkpoint(two_run_store, tmp_path, capsys):
    before = _sha(two_run_store)
    assert run(["export", "--parquet", str(tmp_path / "out"), "--store", str(two_run_store)]) == 0
    assert "rows of" in capsys.readouterr().out
    assert _sha(two_run_store) == before  # only read
    out = tmp_path / "out"
    manifest = json.loads((out / "t3vis_export.json").read_text())
    assert manifest["schema_version"] == "6"
    assert (out / "predictions" / "run_id=first" / "checkpoint=epoch-1").is_dir()  # partitioned by both
    assert (out / "training_dynamics" / "run_id=second").is_dir()
    with duckdb.connect(str(two_run_store), read_only=True) as store:
        for table in TABLES:
            original = store.execute(f"SELECT * FROM {table}").df()
            assert manifest["rows"][table] == len(original) > 0, table
            back = duckdb.sql(f"SELECT * FROM read_parquet('{out / table}/**/*.parquet', hive_partitioning = true, "
                              "hive_types_autocast = false)").df()
            keys = [column for column in original.columns if column in ("run_id", "checkpoint", "split",
                                                                           "example_id", "unit", "epoch", "layer",
                                                                           "head", "key")]
            back = back[original.columns].sort_values(keys).reset_index(drop=True)
            original = original.sort_values(keys).reset_index(drop=True)
            pd.testing.assert_frame_equal(back, original, check_dtype=False, obj=table)


def test_a_folder_with_files_is_refused_and_left_alone(two_run_store, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert run(["export", "--parquet", str(folder), "--store", str(two_run_store)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [item.name for item in folder.iterdir()] == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "keep me"
    assert [item.name for item in tmp_path.iterdir() if item.name.startswith(".mine")] == []  # no staging left
