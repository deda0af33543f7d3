"""Tagged sentences for token classification: words with one tag each (named entities, POS, chunks).

Two layouts are read:

- **CoNLL column files** (``.conll``, ``.txt``, ``.iob``, ``.bio``): one word per line, columns separated by
  whitespace, a blank line between sentences, ``-DOCSTART-`` lines between documents (CoNLL-2003:
  ``word POS chunk NER``). ``tag_column`` picks the column of the tags (default: the last).
- **Tables** (JSONL, Parquet, a ``datasets`` folder, CSV): one sentence per row with a list of words and a
  list of tags (``datasets``' usual ``tokens`` / ``ner_tags``), the tags as names or as ids named by the
  folder's ``ClassLabel`` feature or by ``tag_names``.

Tag ids follow ``tag_names``: given, from the dataset's features, or sorted ("O" first, then each entity
type's ``B-`` before its ``I-``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from t3vis.data.loading import _decode, _example_ids, _guess_column, _jsonable_frame, _require_column, _rows, read_table
from t3vis.errors import DataError, option

CONLL_EXTENSIONS = (".conll", ".txt", ".iob", ".bio")
WORDS_COLUMN_GUESSES = ("tokens", "words", "token", "word")
TAGS_COLUMN_GUESSES = ("ner_tags", "tags", "labels", "ner", "pos_tags", "chunk_tags", "label")
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class TaggedSentences:
    """Sentences as words with one gold tag per word."""

    example_ids: np.ndarray  # (N,) int64, unique
    words: list[list[str]]  # N sentences, each a list of words
    tags: list[np.ndarray]  # N arrays (W_i,) int64: each word's tag id
    tag_names: tuple[str, ...]  # tag_names[id] is a tag's name
    extra: pd.DataFrame  # (N, k) other columns (a CoNLL file: the sentence's document number)
    source: str

    def __len__(self) -> int:
        return len(self.words)

    @property
    def texts(self) -> list[str]:
        """Each sentence as one text, its words joined by spaces."""
        return [" ".join(words) for words in self.words]

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.tag_names


def sort_tag_names(names) -> tuple[str, ...]:
    """"O" first, then by entity type, each ``B-`` before its ``I-`` (other tags: alphabetically)."""
    def key(name: str):
        if name == "O":
            return (0, "", 0)
        prefix, _, kind = name.partition("-")
        if prefix in ("B", "I", "E", "S") and kind:
            return (1, kind, "BIES".index(prefix))
        return (2, name, 0)
    return tuple(sorted(set(names), key=key))


def outside_tag(tag_names: Sequence[str]) -> int:
    """The id of the tag outside every entity ("O"); 0 when the tags have none (e.g. POS tags)."""
    names = list(tag_names)
    return names.index("O") if "O" in names else 0


def entity_types(tag_names: Sequence[str]) -> tuple[str, ...]:
    """The entity types of IOB tags (``B-PER`` → ``PER``), sorted; empty when the tags are not IOB."""
    return tuple(sorted({name[2:] for name in tag_names if name[:2] in ("B-", "I-") and len(name) > 2}))


def read_conll(path: str | Path, *, tag_column: int = -1, encoding: str = "utf-8") -> pd.DataFrame:
    """The sentences of a CoNLL column file: a frame with columns ``tokens``, ``tags`` (names) and ``document``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist. Check {option('path', flag='--data')}.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes).")
    text = _decode(path, encoding)
    sentences, words, tags = [], [], []
    document, width, start_line = 0, None, 1

    def end_sentence() -> None:
        if words:
            sentences.append((list(words), list(tags), document))
            words.clear()
            tags.clear()

    for number, line in enumerate(text.split("\n"), start=1):
        columns = line.split()
        if not columns:
            end_sentence()
            continue
        if columns[0] == DOCSTART:
            end_sentence()
            document += 1
            continue
        if width is None:
            width, start_line = len(columns), number
        if len(columns) != width:
            raise DataError(f"{path.name} line {number} has {len(columns)} columns, but line {start_line} has "
                            f"{width}: {line.strip()[:80]!r}. A CoNLL file has the same columns on every word "
                            "line (words may not contain spaces).")
        if not -width <= tag_column < width:
            raise DataError(f"{path.name} has {width} columns; {option('tag_column')} {tag_column} is not one of "
                            f"them (0 to {width - 1}, or -1 for the last).")
        words.append(columns[0])
        tags.append(columns[tag_column])
    end_sentence()  # the last sentence may have no blank line after it
    if not sentences:
        raise DataError(f"{path.name} has no sentences (only -DOCSTART- and blank lines).")
    return pd.DataFrame(sentences, columns=["tokens", "tags", "document"])


