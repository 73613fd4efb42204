"""The task as one concept: binary classification, multiclass classification or regression.

Every module that behaves differently by task asks the task object (:func:`get_task`) instead of branching on
the brief's ``task`` string itself.

>>> get_task("regression").default_primary
'mae'
"""

from __future__ import annotations

from .base import TASK_NAMES, Task, TaskName
from .binary import BinaryTask
from .multiclass import MulticlassTask
from .regression import RegressionTask

__all__ = ["TASKS", "TASK_NAMES", "Task", "TaskName", "BinaryTask", "MulticlassTask", "RegressionTask",
           "get_task"]

TASKS: dict[str, Task] = {t.name: t for t in (BinaryTask(), MulticlassTask(), RegressionTask())}


def get_task(task: str | Task | object) -> Task:
    """The task object for a task name, a brief (its ``task``) or a task object.

    Raises
    ------
    ValueError
        An unknown task name (the message lists the known ones).
    """
    if isinstance(task, Task):
        return task
    name = task if isinstance(task, str) else getattr(task, "task", None)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]
