"""The Instance view and the live head analysis of one generation example (prompt, reference, generation)."""

from __future__ import annotations

EVALUATION_HELP = "completion loss, perplexity and the generation's score (exact match or ROUGE-L)"


def instance_view(ctx) -> None:
    raise NotImplementedError("Instance view of a generation run")  # helper D


def heads_example(ctx):
    raise NotImplementedError


def analyse_heads(bundle, details: dict, run, pruned: frozenset):
    raise NotImplementedError


def importance_target(details: dict) -> str:
    raise NotImplementedError


def pruning_effect(ctx, details: dict, before, after, *, pruned_label: str, split: str, example_id: int) -> None:
    raise NotImplementedError


def evaluate_pruning(bundle, ctx, split: str, *, pruned: frozenset, progress):
    raise NotImplementedError
