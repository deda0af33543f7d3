"""Nothing a user made is changed or lost by the store's own file handling (issue 27's data-safety items).

A write-ahead log left by a killed writer is applied before a store is copied or replaced (``t3vis upgrade``,
the demo's replacement of an old demo); a log that t3vis did not write is never deleted; a foreign DuckDB
file that appears at a store's path is refused before any read-write open; ``~`` is expanded; a filesystem
without file locks is told apart from a lock another process holds.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from helpers import PROJECT
from t3vis.cli import run
from t3vis.errors import StoreError, StoreLockedError
from t3vis.store.database import SCHEMA_VERSION, Store

KILLED_WRITER = textwrap.dedent("""
    import os, sys, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("SET checkpoint_threshold = '1GB'")  # the commit stays in the write-ahead log
    con.execute(sys.argv[2])
    os._exit(0)  # killed after the commit, before DuckDB's checkpoint
""")


def _commit_then_die(path: Path, sql: str) -> None:
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), sql], check=True, timeout=60)
    assert _log(path).exists(), "the committed row lives in the write-ahead log only"


def _log(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version_4_store(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute((PROJECT / "tests" / "data" / "schema_v4.sql").read_text())
    con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', '4'), ('created_by', 't3vis')")
    con.execute("INSERT INTO runs (run_id, model, task, label_names, num_layers, num_heads, max_length) "
                "VALUES ('kept', 'm', 'sequence-classification', ['a', 'b'], 2, 4, 128)")
    con.close()
    return path


def test_upgrade_keeps_the_rows_a_killed_writer_left_in_the_write_ahead_log(tmp_path, capsys):
    path = _version_4_store(tmp_path / "old.duckdb")
    _commit_then_die(path, "INSERT INTO runs (run_id, model, task, label_names, num_layers, num_heads, max_length) "
                           "VALUES ('in-the-log', 'm', 'sequence-classification', ['a', 'b'], 2, 4, 128)")
    assert run(["upgrade", "--store", str(path), "--quiet"]) == 0
    assert "upgraded from schema version 4" in capsys.readouterr().out
    assert not _log(path).exists(), "no write-ahead log of the old file beside the new one"
    store = Store(path)  # opens: no "WAL does not match database file"
    assert store.meta("schema_version") == str(SCHEMA_VERSION)
    assert store.query("SELECT run_id FROM runs ORDER BY run_id").run_id.tolist() == ["in-the-log", "kept"]
    backup = tmp_path / "old.duckdb.v4.bak"
    assert not _log(backup).exists()
    with duckdb.connect(str(backup), read_only=True) as con:  # the backup is the whole old store, on its own
        assert sorted(row[0] for row in con.execute("SELECT run_id FROM runs").fetchall()) == ["in-the-log", "kept"]


@pytest.mark.slow
def test_the_demo_replaces_an_old_demo_whose_log_is_pending(tmp_path):
    """A demo built by an older t3vis, killed after a commit: the rebuild applies the old demo's log before it puts
    the new store in place, so the log is not read as the new store's."""
    from dataclasses import replace

    from t3vis.demo.build import DEMO_RUN, DemoConfig, build_demo
    from t3vis.demo.corpus import DemoCorpusConfig

    old = _version_4_store(tmp_path / "demo.duckdb")
    with duckdb.connect(str(old)) as con:
        con.execute("INSERT INTO t3vis_meta VALUES ('demo_build', ?)", [DEMO_RUN])
    _commit_then_die(old, "INSERT INTO t3vis_meta VALUES ('old', 'pending')")
    tiny = replace(DemoConfig(), corpus=DemoCorpusConfig(train_size=40, eval_size=20), epochs=1, batch_size=16)
    build_demo(old, config=tiny)
    assert not _log(old).exists()
    store = Store(old)  # opens: the new store, not "WAL does not match database file"
    assert store.meta("old") is None and store.checkpoints(DEMO_RUN).checkpoint.tolist() == ["epoch-1"]


def test_a_write_ahead_log_t3vis_did_not_write_is_never_deleted(tmp_path):
    path = tmp_path / "store.duckdb"
    stray = _log(path)
    stray.write_bytes(b"a log whose database was moved away\n" * 50)
    before = _sha256(stray)
    with pytest.raises(StoreError, match="write-ahead log .* lies there without its database"):
        Store(path, create=True).initialise()
    assert _sha256(stray) == before and not path.exists()


