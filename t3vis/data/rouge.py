"""ROUGE for extractive summaries, and the greedy oracle that labels which sentences to extract.

Scores are ``rouge-score``'s (Google's reimplementation of the original Perl script): ROUGE-1 and
ROUGE-2 F1 over stemmed, lower-cased alphanumeric tokens, and ROUGE-L as ``rougeLsum``, the
summary-level LCS over sentences separated by newlines (what summarization papers report as
ROUGE-L). The oracle follows Liu & Lapata (2019): starting from nothing, repeatedly add the
document sentence that most increases ROUGE-1 F1 + ROUGE-2 F1 of the selection against the
reference, and stop when no sentence increases it or ``max_sentences`` are chosen. Its n-gram
counts use the same tokenizer as the reported scores, so the oracle's ROUGE is what it optimises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

ORACLE_SENTENCES = 3  # Liu & Lapata's summary size; also how many sentences a predicted summary has


@dataclass(frozen=True)
class RougeScores:
    """ROUGE F1 scores in [0, 1]."""

    rouge1: float
    rouge2: float
    rougeL: float  # rougeLsum: summary-level LCS, sentences on their own lines


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer  # imported on first use: it loads nltk

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)


_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem import porter  # what rouge-score stems with

    return porter.PorterStemmer()


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stem(word) if len(word) > 3 else word


def tokens(text: str) -> list[str]:
    """The tokens ROUGE compares: lower-cased, alphanumeric, Porter-stemmed when longer than 3 letters.

    The same steps as rouge-score's tokenizer, with the stemming of each word cached (the stemmer is
    most of its time); a test checks both give the same tokens on real articles.
    """
    return [_stem(word) for word in _NOT_ALPHANUMERIC.sub(" ", text.lower()).split()]


def rouge(summary: Sequence[str], reference: Sequence[str]) -> RougeScores:
    """ROUGE of a summary (its sentences) against the reference (its sentences)."""
    scores = _scorer().score("\n".join(reference), "\n".join(summary))
    return RougeScores(scores["rouge1"].fmeasure, scores["rouge2"].fmeasure, scores["rougeLsum"].fmeasure)


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def ngram_f1(candidate: Counter, reference: Counter) -> float:
    """F1 of clipped n-gram overlap, as rouge-score computes ROUGE-N."""
    overlap = sum((candidate & reference).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(candidate.values())
    recall = overlap / sum(reference.values())
    return 2 * precision * recall / (precision + recall)


def greedy_oracle(sentences: Sequence[str], reference: Sequence[str], *,
                  max_sentences: int = ORACLE_SENTENCES) -> list[int]:
    """Indices (ascending) of the sentences the greedy ROUGE oracle extracts.

    A selection is scored as rouge-score scores a summary: its sentences in document order, their
    tokens concatenated (so a bigram may span two sentences), ROUGE-1 F1 + ROUGE-2 F1.
    """
    reference_words = [word for sentence in reference for word in tokens(sentence)]
    targets = (_ngrams(reference_words, 1), _ngrams(reference_words, 2))
    words = [tokens(sentence) for sentence in sentences]

    def gain(selection: list[int]) -> float:
        summary = [word for index in sorted(selection) for word in words[index]]
        return ngram_f1(_ngrams(summary, 1), targets[0]) + ngram_f1(_ngrams(summary, 2), targets[1])

    chosen: list[int] = []
    best = 0.0
    while len(chosen) < max_sentences:
        scored = [(gain(chosen + [index]), -index) for index in range(len(sentences)) if index not in chosen]
        if not scored:
            break
        value, negative_index = max(scored)  # ties: the earlier sentence
        if value <= best:
            break
        best = value
        chosen.append(-negative_index)
    return sorted(chosen)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 of a text against a reference: the longest common subsequence of their ROUGE tokens
    (:func:`tokens`), as rouge-score's ``rougeL`` (one sequence each, lines not split)."""
    ours, theirs = tokens(candidate), tokens(reference)
    if not ours or not theirs:
        return 0.0
    previous = [0] * (len(theirs) + 1)  # LCS lengths of the candidate so far against each prefix of the reference
    for word in ours:
        current = [0]
        for index, other in enumerate(theirs):
            current.append(previous[index] + 1 if word == other else max(previous[index + 1], current[index]))
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(ours), common / len(theirs)
    return 2 * precision * recall / (precision + recall)
