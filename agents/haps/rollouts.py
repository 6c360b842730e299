"""Playing HAPS episodes: one env or lockstep copies, the joint phase's schedule, greedy evaluation.

A hybrid action plays a whole episode in one step, so an episode is one ``step`` (or one
``step_async`` / ``step_wait`` of lockstep copies). Every function takes the agent first; the
agent's methods of the same names call them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agents.haps.prompt import current_example
from agents.haps.tables import haps_reward
from routing_gym.cost import routing_reward

if TYPE_CHECKING:
    from agents.haps.agent import HAPSAgent

#: (question index, reset seed) of each episode to play.
Schedule = Sequence[tuple[int, int]]


@dataclass
class Episode:
    """One played episode: what was chosen, what it earned, and its calls (for the update)."""

    prompt: str
    arm: int
    perf: float
    normalized_cost: float
    env_reward: float
    reward: float  # shaped: what REINFORCE maximizes
    calls: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # the env's final info


def is_lockstep(env: Any) -> bool:
    """True for the vector env of ``batched_env`` (its copies step together)."""
    return hasattr(env, "num_envs") and hasattr(env, "step_async")


def batched_env(env: gym.Env, n_envs: int, seed: int):
    """``n_envs`` copies of ``env`` (its ID and config) in a ``BatchedRoutingVecEnv``.

    ``rollout`` on it plays ``n_envs`` episodes per round, their turns batched per model.
    Copy ``i`` is seeded with ``seed + i``, so each walks its own question order.
    """
    from routing_gym.vector import make_batched_vec_env

    if env.spec is None:
        raise ValueError("Batched rollouts copy the env by its ID: make it with gym.make.")
    config = copy.deepcopy(env.unwrapped.config)
    vec = make_batched_vec_env(env.spec.id, n_envs=n_envs, seed=seed, env_kwargs={"config": config})
    vec.reset()
    return vec


def played_episode(
    agent: "HAPSAgent", prompt: str, arm: int, env_reward: float, info: dict
) -> Episode:
    """An episode as the joint phase uses it, from the env's step."""
    perf, cost = float(info["perf"]), float(info["normalized_cost"])
    return Episode(
        prompt=prompt,
        arm=arm,
        perf=perf,
        normalized_cost=cost,
        # formed from the info in float64 (a vec env hands rewards back as float32)
        env_reward=float(routing_reward(perf, cost, info["lam"]))
        if "lam" in info
        else float(env_reward),
        reward=haps_reward(perf, cost, agent.lam, agent.config.shaping),
        calls=list(info.get("calls", [])),
        info=dict(info),
    )


def play_current(agent: "HAPSAgent", env: Any, deterministic: bool) -> Episode:
    """Choose the assignment and adapters for the env's current question and play it."""
    prompt = agent.prompt_for(current_example(env)[0])
    (arm,), (action,) = agent.act([prompt], deterministic)
    _, env_reward, _, _, info = env.step(action)
    return played_episode(agent, prompt, arm, env_reward, info)


def play_lockstep(
    agent: "HAPSAgent", vec: Any, episodes: int, deterministic: bool
) -> list[Episode]:
    """Play rounds of ``vec.num_envs`` episodes in lockstep until ``episodes`` are played."""
    played: list[Episode] = []
    while len(played) < episodes:
        prompts = [agent.prompt_for(example) for example in current_example(vec)]
        arms, actions = agent.act(prompts, deterministic)
        vec.step_async(actions)
        _, env_rewards, _, infos = vec.step_wait()  # every episode ends; each env resets itself
        played.extend(played_episode(agent, *row) for row in zip(prompts, arms, env_rewards, infos))
    return played[:episodes]


def rollout(
    agent: "HAPSAgent",
    env: Any,
    episodes: int,
    deterministic: bool = False,
    seed: int | None = None,
) -> list[Episode]:
    """Play ``episodes`` episodes through ``env`` with the current policy (no gradient).

    ``env`` is one env, or a vector env from ``batched_env`` (its episodes play in lockstep;
    ``seed`` does not apply, its copies were seeded when it was made). One env is reset with
    ``seed`` first, else with the config's seed the first time HAPS plays it.
    """
    agent.require_built()
    if is_lockstep(env):
        return play_lockstep(agent, env, episodes, deterministic)
    played = []
    for i in range(episodes):
        first = agent.record_play(env)
        reset_seed = (
            seed if (seed is not None and i == 0) else (agent.config.seed if first else None)
        )
        env.reset(seed=reset_seed)
        played.append(play_current(agent, env, deterministic))
    return played


