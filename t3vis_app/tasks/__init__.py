"""The app side of the task seam: one AppTask per task (:mod:`t3vis_app.tasks.base`), registered in APP_TASKS.

The pages call ``app_task(run.task)`` for everything that differs by task; a new task is one new module here,
registered below, next to its library sides (``t3vis.tasks.SPECS``, ``t3vis.record.task.RECORDING_TASKS``,
``t3vis.queries.explore.TASK_FRAMES``).
"""

from __future__ import annotations

from t3vis.tasks import task_spec
from t3vis_app.tasks.base import AppTask
from t3vis_app.tasks.classification import ClassificationApp
from t3vis_app.tasks.generation import GenerationApp
from t3vis_app.tasks.summarization import SummarizationApp
from t3vis_app.tasks.tagging import TaggingApp

APP_TASKS: dict[str, AppTask] = {task.spec.name: task for task in (ClassificationApp(), SummarizationApp(),
                                                                   TaggingApp(), GenerationApp())}


def app_task(name: str | None) -> AppTask:
    """The app side of a run's task (None, a store from before tasks: sequence classification)."""
    return APP_TASKS[task_spec(name).name]
