"""Entity-level precision, recall and F1 of predicted tags (``seqeval``, strict IOB2), overall and per type.

Strict mode counts an entity as found only when its type and its exact span (a ``B-`` tag and the
``I-`` tags that follow it) match the gold entity; an ``I-`` tag that does not continue an entity of
its type starts no entity. Words the model never saw (cut at its token limit) count as predicted ``O``.
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

    Returns {"precision", "recall", "f1", "support", "per_type": {type: {precision, recall, f1, support}}};
    empty when the tags are not IOB.
    """
    if not is_iob(tag_names):
        return {}
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    names = np.asarray(tag_names, dtype=object)
    truth = [list(names[np.asarray(tags, dtype=np.int64)]) for tags in gold]
    guess = [list(names[np.asarray(tags, dtype=np.int64)]) for tags in predicted]
    report = classification_report(truth, guess, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    overall = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {kind: _scores(values) for kind, values in report.items() if not kind.endswith(" avg")}
    return {**_scores(overall), "per_type": per_type}


def _scores(values: dict) -> dict:
    return {"precision": float(values["precision"]), "recall": float(values["recall"]),
            "f1": float(values["f1-score"]), "support": int(values["support"])}
