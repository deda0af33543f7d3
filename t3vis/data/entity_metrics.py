"""Entity-level precision, recall and F1 of predicted tags (``seqeval``, strict IOB2), overall and per type.

Strict mode counts an entity as found only when its type and its exact span (a ``B-`` tag and the
``I-`` tags that follow it) match the gold entity; an ``I-`` tag that does not continue an entity of
its type starts no entity. Words the model never saw (cut at its token limit) count as predicted ``O``.

Gold tags in IOB1 (the original CoNLL-2003 release: an entity starts with ``I-`` unless it follows
another of its type) would have no entity at all under strict IOB2: such data is scored after turning
every ``I-X`` that continues no ``X`` into ``B-X``, in the gold and the predicted tags alike (the same
rule the store's ``entity_spans`` view uses); the result says which ``scheme`` was scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from t3vis.data.tagging import entity_types


def is_iob(tag_names: Sequence[str]) -> bool:
    """Whether the tags are IOB tags (``O``, ``B-X``, ``I-X``), so that entity scores mean something."""
    return bool(entity_types(tag_names)) and all(name == "O" or name[:2] in ("B-", "I-") for name in tag_names)


def entity_scores(gold: Sequence[np.ndarray], predicted: Sequence[np.ndarray],
                  tag_names: Sequence[str]) -> dict:
    """Entity scores of predicted tag ids against gold tag ids (one array per sentence, same lengths).

    Returns {"precision", "recall", "f1", "support", "scheme", "per_type": {type: {precision, recall, f1,
    support}}}; empty when the tags are not IOB.
    """
    if not is_iob(tag_names):
        return {}
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    names = np.asarray(tag_names, dtype=object)
    truth = [list(names[np.asarray(tags, dtype=np.int64)]) for tags in gold]
    guess = [list(names[np.asarray(tags, dtype=np.int64)]) for tags in predicted]
    iob1 = any(_starts_without_b(tags) for tags in truth)
    if iob1:
        truth, guess = [to_iob2(tags) for tags in truth], [to_iob2(tags) for tags in guess]
    report = classification_report(truth, guess, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    overall = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {kind: _scores(values) for kind, values in report.items() if not kind.endswith(" avg")}
    return {**_scores(overall), "scheme": "IOB1, read as IOB2" if iob1 else "IOB2", "per_type": per_type}


def to_iob2(tags: list[str]) -> list[str]:
    """IOB tags with every ``I-X`` that continues no ``X`` entity turned into ``B-X``."""
    found, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        found.append(tag)
        previous = tag
    return found


def _starts_without_b(tags: list[str]) -> bool:
    return to_iob2(tags) != list(tags)


def _scores(values: dict) -> dict:
    return {"precision": float(values["precision"]), "recall": float(values["recall"]),
            "f1": float(values["f1-score"]), "support": int(values["support"])}
