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


CONLL_SAMPLE = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
to TO B-VP O
boycott VB I-VP O
British JJ B-NP B-MISC
lamb NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O

-DOCSTART- -X- -X- O

The DT B-NP O
European NNP I-NP B-ORG
Commission NNP I-NP I-ORG
said VBD B-VP O
on IN B-PP O
Thursday NNP B-NP O
it PRP B-NP O
disagreed VBD B-VP O
with IN B-PP O
German JJ B-NP B-MISC
advice NN I-NP O
. . O O"""


def test_ingest_a_token_classifier_over_a_conll_file(tmp_path, capsys):
    import numpy as np

    from t3vis.data.entity_metrics import entity_scores
    from t3vis.data.tagging import load_tagged
    from t3vis.fixtures.tiny_models import save_tiny_tagger

    data = tmp_path / "sample.conll"
    data.write_text(CONLL_SAMPLE)
    sentences = load_tagged(data)
    model = save_tiny_tagger(tmp_path / "tagger", sentences.tag_names)
    store_path = tmp_path / "ner.duckdb"
    assert run(["ingest", "--task", "token-classification", "--model", str(model), "--data", str(data),
                "--store", str(store_path), "--projection", "pca", "--quiet"]) == 0
    assert "f1" in capsys.readouterr().out
    store = Store(store_path)
    assert store.run("tagger").task == "token-classification"
    rows = store.query("""SELECT p.example_id, p.unit, p.pred, u.label, u.text FROM unit_predictions p
                          JOIN units u USING (run_id, split, example_id, unit) ORDER BY 1, 2""")
    assert rows.text.tolist() == [word for words in sentences.words for word in words]  # every word, in order
    predicted = [group.pred.to_numpy() for _, group in rows.groupby("example_id")]
    metrics = json.loads(store.scalar("SELECT metrics FROM checkpoints"))["validation"]
    expected = entity_scores(sentences.tags, predicted, sentences.tag_names)
    assert metrics["f1"] == expected["f1"] and metrics["per_type"] == expected["per_type"]
    spans = store.query("SELECT entity_type, count(*) AS n FROM entity_spans GROUP BY 1")
    assert dict(zip(spans.entity_type, spans.n)) == {"ORG": 2, "MISC": 3, "PER": 1, "LOC": 1} == {
        kind: scores["support"] for kind, scores in metrics["per_type"].items()}
    assert np.isclose(metrics["accuracy"], float((rows.pred == rows.label).mean()))

    # the same words as JSON lines with tag names; a tag the model does not know is refused, the store untouched
    table = tmp_path / "sample.jsonl"
    names = np.array(sentences.tag_names)
    table.write_text("\n".join(json.dumps({"tokens": words, "ner_tags": list(names[tags])})
                               for words, tags in zip(sentences.words, sentences.tags)))
    assert run(["ingest", "--task", "token-classification", "--model", str(model), "--data", str(table),
                "--store", str(store_path), "--run", "from-jsonl", "--projection", "pca", "--quiet"]) == 0
    assert store.scalar("SELECT count(*) FROM unit_predictions WHERE run_id = 'from-jsonl'") == len(rows)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"tokens": ["Peter"], "ner_tags": ["B-PERSON"]}))
    before = store_path.read_bytes()
    assert run(["ingest", "--task", "token-classification", "--model", str(model), "--data", str(other),
                "--store", str(store_path), "--run", "bad", "--quiet"]) == 2
    assert "--label-names" in capsys.readouterr().err and store_path.read_bytes() == before
