"""Bad input to the CLI gets one clear line and exit code 2, never a traceback: targets that cannot be written
(a parent that is a file, a read-only folder) and limits of the SQL console that are not positive."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from t3vis.cli import run
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store


@pytest.fixture()
def synthetic_path(tmp_path) -> Path:
    return build_synthetic_store(tmp_path / "synthetic.duckdb", SyntheticConfig(n_examples=20, n_checkpoints=1)).path


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("t3vis: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(word in err for word in words), err
    return err


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only for this process: its mode, and for root (whom modes do not stop) the immutable
    attribute where the filesystem has it (ext4, xfs); skips the test where the folder stays writable."""
    folder.chmod(0o555)
    immutable = False
    try:
        if os.access(folder, os.W_OK) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0
        if os.access(folder, os.W_OK):
            pytest.skip("the folder stays writable after chmod 555 (running as root) and chattr +i is not available")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.mark.parametrize("argv, words", [
    (["--timeout", "0"], ["--timeout", "0"]),
    (["--timeout", "-1"], ["--timeout"]),
    (["--timeout", "nan"], ["--timeout"]),
    (["--max-rows", "0"], ["--max-rows", "0"]),
    (["--max-rows", "-5"], ["--max-rows"]),
], ids=["timeout-0", "timeout-negative", "timeout-nan", "max-rows-0", "max-rows-negative"])
def test_sql_limits_that_are_not_positive_are_one_line(synthetic_path, capsys, argv, words):
    assert run(["sql", "SELECT 1", "--store", str(synthetic_path), *argv]) == 2
    _one_line_error(capsys, *words)


def test_export_into_a_folder_under_a_file_is_one_line(tmp_path, synthetic_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    for target in (file / "parquet", file / "deeper" / "parquet"):
        assert run(["export", "--store", str(synthetic_path), "--parquet", str(target)]) == 2
        _one_line_error(capsys, str(file), "--parquet")
    assert file.read_text() == "mine"


def test_export_into_a_read_only_folder_is_one_line(tmp_path, synthetic_path, capsys):
    (tmp_path / "locked").mkdir()
    with read_only(tmp_path / "locked") as folder:
        assert run(["export", "--store", str(synthetic_path), "--parquet", str(folder / "parquet")]) == 2
        _one_line_error(capsys, str(folder), "--parquet")
        assert list(folder.iterdir()) == []


def test_demo_under_a_file_is_one_line(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    assert run(["demo", "--store", str(file / "demo.duckdb"), "--quiet"]) == 2
    _one_line_error(capsys, str(file), "--store")
    assert file.read_text() == "mine"


def test_demo_in_a_read_only_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "locked").mkdir()
    with read_only(tmp_path / "locked") as folder:
        assert run(["demo", "--store", str(folder / "demo.duckdb"), "--quiet"]) == 2
        _one_line_error(capsys, str(folder), "--store")
        assert list(folder.iterdir()) == []


def test_upgrade_in_a_read_only_folder_is_one_line(tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    path = build_synthetic_store(folder / "old.duckdb", SyntheticConfig(n_examples=20, n_checkpoints=1)).path
    con = duckdb.connect(str(path))
    con.execute("UPDATE t3vis_meta SET value = '2' WHERE key = 'schema_version'")  # an older version's store
    con.close()
    before = path.read_bytes()
    with read_only(folder):
        assert run(["upgrade", "--store", str(path), "--quiet"]) == 2
        _one_line_error(capsys, str(folder))
        assert sorted(p.name for p in folder.iterdir()) == ["old.duckdb"]
    assert path.read_bytes() == before
