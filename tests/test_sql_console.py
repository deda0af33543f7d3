"""The read-only SQL console: example queries, hostile statements refused, limits, CLI and page."""

from __future__ import annotations

import hashlib

import pytest

from conftest import PROJECT, write_topic_csv
from page_helpers import open_page
from t3vis.cli import run as run_cli
from t3vis.data_loading import load_examples
from t3vis.example_queries import EXAMPLE_QUERIES
from t3vis.ingest import IngestConfig, ingest_checkpoint
from t3vis.sql_console import QueryRefused, check_query, run_query, schema_description
from t3vis.store import Store
from t3vis.synthetic_store import SyntheticConfig, build_synthetic_store

HOSTILE = [
    "DROP TABLE runs",
    "DELETE FROM examples",
    "INSERT INTO runs (run_id) VALUES ('x')",
    "UPDATE predictions SET loss = 0",
    "CREATE TABLE stolen AS SELECT * FROM examples",
    "CREATE TEMP TABLE t AS SELECT 1",
    "ATTACH '/tmp/other.duckdb' AS other",
    "COPY examples TO '/tmp/examples.csv'",
    "EXPORT DATABASE '/tmp/export'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true",
    "SET memory_limit = '1GB'",
    "CALL pragma_version()",
    "SELECT 1; DROP TABLE runs",
    "SELECT 1; SELECT 2",
    "CHECKPOINT",
    "DETACH t3vis",
]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return build_synthetic_store(tmp_path_factory.mktemp("sql") / "s.duckdb", SyntheticConfig(n_examples=120,
                                                                                              n_train=80))


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, tiny_bundle):
    folder = tmp_path_factory.mktemp("sql-tiny")
    write_topic_csv(folder / "topics.csv")
    store = Store(folder / "tiny.duckdb")
    examples = load_examples(folder / "topics.csv")
    for step in (1, 2):
        ingest_checkpoint(store, tiny_bundle, examples, run_id="tiny", checkpoint=f"c{step}", step=step,
                          config=IngestConfig(projection="none", batch_size=4))
    return store


@pytest.mark.parametrize("query", EXAMPLE_QUERIES, ids=lambda q: q.title)
def test_every_example_query_returns_its_documented_columns(synthetic, tiny_store, query):
    for store in (synthetic, tiny_store):
        result = run_query(store, query.sql)
        assert list(result.frame.columns) == list(query.columns)
    assert len(run_query(synthetic, query.sql).frame) > 0  # the synthetic store has every kind of row


def test_the_flip_query_finds_exactly_the_examples_that_turned_wrong(synthetic):
    query = next(q for q in EXAMPLE_QUERIES if q.title.startswith("Examples right"))
    found = run_query(synthetic, query.sql.replace("LIMIT 500", "")).frame
    by_hand = synthetic.query(
        """SELECT a.example_id, a.checkpoint FROM predictions a JOIN predictions b USING (run_id, split, example_id)
           WHERE (a.checkpoint, b.checkpoint) IN (('epoch-1', 'epoch-2'), ('epoch-2', 'epoch-3'))
             AND a.correct AND NOT b.correct""")
    assert sorted(zip(found.example_id, found.right_at)) == sorted(zip(by_hand.example_id, by_hand.checkpoint))


@pytest.mark.parametrize("statement", HOSTILE)
def test_hostile_statements_are_refused_and_the_store_is_byte_identical(synthetic, statement):
    before = _digest(synthetic.path)
    with pytest.raises(QueryRefused) as refused:
        run_query(synthetic, statement)
    message = str(refused.value)
    assert message and "Traceback" not in message
    assert any(word in message for word in ("Only SELECT", "one statement", "Permission", "off limits"))
    assert _digest(synthetic.path) == before
    assert synthetic.scalar("SELECT count(*) FROM runs") == 1


def test_bad_queries_get_readable_messages(synthetic):
    for sql, expected in [("", "empty"), ("SELEC 1", "parse"), ("SELECT nope FROM runs", "nope")]:
        with pytest.raises(QueryRefused, match=expected):
            run_query(synthetic, sql)


def test_long_queries_are_stopped_and_results_are_capped(synthetic):
    with pytest.raises(QueryRefused, match="longer than"):
        run_query(synthetic, "SELECT count(*) FROM range(100000000000) a", timeout=0.5)
    result = run_query(synthetic, "SELECT * FROM range(100)", max_rows=10)
    assert len(result.frame) == 10 and result.truncated and "cut" in result.notice
    assert check_query("FROM runs;") == "FROM runs"


def test_the_schema_browser_describes_every_table_and_view(synthetic):
    schema = schema_description(synthetic)
    assert {"runs", "checkpoints", "examples", "predictions", "projections", "head_importance",
            "attention_patterns", "training_dynamics", "data_map"} <= set(schema.object)
    assert set(schema[schema.object == "data_map"].kind) == {"view"}
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
