"""Teacher–Student HotpotQA as a finite-horizon routing MDP."""

from __future__ import annotations

from routing_gym.data.hotpotqa import load_hotpotqa
from routing_gym.envs.teacher_student import LiveRoutingEnv


class HotpotQAEnv(LiveRoutingEnv):
    """
    ## Description
    Multi-hop question answering by two LLM agents (appendix B of the HAPS paper, with
    our own prompts). Each round the Student writes a thought and an action,
    ``Search[entity]`` (dense retrieval over the question's ten paragraphs) or
    ``Finish[answer]``; the Teacher reviews the step and answers ``Continue`` or
    ``Rethink`` with its reasons. After the search budget the Student must finish.
    The router decides which model of the pool plays each turn (HierRouter's
    formulation: state = context, depth, accumulated cost).

    ## Action Space
    ``action_type="per-turn"`` (default): ``Discrete(M)``, the model for the next turn.
    ``action_type="assignment"``: ``MultiDiscrete([M, M])``, one model for the Student and
    one for the Teacher, chosen once; the whole episode then runs in one step.
    An action outside the space raises ``ValueError``.

    ## Observation Space
    A single-level ``Dict``: ``context`` (384-d all-MiniLM-L6-v2 embedding of the question
    plus transcript), ``depth`` (turns / max turns), ``cost`` (normalized accumulated cost),
    ``role`` (one-hot Student/Teacher for the next turn; zeros once over) and
    ``searches_left`` (remaining search budget / budget).

    ## Rewards
    At the end: token F1 of the final answer − λ · normalized episode cost. With
    ``per_step_cost=True`` each step pays its cost increment and the total is the same.
    ``info`` carries ``perf``, ``cost``, ``normalized_cost``, ``lam``, ``reward_vector``
    (perf, −normalized cost), the models used and token counts; with
    ``record_text=True`` also the question, the transcript and every call's token ids.

    ## Starting State
    A question of the split, in an order shuffled by the reset seed
    (``reset(options={"index": i})`` picks one).

    ## Episode End
    Terminated when the Teacher accepts the Student's answer; truncated at the depth cap
    (2 × ``max_rounds`` turns), where the last answer counts.

    ## Arguments
    ``gym.make("LLMRouting-HotpotQA-v0", config={...}, render_mode="ansi")``; see
    ``default_config()``: ``models``, ``lam`` (number or "performance-first" / "balanced" /
    "cost-first"), ``split`` ("train" / "valid" or a path), ``data_dir``, ``limit``,
    ``protocol`` (``search_budget``, ``max_rounds``, generation limits...),
    ``cache_path``, ``cache_mode``, ``cost_bounds``, ``per_step_cost``, ``record_text``.

    ## Registered Configurations
    * ``LLMRouting-HotpotQA-v0``: per-turn routing.
    * ``LLMRouting-HotpotQA-Assign-v0``: one assignment per episode.

    ## Version History
    * v0: initial release.
    """

    protocol_name = "hotpotqa"

    def load_split(self, split: str, data_dir) -> list:
        return load_hotpotqa(split, data_dir=data_dir)
