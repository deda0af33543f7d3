"""The t3vis command line: help for every option, ingest, ingest-dir, info, clear errors."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import pytest

from t3vis.cli import build_parser, run
from t3vis.store.database import Store
from t3vis.fixtures.tiny_models import save_tiny_model


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, f"{name} {action.option_strings or action.dest} lacks help"
        text = sub.format_help()
        assert sub.description and sub.description.split()[0] in text


def test_console_script_prints_help():
    executable = shutil.which("t3vis", path=str(sys.executable).rsplit("/", 1)[0])
    assert executable, "the t3vis console script is not installed"
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, check=True)
    for command in ("ingest", "ingest-dir", "info"):
        assert command in result.stdout
    ingest_help = subprocess.run([executable, "ingest", "--help"], capture_output=True, text=True, check=True)
    for option in ("--model", "--data", "--text-column", "--label-column", "--split", "--store", "--run",
                   "--checkpoint", "--layers", "--projection", "--importance-examples"):
        assert option in ingest_help.stdout


def test_ingest_then_info(tmp_path, tiny_model_dir, topic_csv, capsys):
    store_path = tmp_path / "cli.duckdb"
    code = run(["ingest", "--model", str(tiny_model_dir), "--data", str(topic_csv), "--store", str(store_path),
                "--run", "cli-run", "--checkpoint", "first", "--layers", "all", "--projection", "pca", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "cli-run/first [validation]: 15 examples" in out
    store = Store(store_path, create=True)
    assert store.scalar("SELECT count(DISTINCT layer) FROM projections") == 3  # embeddings + 2 layers
    assert run(["info", "--store", str(store_path)]) == 0
    info = capsys.readouterr().out
    assert "run cli-run" in info and "15 predictions" in info


def test_ingest_dir_takes_checkpoints_in_step_order(tmp_path, topic_csv):
    output_dir = tmp_path / "trainer-output"
    for step, epoch in [(20, 2.0), (5, 0.5), (10, 1.0)]:
        folder = save_tiny_model(output_dir / f"checkpoint-{step}", num_labels=3, seed=step)
        (folder / "trainer_state.json").write_text(json.dumps({
            "global_step": step, "epoch": epoch, "log_history": [{"step": step, "loss": 1.0 / step}]}))
    store_path = tmp_path / "dir.duckdb"
    code = run(["ingest-dir", str(output_dir), "--data", str(topic_csv), "--store", str(store_path),
                "--projection", "pca", "--quiet"])
    assert code == 0
    checkpoints = Store(store_path).checkpoints("trainer-output")
    assert list(checkpoints.checkpoint) == ["checkpoint-5", "checkpoint-10", "checkpoint-20"]
    assert list(checkpoints.epoch) == [0.5, 1.0, 2.0]
    assert json.loads(checkpoints.metrics.iloc[0])["trainer"]["loss"] == pytest.approx(0.2)


def test_wrong_column_is_a_clear_error_not_a_traceback(tmp_path, tiny_model_dir, topic_csv, capsys):
    store_path = tmp_path / "err.duckdb"
    code = run(["ingest", "--model", str(tiny_model_dir), "--data", str(topic_csv), "--store", str(store_path),
                "--text-column", "sentense", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("t3vis: error:") and "sentense" in err and "Traceback" not in err
    assert "fix --text-column" in err and "text_columns" not in err  # the CLI names its own options


def test_library_errors_name_parameters_for_python_callers_and_flags_for_the_cli(tmp_path, tiny_model_dir,
                                                                              topic_csv, capsys):
    from t3vis.errors import DataError
    from t3vis.record.ingest_files import DataSource, ModelSource, ingest_files

    store = Store(tmp_path / "s.duckdb", create=True)
    with pytest.raises(DataError) as raised:
        ingest_files(store, ModelSource(tiny_model_dir), DataSource(topic_csv, label_column="lable"))
    message = str(raised.value)
    assert "`label_column`" in message and "--" not in message
    assert "--label-column" in raised.value.for_cli() and "`label_column`" not in raised.value.for_cli()
    assert not (tmp_path / "s.duckdb").exists()  # nothing was written

    code = run(["ingest", "--model", str(tiny_model_dir), "--data", str(topic_csv), "--store",
                str(tmp_path / "s.duckdb"), "--label-column", "lable", "--quiet"])
    assert code == 2 and "fix --label-column" in capsys.readouterr().err


def test_ingest_files_is_the_cli_ingest_as_a_python_function(tmp_path, tiny_model_dir, topic_csv):
    from t3vis.record.ingest_config import IngestConfig
    from t3vis.record.ingest_files import DataSource, ModelSource, ingest_files

    python_store = Store(tmp_path / "python.duckdb", create=True)
    done = ingest_files(python_store, ModelSource(tiny_model_dir), DataSource(topic_csv),
                        config=IngestConfig(projection="pca", importance_examples=0))
    assert run(["ingest", "--model", str(tiny_model_dir), "--data", str(topic_csv), "--store",
                str(tmp_path / "cli.duckdb"), "--projection", "pca", "--importance-examples", "0", "--quiet"]) == 0
    cli_store = Store(tmp_path / "cli.duckdb")
    assert done.summary.run_id == cli_store.runs().run_id.item() == tiny_model_dir.name
    query = "SELECT example_id, pred, loss FROM predictions ORDER BY example_id"
    python_rows = python_store.query(query)
    cli_rows = cli_store.query(query)
    assert len(python_rows) == done.summary.n_examples > 0
    assert python_rows.pred.tolist() == cli_rows.pred.tolist()
    assert python_rows.loss.to_numpy() == pytest.approx(cli_rows.loss.to_numpy(), abs=1e-6)


def test_info_on_a_missing_store(tmp_path, capsys):
    assert run(["info", "--store", str(tmp_path / "none.duckdb")]) == 2
    assert "No t3vis store" in capsys.readouterr().err


def test_ingest_defaults_are_the_config_defaults():
    """The CLI takes its defaults and help from IngestConfig's fields, so the two cannot drift apart."""
    import dataclasses

    from t3vis.cli import build_parser
    from t3vis.record.ingest_config import IngestConfig

    args = build_parser().parse_args(["ingest", "--model", "m", "--data", "d.csv"])
    defaults = IngestConfig()
    for field in dataclasses.fields(IngestConfig):
        assert getattr(args, field.name) == getattr(defaults, field.name), field.name
    assert build_parser().parse_args(["ingest", "--model", "m", "--data", "d.csv", "--layers", "all"]).layers == "all"


