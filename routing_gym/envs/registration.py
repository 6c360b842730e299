"""Every environment ID of the suite, registered idempotently.

Entry points are strings so that importing routing_gym stays light: an env's
module (and torch, transformers...) loads only when that env is made.
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

ENV_IDS: list[str] = []

#: Outcome-table task names (as in LLMRouter's data) -> the variant name in the env ID,
#: e.g. "arc_challenge" -> "LLMRouting-Table-ARC-v0".
TABLE_TASK_VARIANTS: dict[str, str] = {
    "gsm8k": "GSM8K",
    "math": "MATH",
    "mbpp": "MBPP",
    "arc_challenge": "ARC",
    "mmlu": "MMLU",
    "human_eval": "HumanEval",
    "natural_qa": "NaturalQA",
    "trivia_qa": "TriviaQA",
    "commonsense_qa": "CommonsenseQA",
    "openbook_qa": "OpenBookQA",
    "gpqa": "GPQA",
    "agentverse-mgsm": "MGSM",
    "agentverse-logicgrid": "LogicGrid",
    "commongen": "CommonGen",
}
#: The six tasks HierRouter reports on; each also gets a cascade variant.
HIERROUTER_TASKS: tuple[str, ...] = ("gsm8k", "math", "mbpp", "arc_challenge", "mmlu", "human_eval")


def env_ids_of(entry_point: str) -> list[str]:
    """The suite's IDs (``ENV_IDS`` order) whose env class is ``entry_point``, e.g.
    ``"routing_gym.envs.table:TableRoutingEnv"``."""
    return [env_id for env_id in ENV_IDS if gym.spec(env_id).entry_point == entry_point]


def is_live_env_id(env_id: str) -> bool:
    """Whether a registered ID is a live (model-calling) routing env; imports its env class."""
    from routing_gym.envs.teacher_student import LiveRoutingEnv

    creator = gym.spec(env_id).entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return isinstance(creator, type) and issubclass(creator, LiveRoutingEnv)


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **kwargs)
    if env_id not in ENV_IDS:
        ENV_IDS.append(env_id)


def register_envs() -> None:
    """Register all routing_gym IDs; calling it again is a no-op."""
    table = "routing_gym.envs.table:TableRoutingEnv"
    cascade = "routing_gym.envs.table_cascade:TableCascadeEnv"
    _register("LLMRouting-Table-v0", table)
    for task, name in TABLE_TASK_VARIANTS.items():
        _register(f"LLMRouting-Table-{name}-v0", table, kwargs={"tasks": [task]})
    _register("LLMRouting-Table-Cascade-v0", cascade)
    for task in HIERROUTER_TASKS:
        name = TABLE_TASK_VARIANTS[task]
        _register(f"LLMRouting-Table-Cascade-{name}-v0", cascade, kwargs={"tasks": [task]})
    _register_live_envs()
    _register_multihop_envs()


def _register_live_envs() -> None:
    """The live Teacher–Student envs: per-turn routing and one assignment per episode."""
    for task, entry_point in (
        ("HotpotQA", "routing_gym.envs.hotpotqa:HotpotQAEnv"),
        ("MMLU", "routing_gym.envs.mmlu:MMLUEnv"),
    ):
        # gym.make_vec(..., vectorization_mode="vector_entry_point") batches every step's calls
        # Live models may answer differently across hardware; a warm cache still replays exactly.
        live = {"nondeterministic": True, "vector_entry_point": f"routing_gym.vector:{task}VectorEnv"}
        _register(f"LLMRouting-{task}-v0", entry_point, **live)
        _register(f"LLMRouting-{task}-Assign-v0", entry_point, kwargs={"action_type": "assignment"}, **live)
        # HAPS: the assignment plus per-query LoRA factors for each open model, in one Dict action.
        _register(f"LLMRouting-{task}-HAPS-v0", entry_point, kwargs={"action_type": "hybrid"}, **live)


def _register_multihop_envs() -> None:
    """HierRouter's live multi-hop pipeline: one ID per task and one mixing all six."""
    multihop = "routing_gym.envs.multihop:MultiHopEnv"
    live = {"nondeterministic": True, "vector_entry_point": "routing_gym.vector:MultiHopVectorEnv"}
    _register("LLMRouting-MultiHop-v0", multihop, **live)
    for task in HIERROUTER_TASKS:
        name = TABLE_TASK_VARIANTS[task]
        _register(f"LLMRouting-MultiHop-{name}-v0", multihop, kwargs={"tasks": [task]}, **live)
