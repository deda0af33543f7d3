"""Documents for extractive summarization: articles split into sentences, reference summaries, oracle labels.

A file (CSV, TSV, JSONL, Parquet, a ``datasets`` folder) with an article column and a summary column,
e.g. CNN/DailyMail's ``article`` and ``highlights``. Articles are split into sentences with
``pysbd`` (rule-based, offline); a reference summary is split at its line breaks when it has them
(CNN/DailyMail's highlights are one bullet per line), else into sentences. Each sentence gets an
oracle label, 1 when the greedy ROUGE oracle extracts it (:func:`t3vis.data.rouge.greedy_oracle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from t3vis.data.loading import (
    _example_ids,
    _guess_column,
    _jsonable_frame,
    _require_column,
    _rows,
    read_table,
)
from t3vis.data.rouge import ORACLE_SENTENCES, greedy_oracle
from t3vis.errors import DataError, option

ARTICLE_COLUMN_GUESSES = ("article", "document", "text", "story", "source", "content")
SUMMARY_COLUMN_GUESSES = ("highlights", "summary", "abstract", "reference", "target", "headline")


@dataclass(frozen=True)
class DocumentSet:
    """Documents split into sentences, with their reference summaries and oracle labels."""

    example_ids: np.ndarray  # (N,) int64, unique
    sentences: list[list[str]]  # N documents, each a list of sentences
    references: list[list[str]]  # N reference summaries, each a list of sentences
    oracle: list[np.ndarray]  # N arrays (S_i,) int64: 1 = the oracle extracts the sentence
    extra: pd.DataFrame  # (N, k) the file's other columns (e.g. CNN/DailyMail's hex `id`)
    article_column: str
    summary_column: str
    source: str

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def texts(self) -> list[str]:
        """Each article as one text, its sentences joined by spaces."""
        return [" ".join(sentences) for sentences in self.sentences]


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd  # rule-based sentence boundaries (Golden Rules), offline

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str) -> list[str]:
    """The sentences of a text, stripped, empty ones dropped."""
    text = " ".join(text.split())  # line breaks and runs of spaces inside an article are spacing
    return [sentence.strip() for sentence in _segmenter().segment(text) if sentence.strip()]


def split_reference(text: str) -> list[str]:
    """A reference summary's sentences: its lines when it has several (bullet highlights), else its sentences."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines if len(lines) > 1 else split_sentences(text)


def make_documents(
    articles: Sequence[str],
    summaries: Sequence[str],
    *,
    example_ids: np.ndarray | None = None,
    extra: pd.DataFrame | None = None,
    max_oracle_sentences: int = ORACLE_SENTENCES,
    source: str = "",
) -> DocumentSet:
    """Split articles and summaries into sentences and label each sentence with the greedy oracle."""
    sentences = [split_sentences(article) for article in articles]
    references = [split_reference(summary) for summary in summaries]
    oracle = []
    for document, reference in zip(sentences, references):
        labels = np.zeros(len(document), dtype=np.int64)
        labels[greedy_oracle(document, reference, max_sentences=max_oracle_sentences)] = 1
        oracle.append(labels)
    n = len(sentences)
    return DocumentSet(
        example_ids=np.arange(n, dtype=np.int64) if example_ids is None else np.asarray(example_ids, dtype=np.int64),
        sentences=sentences, references=references, oracle=oracle,
        extra=pd.DataFrame(index=range(n)) if extra is None else extra,
        article_column="article", summary_column="summary", source=source,
    )


def load_documents(
    path: str | Path,
    *,
    article_column: str | None = None,
    summary_column: str | None = None,
    id_column: str | None = None,
    split: str | None = None,
    encoding: str = "utf-8",
    file_format: str | None = None,
    limit: int | None = None,
    max_oracle_sentences: int = ORACLE_SENTENCES,
) -> DocumentSet:
    """Read documents and their reference summaries from a file.

    Parameters
    ----------
    article_column, summary_column : str, optional
        Default: detected (``article``/``document``/``text`` ..., ``highlights``/``summary`` ...).
    id_column : str, optional
        An integer column of unique ids (default: the row number). A non-integer id column, such as
        CNN/DailyMail's hex ``id``, stays among the extra columns.
    limit : int, optional
        Keep the first ``limit`` documents.
    """
    if limit is not None and limit < 1:
        raise DataError(f"{option('limit')} must be at least 1 (the number of documents to use), not {limit}.")
    frame = read_table(path, file_format=file_format, encoding=encoding, split=split)
    if frame.empty:
        raise DataError(f"{Path(path).name} contains no rows (only a header).")
    columns = [str(column) for column in frame.columns]
    article_column = article_column or _guess_column(ARTICLE_COLUMN_GUESSES, columns, "article",
                                                     option("article_column"), path)
    _require_column(article_column, columns, option("article_column"), path)
    summary_column = summary_column or _guess_column(SUMMARY_COLUMN_GUESSES, columns, "reference summary",
                                                     option("summary_column"), path)
    _require_column(summary_column, columns, option("summary_column"), path)
    if summary_column == article_column:
        raise DataError(f"The article and the summary are both column {article_column!r}; give "
                        f"{option('summary_column')}.")
    if id_column:
        _require_column(id_column, columns, option("id_column"), path)
    if limit is not None:
        frame = frame.iloc[:limit].reset_index(drop=True)
    articles = _document_texts(frame[article_column], "article", path)
    summaries = _document_texts(frame[summary_column], "summary", path)
    documents = make_documents(
        articles, summaries, example_ids=_example_ids(frame, id_column, path),
        extra=_jsonable_frame(frame.drop(columns=[article_column, summary_column]
                                         + ([id_column] if id_column else []))),
        max_oracle_sentences=max_oracle_sentences, source=str(path),
    )
    empty = np.array([not sentences for sentences in documents.sentences])
    if empty.any():
        raise DataError(f"{Path(path).name}: articles in data rows {_rows(empty)} have no sentence. Fill or drop "
                        "those rows.")
    return DocumentSet(**{**documents.__dict__, "article_column": article_column, "summary_column": summary_column})


def _document_texts(values: pd.Series, what: str, path) -> list[str]:
    missing = (values.isna() | values.map(lambda v: isinstance(v, str) and not v.strip())).to_numpy()
    if missing.any():
        raise DataError(f"{Path(path).name}: column {values.name!r} has no {what} in data rows {_rows(missing)}. "
                        "Fill or drop those rows.")
    return [str(value) for value in values]
