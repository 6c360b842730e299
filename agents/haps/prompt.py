"""The routing prompt the backbone reads: role definitions, task, question, candidate models."""

from __future__ import annotations

from typing import Any, Sequence

ROLE_DEFINITIONS = (
    "Roles: the Student reasons step by step, gathers evidence and proposes the answer; "
    "the Teacher reviews each Student step and answers Continue or Rethink with a reason."
)
TASK_DESCRIPTIONS = {
    "hotpotqa": "Task: multi-hop question answering; the Student may search the question's "
    "ten Wikipedia paragraphs before it answers with a short span.",
    "mmlu": "Task: a four-way multiple-choice exam question; the answer is one letter, A to D.",
}


def example_text(example: Any, question_chars: int = 1000) -> str:
    """The question of a data-set example (with its choices, if any), or a plain string."""
    if isinstance(example, str):
        text = example
    else:
        text = str(getattr(example, "question", ""))
        choices = getattr(example, "choices", None)
        if choices:
            text += " " + " ".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    text = " ".join(text.split())
    return text[:question_chars]


def routing_prompt(question: str, models: Sequence[str], task: str) -> str:
    """The four parts the backbone reads: role definitions, task, question, candidate models."""
    description = TASK_DESCRIPTIONS.get(task, f"Task: {task}.")
    return "\n".join(
        (
            ROLE_DEFINITIONS,
            description,
            f"Question: {question}",
            "Candidate models: " + ", ".join(models) + ".",
        )
    )


def is_vector_env(env: Any) -> bool:
    """True for a VecEnv (SB3's interface: ``get_attr`` and ``num_envs``)."""
    return hasattr(env, "get_attr") and hasattr(env, "num_envs")


def current_example(env: Any) -> list[Any]:
    """The example of each env's current episode (one per env of a VecEnv).

    The observation holds only an embedding and ``info["question"]`` is opt-in, so the agent
    reads the episode state of the env it is bound to.
    """
    if is_vector_env(env):
        return list(env.get_attr("current_example"))
    return [env.unwrapped.current_example]