def training_schedule(
    seed: int, episodes_per_update: int, step: int, questions: int
) -> list[tuple[int, int]]:
    """(question index, reset seed) of each episode of joint update ``step``.

    Epoch e walks the ``questions`` in the permutation seeded by (seed, e); episode j gets
    the reset seed of (seed, j). A function of the seed and the step alone, so a resumed
    run plays the same episodes as an uninterrupted one.
    """
    schedule = []
    for j in range(step * episodes_per_update, (step + 1) * episodes_per_update):
        epoch, position = divmod(j, questions)
        order = np.random.default_rng([seed, epoch]).permutation(questions)
        reset_seed = int(np.random.SeedSequence([seed, j]).generate_state(1)[0] >> 1)
        schedule.append((int(order[position]), reset_seed))
    return schedule


def play_schedule(
    agent: "HAPSAgent",
    env: Any,
    schedule: Schedule,
    deterministic: bool,
    progress_bar: bool = False,
) -> list[Episode]:
    """One episode per (question index, reset seed) of ``schedule``: through ``env``, or a round
    of its lockstep copies at a time when it is a ``batched_env`` (a last round's spare copies
    play an episode that is not kept)."""
    copies = list(env.envs) if is_lockstep(env) else [env]
    played: list[Episode] = []
    with tqdm(
        total=len(schedule), desc="evaluate", unit="episode", disable=not progress_bar
    ) as bar:
        for start in range(0, len(schedule), len(copies)):
            chunk = schedule[start : start + len(copies)]
            # each copy is reset on its own: VecEnv.seed takes one seed for all copies
            for copy_env, (index, seed) in zip(copies, chunk):
                copy_env.reset(seed=seed, options={"index": int(index)})
            if is_lockstep(env):
                played += play_lockstep(agent, env, len(copies), deterministic)[: len(chunk)]
            else:
                played.append(play_current(agent, env, deterministic))
            bar.update(len(chunk))
    return played


def training_rollout(agent: "HAPSAgent", env: Any, step: int) -> list[Episode]:
    """The sampled episodes of joint update ``step`` (see ``training_schedule``)."""
    count = len((env.envs[0] if is_lockstep(env) else env).unwrapped.examples)
    # the assignment samples too depend on the step alone
    agent.reseed_sampling(agent.config.seed, 1, step)
    return play_schedule(agent, env, agent.training_schedule(step, count), deterministic=False)


def play_questions(
    agent: "HAPSAgent",
    env: gym.Env,
    indices: Sequence[int],
    copies: int = 1,
    progress_bar: bool = False,
) -> list[Episode]:
    """Greedy episodes on the questions ``indices`` of ``env``'s split, ``copies`` at a time."""
    vec = batched_env(env, copies, agent.config.seed) if copies > 1 else None
    try:
        schedule = [(index, agent.config.seed) for index in indices]
        return play_schedule(
            agent, vec or env, schedule, deterministic=True, progress_bar=progress_bar
        )
    finally:
        if vec is not None:
            vec.close()


def evaluate_questions(
    agent: "HAPSAgent", env: gym.Env, copies: int = 1, progress_bar: bool = False
) -> dict[str, Any]:
    """Greedy episodes on every question of ``env``'s split, once each, in index order.

    Returns what ``evaluate_agent(..., return_episodes=True)`` returns. With ``copies`` > 1
    the questions are played ``copies`` at a time in lockstep env copies (``batched_env``),
    each round's model calls batched; the last round's spare copies play an extra episode
    that is not counted.
    """
    from routing_gym.evaluation import episode_scores

    agent.adapt_to(env)
    played = play_questions(agent, env, range(len(env.unwrapped.examples)), copies, progress_bar)
    # a hybrid action plays the whole episode in one step
    return episode_scores(
        [e.info for e in played], [e.env_reward for e in played], [1] * len(played)
    )


def evaluate(agent: "HAPSAgent", env: gym.Env, episodes: int) -> dict[str, float]:
    """Mean perf, normalized cost, env reward and shaped reward of greedy episodes on the
    first ``episodes`` questions of ``env``'s split (``rollout_envs`` at a time)."""
    count = min(episodes, len(env.unwrapped.examples))
    played = play_questions(agent, env, range(count), agent.config.rollout_envs)
    return {
        key: float(np.mean([getattr(e, attr) for e in played]))
        for key, attr in (
            ("perf", "perf"),
            ("cost", "normalized_cost"),
            ("env_reward", "env_reward"),
            ("reward", "reward"),
        )
    }
