"""What the pages ask of a task: the interface each task's app side implements.

The pages (``pages/*.py``) never name a task: they call ``app_task(run.task)`` (:mod:`t3vis_app.tasks`) for
everything that differs by task, so that a new task arrives as one new implementation registered in
``APP_TASKS``. The library's sides of the same seam are :class:`t3vis.tasks.TaskSpec` (what a task is),
:class:`t3vis.record.task.RecordingTask` (how it is recorded) and :class:`t3vis.queries.frames.TaskFrames`
(how its rows become the app's frames).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from t3vis.model.access import ModelBundle
from t3vis.queries.example_queries import EXAMPLE_QUERIES, ExampleQuery
from t3vis.tasks import TaskSpec

# draw one learning curve with its figure buttons: (frame, metric, split or None)
CurveDrawer = Callable[[pd.DataFrame, str, "str | None"], None]


@runtime_checkable
class AppTask(Protocol):
    """The app side of one task."""

    spec: TaskSpec
    data_map_points: tuple[str, ...]  # what the Data Map's points can be: "examples", "units", "spans"

    # -- Projection page ---------------------------------------------------------------------------
    def projection_filters(self, ctx, split: str, points: str, attribute_names) -> tuple:
        """Filters the task adds to the view's own (drawn by the task, e.g. a tag confusion matrix)."""

    def selection_panel(self, ctx, split: str) -> None:
        """The selected example under the projection: its text and prediction, in the task's terms."""

    # -- Instance page ---------------------------------------------------------------------------------
    def instance_view(self, ctx) -> None:
        """The Instance page under its title: the selected example's outputs, explained by saliency."""

    # -- Attention heads page --------------------------------------------------------------------------
    def heads_example(self, ctx) -> tuple[str | None, int | None, dict | None]:
        """(split, example_id, details) of the selected example, as the head view analyses it."""

    def analyse_heads(self, bundle: ModelBundle, details: dict, run, pruned: frozenset) -> Any:
        """One example's live head analysis (importance, attention, probabilities) with ``pruned`` masked."""

    def importance_target(self, details: dict) -> str:
        """What an example's head importance is the importance for ("gold label x", "its loss ...")."""

    def pruning_effect(self, ctx, details: dict, before, after, *, pruned_label: str, split: str,
                       example_id: int) -> None:
        """Draw how pruning changed the selected example's outputs (``before``/``after``: analyse_heads)."""

    evaluation_help: str  # the metrics the evaluation with pruned heads reports

    def evaluate_pruning(self, bundle: ModelBundle, ctx, split: str, *, pruned: frozenset,
                         progress: Callable) -> Any:
        """The checkpoint's metrics on the split's stored examples (a dataclass), with ``pruned`` masked."""

    # -- Training page ---------------------------------------------------------------------------------
    def training_view(self, ctx, curves: pd.DataFrame, draw_curve: CurveDrawer) -> None:
        """The Training page under its title (``curves``: the run's accuracy and loss per checkpoint)."""

    # -- SQL page ----------------------------------------------------------------------------------------
    def example_queries(self) -> tuple[ExampleQuery, ...]:
        """The SQL page's example queries for a run of the task."""


def queries_for(task: str) -> tuple[ExampleQuery, ...]:
    """The example queries about any run, then those about runs of ``task``."""
    return (tuple(query for query in EXAMPLE_QUERIES if query.task is None)
            + tuple(query for query in EXAMPLE_QUERIES if query.task == task))
