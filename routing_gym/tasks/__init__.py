"""The six tasks of HierRouter's multi-hop pipeline: data, hop prompts and scoring."""

from routing_gym.tasks.base import SPLITS, HopTask, LoadOptions, Score
from routing_gym.tasks.choice_tasks import ARCTask, MMLUTask
from routing_gym.tasks.code_tasks import HumanEvalTask, MBPPTask
from routing_gym.tasks.math_tasks import GSM8KTask, MATHTask

#: Task name (as in the outcome table) -> task; the order fixes the observation's one-hot.
HOP_TASKS: dict[str, HopTask] = {
    task.name: task for task in (GSM8KTask(), MATHTask(), MBPPTask(), ARCTask(), MMLUTask(), HumanEvalTask())
}


def get_task(name: str) -> HopTask:
    """The task called ``name``; an unknown name raises ValueError listing the known ones."""
    if name not in HOP_TASKS:
        raise ValueError(f"Unknown task {name!r}; known tasks: {list(HOP_TASKS)}.")
    return HOP_TASKS[name]


__all__ = ["HOP_TASKS", "SPLITS", "HopTask", "LoadOptions", "Score", "get_task"]