def test_ingest_an_extractive_summarizer_from_the_command_line(tmp_path, capsys):
    """`--task extractive-summarization`: documents from a CSV, columns detected, a saved tiny summarizer."""
    from t3vis.fixtures.tiny_models import save_tiny_summarizer

    model = save_tiny_summarizer(tmp_path / "summarizer")
    data = tmp_path / "news.csv"
    data.write_text('id,article,highlights\n'
                    'a1,"The council met on Monday. It approved the new budget. Critics called it reckless. '
                    'The vote was close.","The council approved the budget ."\n'
                    'b2,"Rain is expected tomorrow. Rivers may flood. Residents should prepare sandbags.",'
                    '"Rivers may flood .\\nResidents should prepare ."\n', encoding="utf-8")
    store_path = tmp_path / "s.duckdb"
    assert run(["ingest", "--task", "extractive-summarization", "--model", str(model), "--data", str(data),
                "--store", str(store_path), "--projection", "pca", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "rouge1" in out and "2 examples" in out
    store = Store(store_path)
    assert store.run("summarizer").task == "extractive-summarization"
    units = store.query("SELECT example_id, unit, label, kept FROM units ORDER BY example_id, unit")
    assert units.groupby("example_id").size().tolist() == [4, 3]
    # the oracle takes the sentences the summaries repeat, and "The council met ..." for "the council"
    assert units.label.tolist() == [1, 1, 0, 0, 0, 1, 1]
    assert store.scalar("SELECT count(*) FROM unit_predictions") == 7
    assert sorted(store.query("SELECT DISTINCT system FROM baseline_scores").system) == ["lead-3", "oracle"]
    oracle = store.scalar("SELECT avg(rouge1) FROM baseline_scores WHERE system = 'oracle'")
    assert oracle > store.scalar("SELECT avg(rouge1) FROM baseline_scores WHERE system = 'lead-3'")
    # a run has one task: a classifier's checkpoint is refused under the summarizer's run name
    from helpers import write_topic_csv

    classifier = save_tiny_model(tmp_path / "classifier")
    topics = write_topic_csv(tmp_path / "topics.csv")
    assert run(["ingest", "--model", str(classifier), "--data", str(topics), "--store", str(store_path),
                "--run", "summarizer", "--projection", "pca", "--quiet"]) == 2
    assert "with task 'extractive-summarization'" in capsys.readouterr().err
    assert run(["info", "--store", str(store_path)]) == 0
    info = capsys.readouterr().out
    assert "(extractive-summarization)" in info and "2 predictions" in info  # the documents scored
