"""The read-only SQL console: example queries, hostile statements refused, limits, CLI and page."""

from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager

import pytest

from helpers import PROJECT, write_topic_csv
from page_helpers import open_page
from t3vis.cli import run as run_cli
from t3vis.data.loading import load_examples
from t3vis.queries.example_queries import EXAMPLE_QUERIES
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.queries.sql_console import (DEFAULT_MAX_BYTES, QueryRefused, check_query, run_query,
                               schema_description)
from t3vis.store.database import Store
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

# Statements the console must refuse, each with a piece of the message that says why.
ONLY_SELECT, ONE, FILES, HIDDEN = "Only SELECT", "one statement", "Permission", "inside it"
HOSTILE = [
    # writes and DDL
    ("DROP TABLE runs", ONLY_SELECT),
    ("DELETE FROM examples", ONLY_SELECT),
    ("INSERT INTO runs (run_id) VALUES ('x')", ONLY_SELECT),
    ("INSERT INTO runs SELECT * FROM runs RETURNING *", ONLY_SELECT),
    ("UPDATE predictions SET loss = 0", ONLY_SELECT),
    ("TRUNCATE examples", ONLY_SELECT),
    ("ALTER TABLE runs ADD COLUMN x INT", ONLY_SELECT),
    ("CREATE TABLE stolen AS SELECT * FROM examples", ONLY_SELECT),
    ("CREATE TEMP TABLE t AS SELECT 1", ONLY_SELECT),
    ("CREATE VIEW v AS SELECT 1", ONLY_SELECT),
    ("CREATE MACRO m(x) AS x + 1", ONLY_SELECT),
    ("CREATE SEQUENCE s", ONLY_SELECT),
    ("CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')", ONLY_SELECT),
    # data-modifying CTEs and subqueries: DuckDB's parser calls these SELECT statements
    ("WITH x AS (DELETE FROM runs RETURNING *) SELECT * FROM x", HIDDEN),
    ("WITH x AS (INSERT INTO runs (run_id) VALUES ('x') RETURNING *) SELECT * FROM x", HIDDEN),
    ("WITH x AS (UPDATE predictions SET loss = 0 RETURNING loss) SELECT count(*) FROM x", HIDDEN),
    ("SELECT * FROM (WITH x AS (DELETE FROM examples RETURNING *) SELECT * FROM x)", HIDDEN),
    ("SELECT (WITH x AS (DELETE FROM runs RETURNING 1) SELECT count(*) FROM x)", HIDDEN),
    ("SELECT * FROM runs WHERE run_id IN (WITH x AS (UPDATE runs SET task = 'x' RETURNING run_id) "
     "SELECT run_id FROM x)", HIDDEN),
    ("WITH x AS (COPY (SELECT 1) TO '/tmp/t3vis-x.csv') SELECT * FROM x", HIDDEN),
    ("SELECT * FROM query('DELETE FROM runs RETURNING *')", "query() table function"),
    # other databases and files
    ("ATTACH '/tmp/other.duckdb' AS other", ONLY_SELECT),
    ("ATTACH ':memory:' AS m", ONLY_SELECT),
    ("DETACH t3vis", ONLY_SELECT),
    ("USE memory", ONLY_SELECT),
    ("COPY examples TO '/tmp/t3vis-examples.csv'", ONLY_SELECT),
    ("COPY runs FROM '/etc/passwd'", ONLY_SELECT),
    ("EXPORT DATABASE '/tmp/t3vis-export'", ONLY_SELECT),
    ("IMPORT DATABASE '/tmp/t3vis-export'", ONLY_SELECT),
    ("SELECT * FROM read_csv('/etc/passwd')", FILES),
    ("SELECT * FROM read_text('/etc/passwd')", FILES),
    ("SELECT * FROM read_blob('/etc/passwd')", FILES),
    ("SELECT * FROM read_json('/etc/passwd')", FILES),
    ("SELECT * FROM read_parquet('/tmp/*.parquet')", FILES),
    ("SELECT * FROM glob('/etc/*')", FILES),
    ("SELECT * FROM sniff_csv('/etc/passwd')", FILES),
    ("SELECT * FROM read_csv('https://example.com/x.csv')", FILES),
    ("SELECT * FROM '/etc/passwd'", "does not exist"),
    ("SELECT getenv('HOME')", "does not exist"),
    # extensions, settings, maintenance, transactions
    ("INSTALL httpfs", ONLY_SELECT),
    ("LOAD httpfs", ONLY_SELECT),
    ("PRAGMA enable_profiling", ONLY_SELECT),
    ("PRAGMA memory_limit = '100GB'", ONLY_SELECT),
    ("SET enable_external_access = true", ONLY_SELECT),
    ("SET memory_limit = '100GB'", ONLY_SELECT),
    ("SET GLOBAL lock_configuration = false", ONLY_SELECT),
    ("RESET threads", ONLY_SELECT),
    ("SET VARIABLE x = 1", ONLY_SELECT),
    ("CALL pragma_version()", ONLY_SELECT),
    ("CHECKPOINT", ONLY_SELECT),
    ("VACUUM", ONLY_SELECT),
    ("BEGIN TRANSACTION", ONLY_SELECT),
    ("PREPARE p AS SELECT 1", ONLY_SELECT),
    # more than one statement
    ("SELECT 1; DROP TABLE runs", ONE),
    ("SELECT 1; SELECT 2", ONE),
]

