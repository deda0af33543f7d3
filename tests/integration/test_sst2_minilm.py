"""The real thing: `t3vis ingest` of the pretrained MiniLM over SST-2's validation split."""

from __future__ import annotations

import re

import pytest

from helpers import PROJECT, shared_file
from t3vis.cli import run
from t3vis.store.database import Store
from t3vis.model.pretrained import minilm_path


@pytest.fixture(scope="module")
def sst2_store(tmp_path_factory):
    data = shared_file("sst2_dev.tsv")
    path = tmp_path_factory.mktemp("sst2") / "sst2.duckdb"
    code = run(["ingest", "--model", str(minilm_path()), "--data", str(data), "--store", str(path),
                "--run", "minilm-sst2", "--checkpoint", "pretrained", "--step", "0", "--layers", "3,6", "--quiet"])
    assert code == 0
    return Store(path, create=False)


@pytest.mark.slow
def test_one_row_per_example_checkpoint_and_layer(sst2_store):
    assert sst2_store.scalar("SELECT count(*) FROM examples") == 872
    assert sst2_store.scalar("SELECT count(*) FROM predictions") == 872
    per_layer = sst2_store.query("SELECT layer, count(*) AS n FROM projections GROUP BY layer ORDER BY layer")
    assert per_layer.layer.tolist() == [3, 6] and (per_layer.n == 872).all()
    shape = sst2_store.query("SELECT count(DISTINCT layer) AS l, count(DISTINCT head) AS h, count(*) AS n "
                             "FROM head_importance")
    assert shape.iloc[0].tolist() == [6, 12, 72]
    assert sst2_store.scalar("SELECT count(*) FROM attention_patterns WHERE len(pattern) = bins * bins") == 72
    # the pretrained MiniLM has a previous-token head (layer 0) and heads that look mostly at [CLS]
    stats = sst2_store.query("SELECT max(attn_cls) AS cls, max(attn_sep) AS sep, max(attn_prev) AS prev "
                             "FROM attention_patterns")
    assert stats.prev.iloc[0] > 0.9 and stats.cls.iloc[0] > 0.5 and stats.sep.iloc[0] > 0.05


def readme_queries() -> list[str]:
    """The SQL examples of README.md."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sql\n(.*?)```", readme, flags=re.S)


@pytest.mark.slow
def test_readme_example_queries_answer(sst2_store):
    queries = [sql for sql in readme_queries() if "data_map" not in sql]  # no training dynamics here
    assert len(queries) >= 3
    for sql in queries:
        rows = sst2_store.query(sql)
        assert len(rows) > 0, sql
