"""The multi-hop env on the episode engine replays the env as it was before, episode for episode.

``tests/data/fixtures/multihop_reference.json`` holds seeded episodes of every multi-hop ID on
the tiny random models (actions, rewards, flags, costs, tokens, answers, responses and parts
of the observation), recorded by ``multihop_reference.py`` with the env that called the pool
itself. The env now plays through ``EpisodeEngine`` and ``MultiHopProtocol``; the same seeds
must give the same episodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multihop_reference import record

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "multihop_reference.json"
EXPECTED = json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("env_id", sorted(EXPECTED))
def test_each_multihop_id_replays_the_recorded_episodes(env_id, tmp_path):
    got = record(env_id, tmp_path)
    expected = EXPECTED[env_id]
    assert len(got) == len(expected)
    for episode, (new, old) in enumerate(zip(got, expected)):
        assert (new["task"], new["question_id"]) == (old["task"], old["question_id"]), episode
        assert [s["action"] for s in new["steps"]] == [s["action"] for s in old["steps"]], episode
        for step, (a, b) in enumerate(zip(new["steps"], old["steps"])):
            where = f"episode {episode} step {step}"
            for key in ("terminated", "truncated", "models", "answer", "responses", "prompt_tokens",
                        "completion_tokens", "perf", "obs_answered", "obs_depth"):
                assert a[key] == b[key], (where, key)
            for key in ("reward", "cost", "obs_cost"):
                assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-15), (where, key)
            assert a["obs_context_head"] == pytest.approx(b["obs_context_head"], abs=2e-4), where