# Queries that would take too long or too much memory, with the limits they run under and the refusal.
SPILL_OFF = {"memory_limit": "100MB", "temp_limit": "0B"}
RESOURCE_HUNGRY = [
    ("SELECT count(*) FROM range(100000000000) a", {"timeout": 0.5}, "longer than 0.5 s"),
    ("SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = -1", {"timeout": 0.5},
     "longer than"),
    ("SELECT list(repeat('x', 100)) FROM range(20000000)", SPILL_OFF, "more than 100MB of memory"),
    ("SELECT string_agg(repeat('x', 1000), '') FROM range(2000000)", SPILL_OFF, "more than 100MB of memory"),
    ("SELECT * FROM range(5000000) ORDER BY hash(range)", {"memory_limit": "30MB", "temp_limit": "10MB"},
     "10MB of spill files"),
]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _untouched(store: Store):
    """Assert that what runs inside leaves the store's bytes and its folder's files as they were."""
    before = _digest(store.path), sorted(p.name for p in store.path.parent.iterdir())
    yield
    assert not store.path.with_name(store.path.name + ".wal").exists()
    assert (_digest(store.path), sorted(p.name for p in store.path.parent.iterdir())) == before
    assert store.scalar("SELECT count(*) FROM runs") == 1


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return build_synthetic_store(tmp_path_factory.mktemp("sql") / "s.duckdb", SyntheticConfig(n_examples=120,
                                                                                              n_train=80))


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, tiny_bundle):
    folder = tmp_path_factory.mktemp("sql-tiny")
    write_topic_csv(folder / "topics.csv")
    store = Store(folder / "tiny.duckdb", create=True)
    examples = load_examples(folder / "topics.csv")
    for step in (1, 2):
        ingest_checkpoint(store, tiny_bundle, examples, run_id="tiny", checkpoint=f"c{step}", step=step,
                          config=IngestConfig(projection="none", batch_size=4))
    return store


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    from t3vis.fixtures.summarization_store import build_summarization_store

    return build_summarization_store(tmp_path_factory.mktemp("summaries") / "bertsum.duckdb")


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    from t3vis.fixtures.tagging_store import build_tagging_store

    return build_tagging_store(tmp_path_factory.mktemp("tagged") / "ner.duckdb")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from t3vis.fixtures.generation_store import build_generation_store

    return build_generation_store(tmp_path_factory.mktemp("generated") / "arithmetic.duckdb")


@pytest.mark.parametrize("query", EXAMPLE_QUERIES, ids=lambda q: q.title)
def test_every_example_query_returns_its_documented_columns(synthetic, tiny_store, summaries, tagged, generated,
                                                            query):
    for store in (synthetic, tiny_store, summaries, tagged, generated):
        result = run_query(store, query.sql)
        assert list(result.frame.columns) == list(query.columns)
    # a store with every kind of row the query reads: the synthetic one, or a trained summarizer's, tagger's or
    # language model's
    store = {"extractive-summarization": summaries, "token-classification": tagged,
             "generation": generated}.get(query.task, synthetic)
    assert len(run_query(store, query.sql).frame) > 0


def test_the_flip_query_finds_exactly_the_examples_that_turned_wrong(synthetic):
    query = next(q for q in EXAMPLE_QUERIES if q.title.startswith("Examples right"))
    found = run_query(synthetic, query.sql.replace("LIMIT 500", "")).frame
    by_hand = synthetic.query(
        """SELECT a.example_id, a.checkpoint FROM predictions a JOIN predictions b USING (run_id, split, example_id)
           WHERE (a.checkpoint, b.checkpoint) IN (('epoch-1', 'epoch-2'), ('epoch-2', 'epoch-3'))
             AND a.correct AND NOT b.correct""")
    assert sorted(zip(found.example_id, found.right_at)) == sorted(zip(by_hand.example_id, by_hand.checkpoint))


