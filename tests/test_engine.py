"""The episode engine: turns batched across episodes, scoring passes priced, counted and batched."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from routing_gym.data.mmlu import MMLUExample
from routing_gym.engine import EpisodeEngine, run_turn_calls
from routing_gym.llm import TINY_POOL, LLMPool
from routing_gym.protocols import MMLUProtocol
from routing_gym.vector import make_batched_vec_env

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"
QUESTIONS = [
    MMLUExample(id=f"fixture/{i}", subject="fixture", question=q, choices=choices, answer=answer)
    for i, (q, choices, answer) in enumerate(
        [
            ("Which planet is closest to the Sun?", ("Venus", "Mercury", "Earth", "Mars"), "B"),
            ("How many legs has a spider?", ("Six", "Four", "Eight", "Ten"), "C"),
        ]
    )
]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    pool = LLMPool(list(TINY_POOL), cache=tmp_path_factory.mktemp("cache") / "responses.sqlite")
    yield pool
    pool.close()


def mmlu_config(tmp_path: Path, **extra) -> dict:
    config = {
        "models": list(TINY_POOL),
        "data_dir": str(FIXTURES),
        "split": "dev",
        "cache_path": str(tmp_path / "responses.sqlite"),
        "protocol": {"student_max_new_tokens": 6, "teacher_max_new_tokens": 4},
    }
    config.update(extra)
    return config


def test_a_letter_scoring_pass_is_priced_in_the_turn_and_counted(pool):
    engine = EpisodeEngine(MMLUProtocol({"student_max_new_tokens": 6}), pool, QUESTIONS)
    state = engine.start(0)
    job = engine.job(state, "tiny-qwen2", seed=0)
    (calls,) = engine.run_calls([job])
    (score,) = calls.scores
    assert score.prompt_tokens > calls.result.prompt_tokens  # the prompt, once per letter
    assert score.cost == pytest.approx(pool.cost("tiny-qwen2", score.prompt_tokens, score.completion_tokens))
    assert score.cost > 0
    turn = engine.apply(calls)
    assert turn.scoring_calls == 1
    assert (turn.scoring_prompt_tokens, turn.scoring_completion_tokens) == (
        score.prompt_tokens,
        score.completion_tokens,
    )
    assert turn.cost == pytest.approx(calls.result.cost + score.cost)
    assert turn.parsed["letter_logprobs"] == dict(zip("ABCD", score.logprobs))


def test_a_replayed_turn_reads_its_scores_from_the_cache_at_the_same_price(pool):
    engine = EpisodeEngine(MMLUProtocol({"student_max_new_tokens": 6}), pool, QUESTIONS)
    first, again = (engine.play_turns([engine.job(engine.start(1), "tiny-llama", 3)])[0] for _ in range(2))
    assert first.cost == again.cost and first.parsed == again.parsed


def test_scoring_of_many_episodes_goes_to_the_pool_in_one_call(pool, monkeypatch):
    engine = EpisodeEngine(MMLUProtocol({"student_max_new_tokens": 6}), pool, QUESTIONS)
    states = [engine.start(i % 2) for i in range(4)]
    batches = []
    original = LLMPool.score
    monkeypatch.setattr(LLMPool, "score", lambda self, reqs: batches.append(len(reqs)) or original(self, reqs))
    turns = engine.play_turns([engine.job(s, TINY_POOL[i % 2], i) for i, s in enumerate(states)])
    assert batches == [4]  # four letter readings, one call
    assert all(t.scoring_calls == 1 for t in turns)


def test_an_episode_costs_the_sum_of_its_turns_and_info_counts_the_scoring(tmp_path):
    env = gym.make("LLMRouting-MMLU-v0", config=mmlu_config(tmp_path))
    env.reset(seed=0)
    done, costs = False, []
    while not done:
        _, _, terminated, truncated, info = env.step(0)
        costs.append(info["cost"])
        done = terminated or truncated
    assert info["scoring_calls"] >= 1  # at least the first Student letter
    assert info["scoring_prompt_tokens"] > 0
    generation_only = env.unwrapped.pool.cost(
        "tiny-llama", info["prompt_tokens"], info["completion_tokens"]
    )
    scoring_only = env.unwrapped.pool.cost(
        "tiny-llama", info["scoring_prompt_tokens"], info["scoring_completion_tokens"]
    )
    assert info["cost"] == pytest.approx(generation_only + scoring_only)
    env.close()


def test_a_vector_env_batches_the_scoring_of_all_its_envs(tmp_path, monkeypatch):
    vec = make_batched_vec_env("LLMRouting-MMLU-v0", n_envs=3, seed=0, env_kwargs={"config": mmlu_config(tmp_path)})
    calls = []
    original = LLMPool.score
    monkeypatch.setattr(LLMPool, "score", lambda self, reqs: calls.append(len(reqs)) or original(self, reqs))
    vec.reset()
    vec.step(np.array([0, 1, 0]))  # every env's first turn is a Student turn: three letters to read
    assert calls == [3]
    vec.close()


def test_engines_with_different_pools_are_not_mixed(pool, tmp_path):
    other = LLMPool(["tiny-llama"], cache=tmp_path / "other.sqlite")
    asked = []
    generate = other.generate
    other.generate = lambda requests: asked.append(len(requests)) or generate(requests)
    a = EpisodeEngine(MMLUProtocol({"letter_mode": "regex"}), pool, QUESTIONS)
    b = EpisodeEngine(MMLUProtocol({"letter_mode": "regex"}), other, QUESTIONS)
    calls = run_turn_calls([(a, a.job(a.start(0), "tiny-qwen2", 0)), (b, b.job(b.start(0), "tiny-llama", 0))])
    assert [c.result.model for c in calls] == ["tiny-qwen2", "tiny-llama"]
    assert asked == [1]  # b's turn ran through b's own pool (another cache file), alone
    other.close()


def test_a_finished_episode_takes_no_more_turns(pool):
    engine = EpisodeEngine(MMLUProtocol({"letter_mode": "regex", "max_rounds": 1}), pool, QUESTIONS)
    state = engine.start(0)
    engine.play_episodes([state], [{"student": "tiny-llama", "teacher": "tiny-llama"}], [0])
    assert engine.is_over(state)
    with pytest.raises(RuntimeError, match="over"):
        engine.job(state, "tiny-llama", 0)


def test_lockstep_rounds_report_how_many_episodes_they_play(pool):
    engine = EpisodeEngine(MMLUProtocol({"letter_mode": "regex", "max_rounds": 2}), pool, QUESTIONS)
    states = [engine.start(0), engine.start(1), engine.start(0)]
    assignments = [{"student": "tiny-llama", "teacher": "tiny-qwen2"}] * 3
    rounds = []
    engine.play_episodes(states, assignments, [0, 1, 2], on_round=lambda r, playing: rounds.append((r, playing)))
    assert [r for r, _ in rounds] == list(range(len(rounds)))
    assert rounds[0][1] == 3
    playing = [p for _, p in rounds]
    assert playing == sorted(playing, reverse=True) and playing[-1] >= 1
    assert len(rounds) == max(len(s.turns) for s in states)  # one round per turn of the longest episode
