"""Teacher–Student MMLU as a finite-horizon routing MDP."""

from __future__ import annotations

from routing_gym.data.mmlu import load_mmlu
from routing_gym.data.splits import first_by_hash
from routing_gym.envs.teacher_student import LiveRoutingEnv


class MMLUEnv(LiveRoutingEnv):
    """
    ## Description
    Multiple-choice questions answered by two LLM agents. Each round the Student writes a
    short solution ending in an answer letter; the Teacher reviews it and chooses
    ``Continue`` (revise) or ``Submit``. The letter is read by comparing the Student
    model's log-probabilities of A–D (``protocol={"letter_mode": "logprob"}``, the default:
    small models rarely write a clean letter) or by a regex (``"regex"``). The router
    decides which model of the pool plays each turn.

    ## Action Space
    ``action_type="per-turn"`` (default): ``Discrete(M)``, the model for the next turn.
    ``action_type="assignment"``: ``MultiDiscrete([M, M])``, one model per role for the
    whole episode, run in one step. An action outside the space raises ``ValueError``.

    ## Observation Space
    A single-level ``Dict``: ``context`` (384-d embedding of question plus transcript),
    ``depth``, ``cost`` (normalized), ``role`` (one-hot) and ``searches_left`` (always 0).

    ## Rewards
    At the end: 1 if the last answer letter is correct, else 0, − λ · normalized episode
    cost (or the same total spread over steps with ``per_step_cost=True``).

    ## Starting State
    A question of the split (``val`` by default, all 57 subjects), in seeded order. With
    ``limit`` the env keeps the first questions by id hash, spread over the subjects.

    ## Episode End
    Terminated when the Teacher submits; truncated after ``max_rounds`` rounds
    (default 3), where the last answer counts.

    ## Arguments
    As ``HotpotQAEnv``; ``split`` is "dev", "val" or "test", and ``protocol`` takes
    ``max_rounds``, ``letter_mode`` and the generation limits.

    ## Registered Configurations
    * ``LLMRouting-MMLU-v0``: per-turn routing.
    * ``LLMRouting-MMLU-Assign-v0``: one assignment per episode.

    ## Version History
    * v0: initial release.
    """

    protocol_name = "mmlu"

    @classmethod
    def default_config(cls):
        return {**super().default_config(), "split": "val", "subjects": None}

    def load_split(self, split: str, data_dir) -> list:
        return load_mmlu(split, subjects=self.config["subjects"], data_dir=data_dir)

    def limit_examples(self, examples: list, limit: int | None, skip: int = 0) -> list:
        # The files come subject by subject, so a prefix would be one or two subjects.
        return first_by_hash(examples, limit, skip=skip)
