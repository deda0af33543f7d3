"""Reliability: kill -9 during ingestion, readers during ingestion, and every bad input through the CLI.

A store must survive a writer killed at any moment (the earlier checkpoints intact, the killed one
absent or complete, never half), serve read-only readers while a writer ingests, and refuse bad
input with one ``t3vis: error:`` line, exit code 2 and not a byte changed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from helpers import run_cli, write_topic_csv
from t3vis.store.database import CHECKPOINT_TABLES, Store
from t3vis.fixtures.tiny_models import save_tiny_model

RUN = "r"
N_EXAMPLES = 15  # the topic CSV
BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _ingest_argv(model, data, store, checkpoint: str, *extra: str, run_id: str = RUN) -> list[str]:
    """`t3vis ingest` arguments: PCA of every layer, 4 batches of 4, head importance over all examples."""
    return ["ingest", "--model", str(model), "--data", str(data), "--store", str(store), "--run", run_id,
            "--checkpoint", checkpoint, "--projection", "pca", "--layers", "all", "--batch-size", "4",
            "--importance-examples", "-1", "--quiet", *extra]


_cli = run_cli


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _counts(store: Store, checkpoint: str) -> dict[str, int]:
    """Rows of one checkpoint in its row and in every results table."""
    counts = {"checkpoints": store.scalar("SELECT count(*) FROM checkpoints WHERE run_id = ? AND checkpoint = ?",
                                          [RUN, checkpoint])}
    for table in CHECKPOINT_TABLES:
        counts[table] = store.scalar(f"SELECT count(*) FROM {table} WHERE run_id = ? AND checkpoint = ?",
                                     [RUN, checkpoint])
    return counts


def _nothing_or_everything(store: Store, checkpoint: str, complete: dict[str, int]) -> str:
    """'nothing' or 'everything' of a checkpoint is visible; anything in between fails the test."""
    counts = _counts(store, checkpoint)
    if not any(counts.values()):
        return "nothing"
    assert counts == complete, f"a partial checkpoint {checkpoint!r} is visible: {counts}"
    return "everything"


def _assert_one_error_line(err: str, fragment: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("t3vis: error:")]
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


# -- fixtures: one tiny model, one data file, one store holding one complete checkpoint ------------------


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    return write_topic_csv(tmp_path_factory.mktemp("data") / "topics.csv")


@pytest.fixture(scope="module")
def base_store(tmp_path_factory, tiny_model_dir, data_csv):
    """(path, row counts) of a store holding one complete checkpoint 'first' of run 'r'; tests copy it."""
    path = tmp_path_factory.mktemp("base") / "base.duckdb"
    code, _, err = _cli(_ingest_argv(tiny_model_dir, data_csv, path, "first"))
    assert code == 0, err
    store = Store(path)
    counts = _counts(store, "first")
    assert counts["predictions"] == N_EXAMPLES and counts["projections"] == 3 * N_EXAMPLES  # embeddings + 2 layers
    assert counts["head_importance"] == counts["attention_patterns"] == 2 * 4
    assert not _wal(path).exists()
    return path, counts


def _copy_store(base_store, folder: Path, name: str = "store.duckdb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(base_store[0], folder / name))


# -- 1. kill -9 at several moments of an ingestion ------------------------------------------------------------

# Imports t3vis once, then runs each case in a forked child that SIGKILLs itself at its moment: the
# moments are hit exactly, and the heavy imports are paid once. The parent runs no torch code, so
# forking it is safe.
KILLER = textwrap.dedent("""
    import json, os, signal, sys, traceback
    import t3vis.cli, t3vis.data.loading, t3vis.record.ingest, t3vis.record.layouts
    import t3vis.model.access, t3vis.store.database

    def die():
        sys.stdout.flush(); sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def die_on_call(module, name, calls_before):
        original, calls = getattr(module, name), []
        def wrapper(*args, **kwargs):
            calls.append(name)
            if len(calls) > calls_before:
                die()
            return original(*args, **kwargs)
        setattr(module, name, wrapper)

    def arm(moment):
        Store = t3vis.store.database.Store
        if moment == "start":  # the store is opened, nothing loaded yet
            die_on_call(t3vis.data.loading, "load_examples", 0)
        elif moment == "forward":  # two of the four batches have run
            die_on_call(t3vis.record.ingest, "collate", 2)
        elif moment == "projection":  # one of the three layers is laid out
            die_on_call(t3vis.record.layouts, "project", 1)
        elif moment == "write":  # inside the write transaction: some tables inserted, not committed
            insert = Store._insert
            def insert_then_die(con, table, rows, **constants):
                insert(con, table, rows, **constants)
                if table == "attention_patterns":
                    die()
            Store._insert = staticmethod(insert_then_die)
        elif moment == "committed":  # right after the transaction committed
            write = Store.write_checkpoint
            def write_then_die(self, *args, **kwargs):
                write(self, *args, **kwargs)
                die()
            Store.write_checkpoint = write_then_die
        else:
            raise ValueError(moment)

    results = {}
    for case in json.loads(sys.argv[1]):
        pid = os.fork()
        if pid == 0:
            log = os.open(case["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            code = 3
            try:
                arm(case["moment"])
                code = t3vis.cli.run(case["argv"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush(); sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        results[case["name"]] = os.waitstatus_to_exitcode(status)
    print(json.dumps(results))
""")

MOMENTS = ("start", "forward", "projection", "write")
FIRST_WRITE_MOMENTS = ("projection", "write")  # a first-ever ingestion into a new path


@pytest.fixture(scope="module")
def killed(tmp_path_factory, tiny_model_dir, data_csv, base_store):
    """Every kill case, run once: name -> (exit code, store path, log file)."""
    root = tmp_path_factory.mktemp("killed")
    cases = []
    for moment in (*MOMENTS, "committed"):
        store = _copy_store(base_store, root / moment)
        cases.append({"name": moment, "moment": moment, "log": str(root / f"{moment}.log"),
                      "argv": _ingest_argv(tiny_model_dir, data_csv, store, "second")})
    for moment in FIRST_WRITE_MOMENTS:
        store = root / f"new-{moment}" / "sub" / "store.duckdb"
        cases.append({"name": f"new-{moment}", "moment": moment, "log": str(root / f"new-{moment}.log"),
                      "argv": _ingest_argv(tiny_model_dir, data_csv, store, "second")})
    result = subprocess.run([sys.executable, "-c", KILLER, json.dumps(cases)], capture_output=True, text=True,
                            timeout=240, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    return {case["name"]: (codes[case["name"]], Path(case["argv"][case["argv"].index("--store") + 1]),
                           Path(case["log"])) for case in cases}


def _killed_case(killed, name):
    code, store_path, log = killed[name]
    assert code == -signal.SIGKILL, f"the ingestion was not killed (exit {code}):\n{log.read_text()[-3000:]}"
    return store_path


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_killed_ingestion_leaves_the_store_as_it_was(killed, base_store, tiny_model_dir, data_csv, moment):
    store_path = _killed_case(killed, moment)
    store = Store(store_path)  # opens without error
    assert _counts(store, "first") == base_store[1]  # the earlier checkpoint is intact
    assert _nothing_or_everything(store, "second", base_store[1]) == "nothing"
    assert list(store.checkpoints(RUN).checkpoint) == ["first"]
    assert store.scalar("SELECT count(*) FROM examples") == N_EXAMPLES
    # and the store takes the same ingestion again
    code, out, err = _cli(_ingest_argv(tiny_model_dir, data_csv, store_path, "second"))
    assert code == 0, err
    assert "r/second [validation]: 15 examples" in out
    assert _counts(store, "second") == base_store[1]
    assert _counts(store, "first") == base_store[1]


def test_a_kill_just_after_the_commit_leaves_the_whole_checkpoint(killed, base_store):
    store = Store(_killed_case(killed, "committed"))
    assert _counts(store, "first") == base_store[1]
    assert _nothing_or_everything(store, "second", base_store[1]) == "everything"


def test_a_first_ingestion_killed_before_its_write_leaves_no_file(killed):
    store_path = _killed_case(killed, "new-projection")
    assert not store_path.exists() and not _wal(store_path).exists()
    assert not store_path.parent.parent.exists()  # not even the folders: they are made by the first write


def test_a_first_ingestion_killed_during_its_write_leaves_no_store_or_a_valid_one(killed, tiny_model_dir, data_csv):
    store_path = _killed_case(killed, "new-write")
    if store_path.exists():
        assert Store(store_path).runs().empty  # an empty store, not a file that blocks the path
    code, _, err = _cli(_ingest_argv(tiny_model_dir, data_csv, store_path, "second"))
    assert code == 0, err


def test_kill_9_of_the_ingest_command_while_it_writes(tmp_path, base_store, tiny_model_dir, data_csv):
    """The real console script, killed from outside as soon as its progress output shows the write phase."""
    store_path = _copy_store(base_store, tmp_path)
    argv = [a for a in _ingest_argv(tiny_model_dir, data_csv, store_path, "second") if a != "--quiet"]
    process = subprocess.Popen([str(BIN / "t3vis"), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=ENV)
    seen = bytearray()
    try:
        while b"write:" not in seen:
            chunk = os.read(process.stderr.fileno(), 65536)
            assert chunk, f"the ingestion ended before its write phase:\n{seen.decode(errors='replace')[-2000:]}"
            seen += chunk
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    store = Store(store_path)
    assert _counts(store, "first") == base_store[1]
    _nothing_or_everything(store, "second", base_store[1])
    code, _, err = _cli(_ingest_argv(tiny_model_dir, data_csv, store_path, "second"))
    assert code == 0, err
    assert _counts(store, "second") == base_store[1]


# -- 2. read-only readers while a writer ingests ------------------------------------------------------------------

READER = textwrap.dedent("""
    import csv, io, json, os, subprocess, sys, threading, time
    from t3vis.store.database import Store

    store_path, with_cli, stop_file, bin_dir = sys.argv[1], sys.argv[2] == "cli", sys.argv[3], sys.argv[4]
    complete = json.loads(sys.argv[5])
    QUERY = "SELECT c.checkpoint, " + ", ".join(
        f"(SELECT count(*) FROM {table} t WHERE t.run_id = c.run_id AND t.checkpoint = c.checkpoint) AS {table}"
        for table in complete) + " FROM checkpoints c"
    reads, errors, partial, seen = {"query": 0, "cli": 0}, [], [], {}

    def check(rows, how):
        reads[how] += 1
        seen[how] = sorted(row["checkpoint"] for row in rows)
        for row in rows:
            if {name: int(row[name]) for name in complete} != complete:
                partial.append({name: str(value) for name, value in row.items()})

    def cli_reads():  # `t3vis sql` at least twice, and on while the writer works
        while reads["cli"] < 2 or not os.path.exists(stop_file):
            result = subprocess.run([os.path.join(bin_dir, "t3vis"), "sql", QUERY, "--store", store_path, "--csv"],
                                    capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                errors.append(f"t3vis sql exited {result.returncode}: {result.stderr[-1000:]}")
                return
            check(list(csv.DictReader(io.StringIO(result.stdout))), "cli")

    cli = threading.Thread(target=cli_reads)
    if with_cli:
        cli.start()
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        stop = os.path.exists(stop_file)  # read once more after the writer ended
        try:
            check(Store(store_path).query(QUERY).to_dict("records"), "query")
        except Exception as error:  # any error reaching a reader fails the test
            errors.append(repr(error))
        if stop:
            break
        time.sleep(0.1)  # leave the two shared cores mostly to the writer
    if with_cli:
        cli.join()
    print(json.dumps({"reads": reads, "errors": errors, "partial": partial, "seen": seen}))
""")


def test_readers_never_fail_while_a_writer_ingests(tmp_path, base_store, tiny_model_dir, data_csv):
    """Two reader processes query in a loop (one also runs `t3vis sql`) while `t3vis ingest-dir` writes 3
    checkpoints: no reader ever gets an error or sees part of a checkpoint."""
    store_path = _copy_store(base_store, tmp_path)
    output_dir = tmp_path / "live"  # a Trainer output_dir: three checkpoints (the same weights)
    output_dir.mkdir()
    for step in (1, 2, 3):
        (output_dir / f"checkpoint-{step}").symlink_to(tiny_model_dir, target_is_directory=True)
    stop_file = tmp_path / "writer-done"
    complete = {table: base_store[1][table] for table in CHECKPOINT_TABLES}
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(store_path), mode, str(stop_file), str(BIN),
                                 json.dumps(complete)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV)
               for mode in ("query", "cli")]
    try:
        writer = subprocess.run(
            [str(BIN / "t3vis"), "ingest-dir", str(output_dir), "--data", str(data_csv), "--store", str(store_path),
             "--projection", "pca", "--layers", "all", "--batch-size", "4", "--importance-examples", "-1", "--quiet"],
            capture_output=True, text=True, timeout=200, env=ENV)
    finally:
        stop_file.touch()
        outputs = [reader.communicate(timeout=200) for reader in readers]
    assert writer.returncode == 0, writer.stderr[-3000:]
    reports = []
    for reader, (out, err) in zip(readers, outputs):
        assert reader.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    every = ["checkpoint-1", "checkpoint-2", "checkpoint-3", "first"]
    for report in reports:
        assert report["errors"] == [], report
        assert report["partial"] == [], report
        assert report["seen"]["query"] == every, report  # the read after the writer ended
        assert report["reads"]["query"] > 10, f"the readers kept querying while the writer worked: {reports}"
    assert reports[1]["reads"]["cli"] >= 2, reports
    assert list(Store(store_path).checkpoints("live").checkpoint) == every[:3]


# -- 3. bad input through the CLI: exit 2, a message naming the problem, the store unchanged ----------------------


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Checkpoint folders that cannot be used, each a variant of the tiny model."""
    root = tmp_path_factory.mktemp("broken-models")
    models = {"too small for the tokenizer": save_tiny_model(root / "vocab-1000", "bert", num_labels=3,
                                                             vocab_size=1000)}
    no_tokenizer = Path(shutil.copytree(tiny_model_dir, root / "no-tokenizer"))
    for file in no_tokenizer.iterdir():
        if file.name not in ("config.json", "model.safetensors"):
            file.unlink()
    models["no tokenizer"] = no_tokenizer
    truncated = Path(shutil.copytree(tiny_model_dir, root / "truncated-weights"))
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    models["truncated weights"] = truncated
    corrupt = Path(shutil.copytree(tiny_model_dir, root / "corrupt-tokenizer"))
    tokenizer = corrupt / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text(encoding="utf-8")[:5000], encoding="utf-8")
    models["corrupt tokenizer.json"] = corrupt
    for name, content in (("binary", b"\xff\xfe\x00garbage"), ("list", b"[1, 2]")):
        folder = Path(shutil.copytree(tiny_model_dir, root / f"{name}-trainer-state"))
        (folder / "trainer_state.json").write_bytes(content)
        models[f"{name} trainer_state.json"] = folder
    return models


def _rows_csv(path: Path, rows: list[tuple[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _five_topics(path: Path) -> Path:
    return _rows_csv(path, [(f"sentence number {i}", f"topic-{i % 5}") for i in range(10)])


# name -> (build(tmp_path, data_csv, broken_models) -> (model or None for the tiny one, data, extra args), message)
BAD_INGEST_INPUTS = {
    "wrong --text-column": (lambda tmp, data, models: (None, data, ["--text-column", "txet"]),
                            "has no column 'txet'. Did you mean 'text'"),
    "wrong --label-column": (lambda tmp, data, models: (None, data, ["--label-column", "topic"]),
                             "has no column 'topic'"),
    "5 label names for a 3-label model": (lambda tmp, data, models: (None, _five_topics(tmp / "five.csv"), []),
                                          "labels out of range: the data has label ids [3, 4] but the model has 3"),
    "label ids beyond the model's labels": (
        lambda tmp, data, models: (None, _rows_csv(tmp / "ids.csv", [(f"sentence {i}", i % 5) for i in range(10)]),
                                   []),
        "labels out of range: the data has label ids [3, 4]"),
    "empty file": (lambda tmp, data, models: (None, _written(tmp / "empty.csv", b""), []), "is empty (0 bytes)"),
    "header only": (lambda tmp, data, models: (None, _written(tmp / "header.csv", b"text,label\n"), []),
                    "contains no rows"),
    "latin-1 bytes read as utf-8": (
        lambda tmp, data, models: (None, _written(tmp / "latin1.csv", "text,label\ncafé crème,a\n".encode("latin-1")),
                                   []),
        "is not valid utf-8: byte 0xE9"),
    "tokenizer larger than the embeddings": (
        lambda tmp, data, models: (models["too small for the tokenizer"], data, []),
        "has 1000 token embeddings: the checkpoint does not match this tokenizer"),
    "checkpoint without tokenizer files": (lambda tmp, data, models: (models["no tokenizer"], data, []),
                                           "has no tokenizer files"),
    "truncated model.safetensors": (lambda tmp, data, models: (models["truncated weights"], data, []),
                                    "model.safetensors is truncated or corrupt"),
    "corrupt tokenizer.json": (lambda tmp, data, models: (models["corrupt tokenizer.json"], data, []),
                               "Cannot read the tokenizer files"),
    "undecodable trainer_state.json": (lambda tmp, data, models: (models["binary trainer_state.json"], data, []),
                                       "trainer_state.json is not readable JSON"),
    "trainer_state.json not an object": (lambda tmp, data, models: (models["list trainer_state.json"], data, []),
                                         "trainer_state.json is not a Trainer state"),
    "--limit 0": (lambda tmp, data, models: (None, data, ["--limit", "0"]), "--limit must be at least 1"),
    "--limit -1": (lambda tmp, data, models: (None, data, ["--limit", "-1"]), "--limit must be at least 1"),
}


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("target", ["existing store", "new store"])
@pytest.mark.parametrize("case", list(BAD_INGEST_INPUTS))
def test_bad_ingest_input_is_refused_and_changes_nothing(tmp_path, base_store, tiny_model_dir, data_csv,
                                                         broken_models, case, target):
    build, message = BAD_INGEST_INPUTS[case]
    model, data, extra = build(tmp_path, data_csv, broken_models)
    if target == "existing store":
        store_path = _copy_store(base_store, tmp_path / "stores")
        before = _sha256(store_path)
    else:
        store_path = tmp_path / "stores" / "new" / "store.duckdb"
    code, _, err = _cli(_ingest_argv(model or tiny_model_dir, data, store_path, "second", *extra))
    assert code == 2
    _assert_one_error_line(err, message)
    assert not _wal(store_path).exists()
    if target == "existing store":
        assert _sha256(store_path) == before
        assert sorted(p.name for p in store_path.parent.iterdir()) == [store_path.name]
    else:
        assert not store_path.exists() and not store_path.parent.exists()


def test_more_label_names_than_the_model_has_labels_is_named(tmp_path, base_store, tiny_model_dir, data_csv):
    store_path = _copy_store(base_store, tmp_path)
    before = _sha256(store_path)
    code, _, err = _cli(_ingest_argv(tiny_model_dir, _five_topics(tmp_path / "five.csv"), store_path, "second",
                                     "--label-names", ",".join(f"topic-{i}" for i in range(5))))
    assert code == 2 and _sha256(store_path) == before
    _assert_one_error_line(err, "3 labels")
    assert "5" in err.splitlines()[-1] and "report" not in err


def test_a_text_longer_than_the_model_limit_is_truncated_and_reported(tmp_path, base_store, tiny_model_dir):
    store_path = _copy_store(base_store, tmp_path)
    data = _rows_csv(tmp_path / "long.csv", [("word " * 400, "sports"), ("a short one", "business")])
    code, out, err = _cli(_ingest_argv(tiny_model_dir, data, store_path, "long", run_id="long"))
    assert code == 0, err
    assert "2 examples, 1 truncated to 128 tokens" in out  # max_position_embeddings of the tiny model
    rows = Store(store_path).query("SELECT text, n_tokens, n_tokens_full, truncated FROM examples "
                                   "WHERE run_id = 'long' ORDER BY example_id")
    assert list(rows.truncated) == [True, False]
    assert rows.n_tokens[0] == 128 and rows.n_tokens_full[0] > 400
    assert rows.n_tokens[1] == rows.n_tokens_full[1]


def _other_schema_version(tmp_path, base_store) -> Path:
    path = _copy_store(base_store, tmp_path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE t3vis_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    return path


def _duckdb_not_a_store(tmp_path, base_store) -> Path:
    path = tmp_path / "analysis.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE measurements AS SELECT range AS x FROM range(100)")
    con.close()
    return path


# name -> (make the store path, message, whether the file exists (and must stay byte-identical))
BAD_STORES = {
    "another schema version": (_other_schema_version, "written with store schema version 99", True),
    "a non-DuckDB file named *lock*": (lambda tmp, base: _written(tmp / "lock-held.duckdb", b"not a database\n" * 200),
                                       "is not a DuckDB database", True),
    "a DuckDB file that is not a store": (_duckdb_not_a_store, "is a DuckDB file but not a t3vis store", True),
    "a path whose parent is a file": (lambda tmp, base: _written(tmp / "a-file", b"x") / "store.duckdb",
                                      "is a file, not a folder", False),
    "a missing store": (lambda tmp, base: tmp / "missing" / "store.duckdb", "No t3vis store at", False),
}


@pytest.mark.parametrize(("case", "command"), [(case, command) for case in BAD_STORES for command in
                                               ("ingest", "info", "sql")
                                               if (case, command) != ("a missing store", "ingest")])  # it creates one
def test_a_bad_store_path_is_refused_at_once_and_changes_nothing(tmp_path, base_store, tiny_model_dir, data_csv,
                                                                 case, command):
    make, message, exists = BAD_STORES[case]
    if case == "a path whose parent is a file" and command != "ingest":
        message = "No t3vis store at"  # reading never creates anything
    store_path = make(tmp_path, base_store)
    before = _sha256(store_path) if exists else None
    listing = sorted(p.name for p in tmp_path.iterdir())
    argv = {"ingest": _ingest_argv(tiny_model_dir, data_csv, store_path, "second"),
            "info": ["info", "--store", str(store_path)],
            "sql": ["sql", "SELECT count(*) FROM checkpoints", "--store", str(store_path)]}[command]
    started = time.monotonic()
    code, _, err = _cli(argv)
    assert time.monotonic() - started < 5, "refused at once, not after the 60 s lock timeout"
    assert code == 2
    _assert_one_error_line(err, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no file, no folder, no .wal
    if exists:
        assert _sha256(store_path) == before
    else:
        assert not store_path.exists()


def test_the_console_script_reports_a_missing_store_in_one_line(tmp_path):
    """The installed `t3vis` itself: exit code 2, one line on stderr, nothing created (`info` is checked in-process)."""
    store_path = tmp_path / "none" / "store.duckdb"
    result = subprocess.run([str(BIN / "t3vis"), "sql", "SELECT 1", "--store", str(store_path)], capture_output=True,
                            text=True, timeout=120, env=ENV)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"t3vis: error: No t3vis store at {store_path}. Create one with `t3vis ingest ... --store {store_path}` "
        "or `t3vis demo`."]
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []
