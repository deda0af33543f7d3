"""Extractive summarization's data: sentence splitting, ROUGE, the greedy oracle, reading documents."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import SHARED_DATA, shared_file
from t3vis.data.documents import load_documents, split_reference, split_sentences
from t3vis.data.rouge import _ngrams, _scorer, greedy_oracle, ngram_f1, rouge, tokens
from t3vis.errors import DataError

# A hand-worked oracle. Reference "a b c d"; the sentences and their ROUGE-1 F1 + ROUGE-2 F1:
#   round 1: "a b" 2/3 + 1/2 = 1.167, "c d" 1.167, "a b c" 6/7 + 4/5 = 1.657 (best), "x y" 0
#   round 2, with "a b c": + "a b" -> "a b a b c" 2/3 + 4/7 = 1.238; + "c d" -> "a b c c d" 8/9 + 6/7 = 1.746
#            (best, above 1.657); + "x y" 1.238
#   round 3, with both: + "a b" -> 8/11 + 2/3 = 1.394; + "x y" 1.394: no gain, stop.
HAND_SENTENCES = ["a b", "c d", "a b c", "x y"]
HAND_REFERENCE = ["a b c d"]


def test_the_greedy_oracle_matches_the_hand_worked_example():
    assert greedy_oracle(HAND_SENTENCES, HAND_REFERENCE) == [1, 2]
    assert greedy_oracle(HAND_SENTENCES, HAND_REFERENCE, max_sentences=1) == [2]
    assert greedy_oracle(["x y", "z"], HAND_REFERENCE) == []  # nothing overlaps: nothing is extracted


def test_rouge_is_rouge_scores_and_the_oracle_counts_agree_with_it():
    assert rouge(["a b c", "c d"], HAND_REFERENCE).rouge1 == pytest.approx(8 / 9)
    assert rouge(["a b c", "c d"], HAND_REFERENCE).rouge2 == pytest.approx(6 / 7)
    pairs = [("The cats were sitting on the mats, happily.", "A cat sat on a mat."),
             ("Stocks fell 3% on Monday as investors sold.", "Investors sold stocks on Monday; stocks fell."),
             ("Nothing in common", "completely different words")]
    for candidate, reference in pairs:
        expected = _scorer().score(reference, candidate)
        words, target = tokens(candidate), tokens(reference)
        assert ngram_f1(_ngrams(words, 1), _ngrams(target, 1)) == pytest.approx(expected["rouge1"].fmeasure)
        assert ngram_f1(_ngrams(words, 2), _ngrams(target, 2)) == pytest.approx(expected["rouge2"].fmeasure)


def test_tokens_are_rouge_scores_tokens():
    texts = ["Running runners ran; the U.S.-based firm's CEO said: \"£3.5bn\" isn't enough!",
             "Ünïcödé café — naïve résumé", "", "   ", "1990s 2,000 A.B.C."]
    path = SHARED_DATA / "cnn_dailymail_train_sample100.csv"
    if path.is_file():  # real articles too, when the shared data is here
        import pandas as pd

        frame = pd.read_csv(path)
        texts += frame.article.head(20).tolist() + frame.highlights.head(20).tolist()
    for text in texts:
        assert tokens(text) == _scorer()._tokenizer.tokenize(text)


def test_sentences_and_reference_lines():
    assert split_sentences("Dr. Smith went to Washington. He arrived at 3 p.m. on Monday!  Was it U.S.\npolicy? Yes.") \
        == ["Dr. Smith went to Washington.", "He arrived at 3 p.m. on Monday!", "Was it U.S. policy?", "Yes."]
    assert split_reference("First bullet .\nSecond bullet .\n") == ["First bullet .", "Second bullet ."]
    assert split_reference("One line. Two sentences.") == ["One line.", "Two sentences."]


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_documents_are_read_with_detected_columns_and_oracle_labels(tmp_path):
    path = _write(tmp_path / "docs.csv",
                  'id,article,highlights\nabc,"The cat sat on the mat. Dogs bark at night. Birds sing in spring.",'
                  '"Dogs bark at night ."\n'
                  'def,"Prices rose in May. Markets fell sharply in June. Traders were calm.",'
                  '"Markets fell sharply .\nPrices rose ."\n')
    documents = load_documents(path)
    assert documents.article_column == "article" and documents.summary_column == "highlights"
    assert documents.sentences[0] == ["The cat sat on the mat.", "Dogs bark at night.", "Birds sing in spring."]
    assert documents.references[1] == ["Markets fell sharply .", "Prices rose ."]
    assert documents.oracle[0].tolist() == [0, 1, 0]
    assert documents.oracle[1].tolist() == [1, 1, 0]
    assert documents.extra.id.tolist() == ["abc", "def"]  # a hex id stays an extra column
    assert documents.example_ids.tolist() == [0, 1]


@pytest.mark.parametrize(("content", "kwargs", "message"), [
    ('story,summary\n"x.","y"\n', {"article_column": "storry"}, r"no column 'storry'.*Did you mean 'story'.*`article_column`"),
    ('body,notes\n"x.","y"\n', {}, r"which column.*article.*`article_column`"),
    ('article,summary\n"x.",""\n', {}, r"no summary in data rows \[1\]"),
    ('article,summary\n"x.","y"\n', {"summary_column": "article"}, r"both column 'article'"),
])
def test_bad_document_files_get_clear_errors(tmp_path, content, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_documents(_write(tmp_path / "bad.csv", content), **kwargs)


def test_cnn_dailymail_documents_have_oracle_summaries_of_at_most_three_sentences():
    path = shared_file("cnn_dailymail_train_sample100.csv")
    documents = load_documents(path, limit=30)
    assert len(documents) == 30 and "id" in documents.extra.columns
    selected = np.array([labels.sum() for labels in documents.oracle])
    assert selected.min() >= 1 and selected.max() <= 3
    oracle = np.mean([rouge([s for s, keep in zip(sentences, labels) if keep], reference).rouge1
                      for sentences, labels, reference in zip(documents.sentences, documents.oracle,
                                                              documents.references)])
    lead = np.mean([rouge(sentences[:3], reference).rouge1
                    for sentences, reference in zip(documents.sentences, documents.references)])
    assert oracle > lead + 0.1  # the oracle is an upper bound for extraction, far above Lead-3
