"""Token classification data: the CoNLL reader on real lines, tables of word and tag lists, word-piece alignment,
entity scores against a hand-worked example, and the entity spans view."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from helpers import SHARED_DATA
from t3vis.data.entity_metrics import entity_scores
from t3vis.data.tagging import load_tagged, read_conll, sort_tag_names
from t3vis.errors import DataError
from t3vis.model.pretrained import minilm_path
from t3vis.model.word_encoding import IGNORED, collate_words, encode_words

# The first lines of CoNLL-2003's validation file, and a last sentence with no blank line after it.
CONLL_LINES = """-DOCSTART- -X- -X- O

CRICKET NNP B-NP O
- : O O
LEICESTERSHIRE NNP B-NP B-ORG
TAKE NNP I-NP O

LONDON NNP B-NP B-LOC
1996-08-30 CD I-NP O

-DOCSTART- -X- -X- O

West NNP B-NP B-MISC
Indian NNP I-NP I-MISC
all-rounder NN I-NP O
Phil NNP I-NP B-PER
Simmons NNP I-NP I-PER"""


def test_the_conll_reader_splits_documents_and_sentences_and_keeps_the_last_one(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_text(CONLL_LINES)  # no final newline
    frame = read_conll(path)
    assert frame.tokens.tolist() == [["CRICKET", "-", "LEICESTERSHIRE", "TAKE"], ["LONDON", "1996-08-30"],
                                     ["West", "Indian", "all-rounder", "Phil", "Simmons"]]
    assert frame.document.tolist() == [1, 1, 2]
    sentences = load_tagged(path)
    assert sentences.tag_names == ("O", "B-LOC", "B-MISC", "I-MISC", "B-ORG", "B-PER", "I-PER")
    names = np.array(sentences.tag_names)
    assert [list(names[tags]) for tags in sentences.tags][2] == ["B-MISC", "I-MISC", "O", "B-PER", "I-PER"]
    assert sentences.example_ids.tolist() == [0, 1, 2] and sentences.texts[1] == "LONDON 1996-08-30"
    chunks = load_tagged(path, tag_column=2)  # the chunk column instead
    assert chunks.tag_names == ("O", "B-NP", "I-NP") and len(chunks) == 3


def test_conll_mistakes_get_clear_errors(tmp_path):
    ragged = tmp_path / "ragged.conll"
    ragged.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP\n")
    with pytest.raises(DataError, match="line 2 has 3 columns, but line 1 has 4"):
        load_tagged(ragged)
    only_headers = tmp_path / "empty.conll"
    only_headers.write_text("-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(DataError, match="no sentences"):
        load_tagged(only_headers)
    two_columns = tmp_path / "small.conll"
    two_columns.write_text("Peter B-PER\n")
    with pytest.raises(DataError, match="tag_column"):
        load_tagged(two_columns, tag_column=5)


def test_tables_of_word_and_tag_lists_with_names_or_ids(tmp_path):
    names_file = tmp_path / "names.jsonl"
    names_file.write_text("\n".join(json.dumps(row) for row in [
        {"tokens": ["EU", "rejects", "German", "call"], "ner_tags": ["B-ORG", "O", "B-MISC", "O"], "id": "a"},
        {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"], "id": "b"}]))
    sentences = load_tagged(names_file)
    assert sentences.tag_names == sort_tag_names(["O", "B-ORG", "B-MISC", "B-PER", "I-PER"])
    assert sentences.extra.id.tolist() == ["a", "b"]
    ids_file = tmp_path / "ids.jsonl"
    ids_file.write_text(json.dumps({"tokens": ["Peter", "Blackburn"], "ner_tags": [1, 2]}))
    with pytest.raises(DataError, match="tag_names"):
        load_tagged(ids_file)
    named = load_tagged(ids_file, tag_names=["O", "B-PER", "I-PER"])
    assert named.tags[0].tolist() == [1, 2] and named.tag_names == ("O", "B-PER", "I-PER")
    with pytest.raises(DataError, match=r"tag ids \[2\]"):
        load_tagged(ids_file, tag_names=["O", "B-PER"])
    mismatched = tmp_path / "mismatched.jsonl"
    mismatched.write_text(json.dumps({"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER"]}))
    with pytest.raises(DataError, match="different number of words and tags"):
        load_tagged(mismatched)
    with pytest.raises(DataError, match="words_column"):
        load_tagged(names_file, words_column="words")
    import pandas as pd

    parquet = tmp_path / "sentences.parquet"  # lists come back from Parquet as arrays
    pd.DataFrame({"words": [["EU", "rejects"], ["Peter"]], "tags": [["B-ORG", "O"], ["B-PER"]]}).to_parquet(parquet)
    from_parquet = load_tagged(parquet)
    assert from_parquet.words == [["EU", "rejects"], ["Peter"]] and from_parquet.tag_names == ("O", "B-ORG", "B-PER")


def test_a_datasets_folder_names_its_tag_ids_with_its_class_labels(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))})
    datasets.Dataset.from_dict({"tokens": [["Peter", "Blackburn", "spoke"]], "ner_tags": [[1, 2, 0]]},
                               features=features).save_to_disk(str(tmp_path / "folder"))
    sentences = load_tagged(tmp_path / "folder")
    assert sentences.tag_names == ("O", "B-PER", "I-PER") and sentences.tags[0].tolist() == [1, 2, 0]


def test_each_words_tag_labels_its_first_piece_only():
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    words = ["Peter", "Grzegorzewski", "spoke", "."]
    (full,) = encode_words(tokenizer, [words], max_length=64)
    assert full.n_words == full.n_kept == 4
    pieces = tokenizer.convert_ids_to_tokens(full.input_ids)
    assert [pieces[p] for p in full.first_pieces] == ["peter", "gr", "spoke", "."]
    assert full.labels([1, 2, 0, 0]) == [IGNORED, 1, 2, IGNORED, IGNORED, IGNORED, IGNORED, 0, 0, IGNORED]
    (cut,) = encode_words(tokenizer, [words], max_length=5)  # [CLS] peter gr ##ze [SEP]: the second word's first
    assert cut.n_kept == 2 and cut.n_tokens_full == len(full.input_ids)  # piece fits, the rest is lost
    batch = collate_words([full, cut], pad_token_id=0, tags=[[1, 2, 0, 0], [1, 2, 0, 0]])
    assert batch["labels"].shape == batch["input_ids"].shape == (2, 10)
    assert (batch["labels"][1] != IGNORED).sum() == 2 and batch["attention_mask"][1].sum() == 5


def test_entity_scores_equal_a_hand_worked_example():
    names = ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")
    gold = [np.array([3, 4, 0, 1, 2]), np.array([1, 0, 3])]  # PER(0-1) LOC(3-4) | LOC(0) PER(2)
    predicted = [np.array([3, 4, 0, 1, 0]), np.array([1, 0, 4])]  # PER(0-1) LOC(3) | LOC(0) I-PER alone
    scores = entity_scores(gold, predicted, names)
    # Strict IOB2: found PER(0-1), LOC(3) [wrong span], LOC(0); "I-PER" after "O" starts no entity.
    # True positives 2 (PER 0-1, LOC 0) of 3 predicted and 4 gold.
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert scores["per_type"]["LOC"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["per_type"]["PER"]["recall"] == 0.5 and scores["per_type"]["PER"]["precision"] == 1.0
    assert entity_scores(gold, predicted, ("O", "NN", "VB", "JJ", "DT")) == {}  # POS tags: no entities


def test_iob1_gold_tags_are_scored_as_iob2_and_say_so():
    names = ("O", "I-LOC", "I-PER", "B-PER")  # IOB1: an entity starts with I- unless it follows one of its type
    gold = [np.array([2, 2, 3, 0, 1])]  # PER(0-1) PER(2) LOC(4)
    predicted = [np.array([2, 2, 0, 0, 1])]  # PER(0-1) LOC(4)
    scores = entity_scores(gold, predicted, names)
    assert scores["scheme"] == "IOB1, read as IOB2" and scores["support"] == 3
    assert scores["precision"] == 1.0 and scores["recall"] == pytest.approx(2 / 3)
    assert entity_scores([np.array([3, 0])], [np.array([3, 0])], names)["scheme"] == "IOB2"


def test_a_word_the_tokenizer_drops_keeps_its_place():
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    words = ["Peter", "\u200b", "Blackburn", "\xad", "went"]  # a zero-width space and a soft hyphen: no pieces
    (sentence,) = encode_words(tokenizer, [words], max_length=32)
    assert sentence.n_kept == 5 and [sentence.word_of_token[p] for p in sentence.first_pieces] == [0, 1, 2, 3, 4]
    pieces = tokenizer.convert_ids_to_tokens(sentence.input_ids)
    assert [pieces[p] for p in sentence.first_pieces] == ["peter", "[UNK]", "blackburn", "[UNK]", "went"]


def test_the_real_conll_files_have_the_published_counts():
    path = SHARED_DATA / "conll2003_valid.txt"
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared CoNLL-2003 data)")
    sentences = load_tagged(path)
    assert len(sentences) == 3250 and sum(len(words) for words in sentences.words) == 51362
    assert int(sentences.extra.document.max()) == 216 and len(sentences.tag_names) == 9