@pytest.mark.parametrize(("statement", "why"), HOSTILE, ids=[sql for sql, _ in HOSTILE])
def test_hostile_statements_are_refused_and_the_store_is_byte_identical(synthetic, statement, why):
    with _untouched(synthetic), pytest.raises(QueryRefused, match=re.escape(why)) as refused:
        run_query(synthetic, statement)
    assert "Traceback" not in str(refused.value)


@pytest.mark.parametrize(("statement", "limits", "why"), RESOURCE_HUNGRY, ids=[sql for sql, *_ in RESOURCE_HUNGRY])
def test_slow_and_memory_hungry_queries_are_stopped(synthetic, statement, limits, why):
    with _untouched(synthetic), pytest.raises(QueryRefused, match=re.escape(why)):
        run_query(synthetic, statement, **limits)


def test_at_least_forty_hostile_statements_are_tried():
    assert len(HOSTILE) + len(RESOURCE_HUNGRY) >= 40


def test_data_modifying_ctes_are_refused_before_anything_runs():
    for sql in [statement for statement, why in HOSTILE if why == HIDDEN]:
        with pytest.raises(QueryRefused, match="inside it"):
            check_query(sql)


@pytest.mark.parametrize("sql", [
    "SELECT 'DELETE FROM runs' AS text, 'DELETE_QUERY_NODE' AS type",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t",
    "WITH c AS MATERIALIZED (SELECT run_id FROM runs) SELECT * FROM c",
    "SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3",
    "FROM runs SELECT run_id",
    "SELECT * FROM examples WHERE example_id IN (SELECT example_id FROM predictions WHERE NOT correct)",
    "UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME name VALUE value",
    "SUMMARIZE runs",
    "DESCRIBE predictions",
])
def test_read_only_queries_pass_the_check_and_run(synthetic, sql):
    with _untouched(synthetic):
        assert len(run_query(synthetic, sql).frame) > 0


def test_pivot_runs_with_its_values_listed_and_is_explained_without(synthetic):
    listed = run_query(synthetic, "PIVOT predictions ON correct IN (true, false) USING count(*) GROUP BY checkpoint")
    assert list(listed.frame.columns) == ["checkpoint", "true", "false"] and len(listed.frame) == 3
    assert (listed.frame["true"] + listed.frame["false"] == 120).all()
    standard = run_query(synthetic, "SELECT * FROM predictions PIVOT (count(*) FOR correct IN (true, false) "
                                    "GROUP BY checkpoint)")
    assert standard.frame.sort_values("checkpoint").values.tolist() == \
        listed.frame.sort_values("checkpoint").values.tolist()
    for sql in ("PIVOT predictions ON correct USING count(*)",
                "SELECT * FROM (PIVOT predictions ON pred USING count(*))"):
        with pytest.raises(QueryRefused, match="PIVOT without an IN list is not supported in the console"):
            run_query(synthetic, sql)


def test_bad_queries_get_readable_messages(synthetic):
    for sql, expected in [("", "empty"), ("SELEC 1", "parse"), ("SELECT nope FROM runs", "nope")]:
        with pytest.raises(QueryRefused, match=expected):
            run_query(synthetic, sql)


def test_long_queries_are_stopped_and_results_are_capped(synthetic):
    with pytest.raises(QueryRefused, match="longer than"):
        run_query(synthetic, "SELECT count(*) FROM range(100000000000) a", timeout=0.5)
    result = run_query(synthetic, "SELECT * FROM range(100)", max_rows=10)
    assert len(result.frame) == 10 and result.truncated and "cut" in result.notice and "10 rows" in result.cut
    exact = run_query(synthetic, "SELECT * FROM range(10)", max_rows=10)
    assert len(exact.frame) == 10 and not exact.truncated and "cut" not in exact.notice
    assert check_query("FROM runs;") == "FROM runs"


def test_huge_results_are_cut_by_bytes_not_only_rows(synthetic):
    with _untouched(synthetic):
        result = run_query(synthetic, "SELECT repeat('x', 1000000) AS s FROM range(500)")
    assert result.truncated and "50 MB" in result.cut and "50 MB" in result.notice
    kept = int(result.frame.s.str.len().sum())
    assert DEFAULT_MAX_BYTES - 1_000_000 - 10_000 < kept <= DEFAULT_MAX_BYTES  # as many whole 1 MB rows as fit
    small = run_query(synthetic, "SELECT range, range::VARCHAR AS text FROM range(1000000)", max_rows=10**9,
                      max_bytes=1_000_000)
    assert small.truncated and "1 MB" in small.cut and 10_000 < len(small.frame) < 100_000
    assert small.frame.range.tolist() == list(range(len(small.frame)))  # the first rows, in order