def test_a_foreign_database_that_appears_later_is_refused_before_a_read_write_open(tmp_path):
    path = tmp_path / "store.duckdb"
    store = Store(path, create=True)  # the path is free now
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE measurements AS SELECT range AS x FROM range(10)")
    con.close()
    _commit_then_die(path, "INSERT INTO measurements VALUES (99)")  # another program's pending log
    before = (_sha256(path), _sha256(_log(path)))
    with pytest.raises(StoreError, match="not a t3vis store"):
        store.write_meta("k", "v")
    assert (_sha256(path), _sha256(_log(path))) == before  # its log was not replayed into it


def test_a_store_replaced_after_it_was_checked_is_checked_again(tmp_path):
    path = tmp_path / "store.duckdb"
    store = Store(path, create=True)
    store.write_meta("k", "v")  # checked and written
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    other.replace(path)
    with pytest.raises(StoreError, match="not a t3vis store"):
        store.write_meta("k", "w")


def test_a_store_path_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch, tiny_model_dir, topic_csv):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    shutil.copytree(tiny_model_dir, home / "model")
    shutil.copy(topic_csv, home / "topics.csv")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    store = Store("~/runs/x.duckdb", create=True)
    store.write_meta("k", "v")
    assert (home / "runs" / "x.duckdb").is_file() and list(work.iterdir()) == []
    assert Store("~/runs/x.duckdb").meta("k") == "v"
    assert run(["info", "--store", "~/runs/x.duckdb"]) == 0  # a quoted CLI argument
    assert list(work.iterdir()) == [] and sorted(p.name for p in (home / "runs").iterdir()) == ["x.duckdb"]
    assert run(["ingest", "--model", "~/model", "--data", "~/topics.csv", "--store", "~/runs/x.duckdb",
                "--projection", "none", "--quiet"]) == 0  # quoted, as a script or an IDE passes them
    assert Store(home / "runs" / "x.duckdb").scalar("SELECT count(*) FROM predictions") > 0
    assert list(work.iterdir()) == []


NO_LOCKS_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
/* A filesystem without file locks (NFS without a lock daemon, some FUSE mounts): record locks fail, ENOLCK. */
static int is_lock(int cmd) {
    return cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW
        || cmd == F_OFD_GETLK;
}
#define WRAP(name) \
int name(int fd, int cmd, ...) { \
    va_list ap; va_start(ap, cmd); void *arg = va_arg(ap, void *); va_end(ap); \
    if (is_lock(cmd)) { errno = ENOLCK; return -1; } \
    static int (*real)(int, int, ...) = 0; \
    if (!real) real = (int (*)(int, int, ...)) dlsym(RTLD_NEXT, #name); \
    return real(fd, cmd, arg); \
}
WRAP(fcntl)
WRAP(fcntl64)
"""

WITHOUT_LOCKS = textwrap.dedent("""
    import json, sys, time
    from t3vis.errors import StoreLockedError
    from t3vis.store.database import Store
    started, outcome = time.monotonic(), {}
    try:
        Store(sys.argv[1])
        outcome["opened"] = True
    except StoreLockedError as error:
        outcome["locked"] = str(error)
    except Exception as error:
        outcome["error"] = f"{type(error).__name__}: {error}"
    outcome["seconds"] = time.monotonic() - started
    print(json.dumps(outcome))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("gcc") is None,
                    reason="needs Linux and gcc to build the shim that makes file locks fail as they do on NFS")
def test_a_filesystem_without_file_locks_is_said_at_once_not_taken_for_a_held_lock(tmp_path):
    import json

    (tmp_path / "nolock.c").write_text(NO_LOCKS_SHIM)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "nolock.so"), str(tmp_path / "nolock.c"), "-ldl"],
                   check=True, timeout=120)
    path = tmp_path / "store.duckdb"
    Store(path, create=True).initialise()
    before = _sha256(path)
    done = subprocess.run([sys.executable, "-c", WITHOUT_LOCKS, str(path)], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "LD_PRELOAD": str(tmp_path / "nolock.so")})
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert "locked" not in outcome and outcome["seconds"] < 5, outcome  # no 60 s wait for a lock nobody holds
    assert outcome["error"].startswith("StoreError") and "does not support file locks" in outcome["error"]
    assert "local disk" in outcome["error"] and _sha256(path) == before


def test_a_lock_another_process_holds_is_still_waited_for(tmp_path):
    path = tmp_path / "store.duckdb"
    Store(path, create=True).initialise()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(30)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(StoreLockedError, match="stayed locked"):
            Store(path, lock_timeout=1.5)
        assert time.monotonic() - started >= 1.5  # it waited, then said so
    finally:
        holder.kill()
        holder.wait()
