"""Dataset loading: every format, label handling, and each bad input giving a clear DataError."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers import shared_file
from t3vis.data.loading import load_examples, read_table
from t3vis.errors import DataError

ROWS = [("a fine film", "pos"), ("a dull film", "neg"), ('he said "wow" twice', "pos"), ("slow, and long", "neg")]


def _write(path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({"text": [r[0] for r in ROWS], "label": [r[1] for r in ROWS], "score": [1, 2, 3, 4]})


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_every_file_format_round_trips(tmp_path, frame, suffix):
    path = tmp_path / f"data.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "tsv":
        _write(path, "text\tlabel\tscore\n" + "".join(f"{t}\t{l}\t{s}\n" for t, l, s in frame.itertuples(index=False)))
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    examples = load_examples(path)
    assert examples.texts == frame.text.tolist()
    assert examples.label_names == ["neg", "pos"]
    np.testing.assert_array_equal(examples.labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(examples.example_ids, [0, 1, 2, 3])
    assert examples.extra.score.tolist() == [1, 2, 3, 4]


def test_datasets_folders_with_class_labels(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the test extra installs `datasets`")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    data = datasets.Dataset.from_dict({"sentence": ["bad", "good", "fine"], "label": [0, 1, 1]}, features=features)
    data.save_to_disk(str(tmp_path / "single"))
    examples = load_examples(tmp_path / "single")
    assert examples.texts == ["bad", "good", "fine"]
    assert examples.label_names == ["negative", "positive"]
    datasets.DatasetDict({"train": data, "validation": data.select([0, 1])}).save_to_disk(str(tmp_path / "dict"))
    assert len(load_examples(tmp_path / "dict", split="validation")) == 2
    with pytest.raises(DataError, match=r"splits \['train', 'validation'\].*`split`"):
        load_examples(tmp_path / "dict")


def test_label_names_map_names_and_bound_ids(tmp_path, frame):
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    examples = load_examples(path, label_names=["pos", "neg"])
    np.testing.assert_array_equal(examples.labels, [0, 1, 0, 1])
    with pytest.raises(DataError, match=r"\['neg'\].*not among the label names"):
        load_examples(path, label_names=["pos", "other"])
    ids = _write(tmp_path / "ids.csv", "text,label\na,0\nb,1\nc,2\n")
    assert load_examples(ids).label_names == ["0", "1", "2"]
    with pytest.raises(DataError, match=r"labels out of range: \[2\] in data rows \[3\]"):
        load_examples(ids, label_names=["x", "y"])


def test_wrong_column_names_suggest_the_right_one(tmp_path, frame):
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"no column 'txt'.*Did you mean 'text'.*`text_columns`"):
        load_examples(path, text_columns=["txt"])
    with pytest.raises(DataError, match=r"no column 'lable'.*'label'.*`label_column`"):
        load_examples(path, label_column="lable")
    unlabelled = _write(tmp_path / "u.csv", "body,topic_name\nhello,x\n")
    with pytest.raises(DataError, match=r"which column.*label.*\['body', 'topic_name'\].*`label_column`"):
        load_examples(unlabelled, text_columns=["body"])


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"text,label\n", "no rows"),
    (b"text,label\nfine,0\n,1\n", r"no text in data rows \[2\]"),
    (b"text,label\nfine,0\nmeh,\n", r"no label in data rows \[2\]"),
    (b"text,label\nfine,0.5\n", "fractional"),
    (b"text,label\nfine,-1\n", "out of range"),
    (b'text,label\n"a,b",0,extra,fields\n', "well-formed"),
    (b"caf\xe9,0\n", "not valid utf-8.*encoding='latin-1'"),
])
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError, match=message):
        load_examples(path)


def test_bad_jsonl_names_the_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", '{"text": "ok", "label": 0}\n\n{"text": oops}\n')
    with pytest.raises(DataError, match="line 3 is not valid JSON"):
        load_examples(path)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="`file_format`"):
        load_examples(_write(tmp_path / "data.xlsx", "x"))
    with pytest.raises(DataError, match="does not exist"):
        load_examples(tmp_path / "nope.csv")


def test_crlf_and_bare_carriage_returns(tmp_path):
    path = _write(tmp_path / "cr.tsv", b'label\tsentence\r\n0\tone \rbroken line\r\n1\t" quoted start\r\n')
    examples = load_examples(path)
    assert examples.texts == ["one  broken line", '" quoted start']
    assert examples.labels.tolist() == [0, 1]


def test_sentence_pairs_and_id_column(tmp_path):
    path = _write(tmp_path / "pairs.jsonl", "\n".join(json.dumps(r) for r in [
        {"uid": 10, "premise": "a dog runs", "hypothesis": "an animal moves", "label": "entailment"},
        {"uid": 11, "premise": "a cat sleeps", "hypothesis": "a cat runs", "label": "contradiction"}]))
    examples = load_examples(path, text_columns=["premise", "hypothesis"], id_column="uid")
    assert examples.text_pairs == ["an animal moves", "a cat runs"]
    assert examples.example_ids.tolist() == [10, 11]
    duplicate = _write(tmp_path / "dup.csv", "uid,text,label\n1,a,0\n1,b,1\n")
    with pytest.raises(DataError, match="repeated ids"):
        load_examples(duplicate, id_column="uid")


# -- the real files of ../shared/data ---------------------------------------------------------


def test_sst2_train_with_crlf_and_bare_cr():
    examples = load_examples(shared_file("sst2_train.tsv"))
    assert len(examples) == 67349
    assert examples.label_names == ["0", "1"] and set(examples.labels.tolist()) == {0, 1}
    assert not any("\r" in text for text in examples.texts)
    assert examples.text_columns == ("sentence",)


def test_sst2_dev_text_column_is_detected():
    examples = load_examples(shared_file("sst2_dev.tsv"))
    assert len(examples) == 872 and examples.text_columns == ("content",)


def test_trec_latin1_byte_is_named_then_loaded_with_the_encoding():
    path = shared_file("trec_train_5500.label")
    with pytest.raises(DataError, match=r"0xF0.*encoding='latin-1'"):
        load_examples(path)
    examples = load_examples(path, encoding="latin-1")
    assert len(examples) == 5452
    assert examples.label_names == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert "label_fine" in examples.extra.columns
    assert len(load_examples(shared_file("trec_test_500.label"))) == 500


def test_cnn_dailymail_multiline_csv():
    path = shared_file("cnn_dailymail_train_sample100.csv")
    table = read_table(path)
    assert len(table) == 100 and list(table.columns) == ["id", "article", "highlights"]
    assert table.highlights.str.contains("\n").mean() > 0.9
    with pytest.raises(DataError, match=r"label.*\['id', 'article', 'highlights'\]"):
        load_examples(path)