def test_a_query_may_spill_to_disk_within_its_limit_and_leaves_no_files(synthetic):
    with _untouched(synthetic):
        result = run_query(synthetic, "SELECT * FROM range(2000000) ORDER BY hash(range)", max_rows=5,
                           memory_limit="30MB", temp_limit="1GB")
    assert len(result.frame) == 5


def test_the_frame_keeps_lists_and_repeated_names(synthetic):
    frame = run_query(synthetic, "SELECT 1 AS a, 2 AS a, [1, 2] AS l, 'x' AS s").frame
    assert list(frame.columns) == ["a", "a", "l", "s"] and frame.iloc[0].tolist() == [1, 2, [1, 2], "x"]
    assert list(run_query(synthetic, "SELECT 1 AS a WHERE false").frame.columns) == ["a"]


@pytest.mark.parametrize(("option", "value"), [("max_rows", 0), ("max_bytes", -1), ("timeout", 0), ("threads", 0),
                                               ("memory_limit", "lots"), ("temp_limit", 5)])
def test_bad_limits_name_the_parameter(synthetic, option, value):
    with pytest.raises(ValueError, match=option):
        run_query(synthetic, "SELECT 1", **{option: value})


def test_the_schema_browser_describes_every_table_and_view(synthetic):
    schema = schema_description(synthetic)
    assert {"runs", "checkpoints", "examples", "predictions", "projections", "head_importance",
            "attention_patterns", "training_dynamics", "data_map"} <= set(schema.object)
    assert set(schema[schema.object == "data_map"].kind) == {"table"}  # materialised since schema version 5
    assert set(schema[schema.object == "entity_spans"].kind) == {"view"}
    described = schema[schema.object != "t3vis_meta"]
    assert (described.description != "").all(), described[described.description == ""][["object", "column"]]


def test_cli_prints_a_table_or_csv_and_refuses_writes(synthetic, capsys):
    assert run_cli(["sql", "SELECT checkpoint, step FROM checkpoints ORDER BY step", "--store", str(synthetic.path),
                    "--csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["checkpoint,step", "epoch-1,100", "epoch-2,200", "epoch-3,300"]
    assert run_cli(["sql", "SELECT region, count(*) AS n FROM data_map GROUP BY ALL", "--store",
                    str(synthetic.path)]) == 0
    assert "region" in capsys.readouterr().out
    before = _digest(synthetic.path)
    assert run_cli(["sql", "DELETE FROM runs", "--store", str(synthetic.path)]) == 2
    assert "Only SELECT" in capsys.readouterr().err
    assert _digest(synthetic.path) == before


@pytest.mark.parametrize(("argv", "why"), [
    (["WITH x AS (DELETE FROM runs RETURNING *) SELECT * FROM x"], HIDDEN),
    (["SELECT * FROM read_text('/etc/passwd')"], FILES),
    (["ATTACH '/tmp/other.duckdb' AS other"], ONLY_SELECT),
    (["SELECT 1; DROP TABLE runs"], ONE),
    (["PIVOT predictions ON pred USING count(*)"], "PIVOT without an IN list"),
    (["SELECT count(*) FROM range(100000000000) a", "--timeout", "0.5"], "longer than 0.5 s"),
], ids=["cte-delete", "read-text", "attach", "two-statements", "pivot", "slow"])
def test_cli_refuses_hostile_statements_with_exit_code_2(synthetic, capsys, argv, why):
    with _untouched(synthetic):
        assert run_cli(["sql", *argv, "--store", str(synthetic.path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and why in captured.err and captured.err.startswith("t3vis: error:")


@pytest.mark.app  # a page test kept beside the console it shows
def test_the_page_shows_rows_and_errors(synthetic):
    page = str(PROJECT / "pages" / "sql.py")
    app = open_page(page, synthetic.path)
    app.text_area(key="sql_text").set_value("SELECT example_id, loss FROM predictions WHERE checkpoint = 'epoch-1'")
    app.button[0].click().run()
    assert not app.exception
    assert len(app.dataframe[-1].value) == 120 and "120 rows" in app.caption[-1].value
    app.text_area(key="sql_text").set_value("DROP TABLE runs").run()
    app.button[0].click().run()
    assert not app.exception and "Only SELECT" in app.error[0].value
    app.selectbox(key="sql_example").set_value("Data Map regions").run()
    assert "data_map" in app.text_area(key="sql_text").value
    app.button[0].click().run()
    assert set(app.dataframe[-1].value.region) == {"easy-to-learn", "ambiguous", "hard-to-learn", "other"}
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == labels.count("PNG") == 1  # the result's chart exports as a figure