def load_tagged(
    path: str | Path,
    *,
    words_column: str | None = None,
    tags_column: str | None = None,
    tag_names: Sequence[str] | None = None,
    tag_column: int = -1,
    id_column: str | None = None,
    split: str | None = None,
    encoding: str = "utf-8",
    file_format: str | None = None,
    limit: int | None = None,
) -> TaggedSentences:
    """Read tagged sentences from a CoNLL column file or a table of word and tag lists.

    Parameters
    ----------
    words_column, tags_column : str, optional
        A table's columns of word lists and tag lists; default: detected (``tokens``, ``ner_tags``, ...).
    tag_names : sequence of str, optional
        The tags in id order: needed when a table holds tag ids and does not name them.
    tag_column : int
        A CoNLL file's column of the tags (0-based; -1 = the last, CoNLL-2003's NER column).
    limit : int, optional
        Keep the first ``limit`` sentences.
    """
    if limit is not None and limit < 1:
        raise DataError(f"{option('limit')} must be at least 1 (the number of sentences to use), not {limit}.")
    path = Path(path)
    is_conll = file_format == "conll" or (file_format is None and path.suffix.lower() in CONLL_EXTENSIONS)
    if is_conll:
        frame = read_conll(path, tag_column=tag_column, encoding=encoding)
        words_column, tags_column = "tokens", "tags"
    else:
        frame = read_table(path, file_format=file_format, encoding=encoding, split=split)
        if frame.empty:
            raise DataError(f"{path.name} contains no rows (only a header).")
        columns = [str(column) for column in frame.columns]
        words_column = words_column or _guess_column(WORDS_COLUMN_GUESSES, columns, "words",
                                                     option("words_column"), path)
        _require_column(words_column, columns, option("words_column"), path)
        tags_column = tags_column or _guess_column(TAGS_COLUMN_GUESSES, columns, "tags", option("tags_column"), path)
        _require_column(tags_column, columns, option("tags_column"), path)
    if id_column:
        _require_column(id_column, [str(column) for column in frame.columns], option("id_column"), path)
    if limit is not None:
        frame = frame.iloc[:limit].reset_index(drop=True)
    words = [_word_list(value, row, words_column, path) for row, value in enumerate(frame[words_column])]
    raw_tags = [_word_list(value, row, tags_column, path, strings=False) for row, value in
                enumerate(frame[tags_column])]
    lengths = np.array([len(w) for w in words]) != np.array([len(t) for t in raw_tags])
    if lengths.any():
        raise DataError(f"{path.name}: the sentences in data rows {_rows(lengths)} have a different number of words "
                        f"and tags. Check {option('tags_column')}.")
    empty = np.array([not w for w in words])
    if empty.any():
        raise DataError(f"{path.name}: the sentences in data rows {_rows(empty)} have no words. Drop those rows.")
    known = frame.attrs.get("class_label_names", {}).get(tags_column)
    names, tags = _tag_ids(raw_tags, tag_names or known, path)
    extra = _jsonable_frame(frame.drop(columns=[words_column, tags_column] + ([id_column] if id_column else [])))
    return TaggedSentences(example_ids=_example_ids(frame, id_column, path), words=words, tags=tags,
                           tag_names=names, extra=extra, source=str(path))


def _word_list(value, row: int, column: str, path: Path, *, strings: bool = True) -> list:
    """A cell holding a list (a JSON list in a CSV cell is parsed)."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{path.name}: column {column!r} of data row {row + 1} is not a list of "
                        f"{'words' if strings else 'tags'} ({type(value).__name__}). Token classification needs one "
                        "list per sentence (the `datasets` layout), or a CoNLL column file.")
    return [str(item) for item in value] if strings else list(value)


def _tag_ids(raw: list[list], names: Sequence[str] | None, path: Path) -> tuple[tuple[str, ...], list[np.ndarray]]:
    every = [tag for tags in raw for tag in tags]
    numeric = all(isinstance(tag, (int, np.integer)) and not isinstance(tag, bool) for tag in every)
    if numeric:
        if names is None:
            raise DataError(f"{path.name} holds tag ids without names; give the tags in id order with "
                            f"{option('tag_names', flag='--label-names')} (e.g. O,B-PER,I-PER,...).")
        names = tuple(str(name) for name in names)
        bad = sorted({int(tag) for tag in every if not 0 <= int(tag) < len(names)})
        if bad:
            raise DataError(f"{path.name} has tag ids {bad[:10]} outside the {len(names)} tag names {list(names)}.")
        return names, [np.asarray(tags, dtype=np.int64) for tags in raw]
    strings = [[str(tag) for tag in tags] for tags in raw]
    if names is None:
        names = sort_tag_names(tag for tags in strings for tag in tags)
    names = tuple(str(name) for name in names)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({tag for tags in strings for tag in tags} - set(index))
    if unknown:
        raise DataError(f"{path.name} has tags {unknown[:10]} that are not among {option('tag_names', flag='--label-names')} "
                        f"{list(names)}.")
    return names, [np.array([index[tag] for tag in tags], dtype=np.int64) for tags in strings]


def tagged_sentences(words: Sequence[Sequence[str]], tags: Sequence[Sequence[str]], *,
                     tag_names: Sequence[str] | None = None, example_ids: np.ndarray | None = None,
                     source: str = "") -> TaggedSentences:
    """Tagged sentences from Python lists (words and tag names), e.g. for tests and examples."""
    names = tuple(tag_names) if tag_names is not None else sort_tag_names(t for row in tags for t in row)
    index = {name: i for i, name in enumerate(names)}
    ids = np.arange(len(words), dtype=np.int64) if example_ids is None else np.asarray(example_ids, dtype=np.int64)
    return TaggedSentences(example_ids=ids, words=[list(map(str, row)) for row in words],
                           tags=[np.array([index[t] for t in row], dtype=np.int64) for row in tags],
                           tag_names=names, extra=pd.DataFrame(index=range(len(words))), source=source)
