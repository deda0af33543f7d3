"""`t3vis ingest --task generation` on a tiny random Llama language model: what it writes and reports, and the
one-line errors of bad input (a wrong column, chat data without a chat template, an empty file), which leave no
store behind."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from t3vis.fixtures.generation_store import arithmetic_pairs, write_pairs
from t3vis.fixtures.tiny_models import save_tiny_language_model
from t3vis.store.database import Store


_cli = run_cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_language_model(tmp_path_factory.mktemp("lm") / "tiny-llama", "llama")


def _ingest(model_dir, data, store, *extra):
    return _cli(["ingest", "--task", "generation", "--model", str(model_dir), "--data", str(data), "--store",
                 str(store), "--run", "lm", "--projection", "pca", "--batch-size", "4", "--quiet", *extra])


def test_ingest_writes_a_generation_checkpoint_and_reports_it(tmp_path, model_dir):
    rows = [{"instruction": pair["question"], "input": "", "output": pair["answer"]} for pair in arithmetic_pairs(6)]
    data = write_pairs(tmp_path / "alpaca.jsonl", rows)
    code, out, err = _ingest(model_dir, data, tmp_path / "s.duckdb", "--max-new-tokens", "5",
                             "--max-completion-tokens", "4", "--checkpoint", "base")
    assert code == 0, err
    assert "lm/base [validation]: 6 examples, 6 truncated" in out and "token accuracy" in out and "perplexity" in out
    store = Store(tmp_path / "s.duckdb")
    assert store.run("lm").task == "generation"
    assert store.query("SELECT max(unit) + 1 AS n FROM units").n[0] == 4  # completions cut to 4 tokens
    lengths = store.query("SELECT list_count(generated_ids) + stopped::INT AS n FROM generations").n
    assert (lengths <= 5).all()
    config = json.loads(store.scalar("SELECT config FROM runs"))
    assert config["format"] == "alpaca" and config["max_new_tokens"] == 5


def test_named_columns_are_used_and_a_wrong_one_is_one_error_line_with_no_store_left(tmp_path, model_dir):
    rows = [{"q": pair["question"], "a": pair["answer"]} for pair in arithmetic_pairs(3)]
    data = write_pairs(tmp_path / "qa.jsonl", rows)
    code, out, err = _ingest(model_dir, data, tmp_path / "ok.duckdb", "--prompt-column", "q",
                             "--completion-column", "a", "--max-new-tokens", "0")
    assert code == 0, err
    assert Store(tmp_path / "ok.duckdb").scalar("SELECT count(*) FROM generations WHERE generation IS NULL") == 3
    code, out, err = _ingest(model_dir, data, tmp_path / "bad.duckdb", "--prompt-column", "question",
                             "--completion-column", "a")
    lines = [line for line in err.splitlines() if line.startswith("t3vis: error:")]
    assert code == 2 and len(lines) == 1 and "question" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "bad.duckdb").exists()


def test_chat_data_needs_a_tokenizer_with_a_chat_template(tmp_path, model_dir):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps(rows[0]) + "\n")
    code, out, err = _ingest(model_dir, data, tmp_path / "chat.duckdb")
    lines = [line for line in err.splitlines() if line.startswith("t3vis: error:")]
    assert code == 2 and len(lines) == 1 and "chat template" in lines[0], err
    assert not (tmp_path / "chat.duckdb").exists()


def test_an_empty_file_is_refused(tmp_path, model_dir):
    (tmp_path / "empty.csv").write_text("prompt,completion\n")
    code, out, err = _ingest(model_dir, tmp_path / "empty.csv", tmp_path / "e.duckdb")
    assert code == 2 and "no rows" in err and not (tmp_path / "e.duckdb").exists()
