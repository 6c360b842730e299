"""The default outcome table ships inside the package: a fresh machine needs no data folder."""

import json
import os
import subprocess
import sys

import numpy as np

from routing_gym.data.outcome_table import SHIPPED_TABLE

NO_DATA_SCRIPT = """
import json, os
import gymnasium as gym
import routing_gym
from routing_gym.data.outcome_table import ensure_default_table
env = gym.make("LLMRouting-Table-v0")
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(0)
cache = os.environ["ROUTING_GYM_CACHE"]
print(json.dumps({"table": str(ensure_default_table()), "terminated": terminated,
                  "reward": reward, "cache_entries": sorted(os.listdir(cache)) if os.path.isdir(cache) else []}))
"""


def test_the_table_env_runs_with_no_data_folder_and_an_empty_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ROUTING_GYM_DATA"}
    env["ROUTING_GYM_CACHE"] = str(tmp_path / "cache")
    out = subprocess.run(
        [sys.executable, "-c", NO_DATA_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["table"] == str(SHIPPED_TABLE)
    assert result["terminated"] is True and isinstance(result["reward"], float)
    assert "llmrouter_outcomes.npz" not in result["cache_entries"]  # nothing was rebuilt


def test_the_shipped_table_is_numbers_only_with_the_mit_notice():
    assert SHIPPED_TABLE.stat().st_size < 10e6
    with np.load(SHIPPED_TABLE, allow_pickle=False) as data:
        assert all(data[name].dtype.kind in "fiu" for name in ("embeddings", "scores", "prompt_tokens"))
        assert max(len(s) for s in data["ids"].tolist()) == 16  # hashes, not text
        meta = json.loads(str(data["meta"]))
    assert "MIT" in meta["attribution"]
    notice = (SHIPPED_TABLE.parent / "NOTICE.md").read_text()
    assert "Copyright (c) 2024 U Lab @UIUC" in notice and "MIT License" in notice
