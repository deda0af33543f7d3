"""The app side of generation (a causal language model fine-tuned on prompt → completion pairs).

The Instance view and the head analysis of one example live in :mod:`t3vis_app.tasks.generation_instance`.
"""

from __future__ import annotations

from t3vis.tasks import GENERATION, task_spec
from t3vis_app.tasks import generation_instance
from t3vis_app.tasks.base import queries_for


class GenerationApp:
    spec = task_spec(GENERATION)
    data_map_points = ("examples",)
    evaluation_help = generation_instance.EVALUATION_HELP

    def projection_filters(self, ctx, split: str, points: str, attribute_names) -> tuple:
        return ()

    def selection_panel(self, ctx, split: str) -> None:
        raise NotImplementedError("selection panel of a generation run")  # helper C

    def instance_view(self, ctx) -> None:
        generation_instance.instance_view(ctx)

    def heads_example(self, ctx):
        return generation_instance.heads_example(ctx)

    def analyse_heads(self, bundle, details: dict, run, pruned: frozenset):
        return generation_instance.analyse_heads(bundle, details, run, pruned)

    def importance_target(self, details: dict) -> str:
        return generation_instance.importance_target(details)

    def pruning_effect(self, ctx, details: dict, before, after, *, pruned_label: str, split: str,
                       example_id: int) -> None:
        generation_instance.pruning_effect(ctx, details, before, after, pruned_label=pruned_label, split=split,
                                           example_id=example_id)

    def evaluate_pruning(self, bundle, ctx, split: str, *, pruned: frozenset, progress):
        return generation_instance.evaluate_pruning(bundle, ctx, split, pruned=pruned, progress=progress)

    def training_view(self, ctx, curves, draw_curve) -> None:
        raise NotImplementedError("training view of a generation run")  # helper C

    def example_queries(self):
        return queries_for(GENERATION)
