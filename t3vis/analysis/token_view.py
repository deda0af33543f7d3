"""Tokens as wrapped blocks for the Instance view: word-piece merging and a line layout (no UI code here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>"}


def merge_word_pieces(tokens: list[str], scores: np.ndarray) -> tuple[list[str], np.ndarray, list[list[int]]]:
    """Join word pieces into words, summing their scores (relevance is additive).

    Handles BERT's ``##`` continuation marks and the ``Ġ``/``▁`` word-start marks of byte-level
    and SentencePiece tokenizers. Returns (words, scores (W,), token indices of each word).
    """
    words: list[str] = []
    groups: list[list[int]] = []
    byte_level = any(token.startswith(("Ġ", "▁")) for token in tokens)
    for index, token in enumerate(tokens):
        starts_word = (token in SPECIAL or not words or words[-1] in SPECIAL
                       or (token.startswith(("Ġ", "▁")) if byte_level else not token.startswith("##")))
        piece = token.lstrip("Ġ▁") if byte_level else token.removeprefix("##")
        if starts_word:
            words.append(piece)
            groups.append([index])
        else:
            words[-1] += piece
            groups[-1].append(index)
    merged = np.array([float(np.sum(np.asarray(scores)[group])) for group in groups])
    return words, merged, groups


def layout_tokens(tokens: list[str], *, line_chars: int = 90, line_starts: set[int] = frozenset()) -> pd.DataFrame:
    """Position each token on wrapped lines: columns index, token, line, start, width (in characters).

    A token whose index is in ``line_starts`` begins a new line (e.g. each sentence of a document).
    """
    rows, line, start = [], 0, 0
    for index, token in enumerate(tokens):
        width = max(len(token), 1) + 1
        if start and (start + width > line_chars or index in line_starts):
            line, start = line + 1, 0
        rows.append({"index": index, "token": token, "line": line, "start": start, "width": width})
        start += width
    return pd.DataFrame(rows)
