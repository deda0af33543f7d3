"""Reads behind the live views of a generation run: how the run encoded its pairs, and a split's pairs and
generations for the evaluation with pruned heads.

The Instance view and the Attention heads view of a generation run recompute things on the checkpoint's model
(saliency of a clicked token, head importance and the split's metrics with pruned heads): they need the pairs as
stored (the prompt as the model reads it, ``examples.text``; the reference's token ids, ``units.label``), the
checkpoint's greedy generations and how the run encoded its pairs (the run's ``config``: data format, token
limits). One example with its scores is :func:`t3vis.queries.generation.example_details`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from t3vis.store.database import Store

DEFAULT_MAX_NEW_TOKENS = 64  # IngestConfig's default, for runs whose config does not say


def run_settings(config, max_length: int) -> dict:
    """How a run encoded its pairs and generated, from its ``runs.config`` (JSON text or a dict) and
    ``runs.max_length``: ``format`` (of :data:`t3vis.data.completions.FORMATS`; a run recorded without one reads
    plain prompt → completion text), ``max_length`` (tokens of prompt + completion), ``max_completion_tokens``
    (None: no cut) and ``max_new_tokens`` (None when the config does not say: see :func:`generation_limit`)."""
    config = json.loads(config) if isinstance(config, str) and config else (config if isinstance(config, dict) else {})
    return {"format": config.get("format") or "prompt-completion",
            "max_length": int(config.get("max_length") or max_length),
            "max_completion_tokens": config.get("max_completion_tokens"),
            "max_new_tokens": config.get("max_new_tokens") or None}


def generation_limit(settings: dict, generated_ids, stopped) -> int:
    """The most tokens a generation had: the run's ``max_new_tokens``; else the length of a stored generation that
    did not stop by itself (it was cut at the limit); else the ingestion default."""
    if settings.get("max_new_tokens"):
        return int(settings["max_new_tokens"])
    if generated_ids is not None and len(generated_ids) and _stopped_early(stopped) is False:
        return len(generated_ids)
    return DEFAULT_MAX_NEW_TOKENS


@dataclass(frozen=True)
class StoredCompletions:
    """A split's pairs as stored, and a checkpoint's generations of them."""

    pairs: pd.DataFrame  # example_id, prompt, reference, reference_ids (the kept reference tokens' ids, a list each)
    generations: list[str | None]  # each pair's greedy generation at the checkpoint (None: not generated)
    settings: dict  # run_settings, its max_new_tokens resolved (generation_limit over the stored generations)


def stored_completions(store: Store, run_id: str, split: str, checkpoint: str) -> StoredCompletions:
    """Everything the evaluation with pruned heads reads of a split, in example id order."""
    run = store.query("SELECT config, max_length FROM runs WHERE run_id = ?", [run_id])
    if run.empty:
        raise ValueError(f"no run {run_id!r} in the store")
    settings = run_settings(run.config.iloc[0], int(run.max_length.iloc[0]))
    pairs = store.query("SELECT example_id, text AS prompt, coalesce(reference, '') AS reference FROM examples "
                        "WHERE run_id = ? AND split = ? ORDER BY example_id", [run_id, split])
    tokens = store.query("SELECT example_id, list(label ORDER BY unit) AS reference_ids FROM units "
                         "WHERE run_id = ? AND split = ? AND kept GROUP BY example_id", [run_id, split])
    pairs = pairs.merge(tokens, on="example_id", how="left")
    pairs["reference_ids"] = [[int(token) for token in ids] if isinstance(ids, (list, tuple)) or hasattr(ids, "tolist")
                              else [] for ids in pairs.reference_ids]
    generated = store.query("SELECT example_id, generation, generated_ids, stopped FROM generations "
                            "WHERE run_id = ? AND split = ? AND checkpoint = ?", [run_id, split, checkpoint])
    texts = dict(zip(generated.example_id, generated.generation))
    if not settings["max_new_tokens"]:
        cut = [len(ids) for ids, stopped in zip(generated.generated_ids, generated.stopped)
               if _stopped_early(stopped) is False and ids is not None]
        settings = {**settings, "max_new_tokens": max(cut) if cut else DEFAULT_MAX_NEW_TOKENS}
    return StoredCompletions(pairs=pairs, generations=[texts.get(example_id) for example_id in pairs.example_id],
                             settings=settings)


def _stopped_early(stopped) -> bool | None:
    """``generations.stopped`` as a bool (None when not generated)."""
    return None if stopped is None or pd.isna(stopped) else bool(stopped)
