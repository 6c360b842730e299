"""Checkpoints are read without running code: a crafted file is refused before anything in it
runs, older pickled files need an explicit trust flag, and every agent type still round-trips."""

from __future__ import annotations

import base64
import json
import os
import zipfile
from pathlib import Path

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch

import routing_gym  # noqa: F401
from agents import HierRouter, KNNRouter
from routing_gym.bench import load_checkpoint
from routing_gym.cli import main
from routing_gym.errors import CheckpointError
from routing_gym.routers import load_router_class

ENV = "LLMRouting-Table-GSM8K-v0"
CASCADE = "LLMRouting-Table-Cascade-GSM8K-v0"
ONE_SHOT = ["random", "fixed", "oracle", "routellm-mf", "irt-router", "graphrouter", "knn", "mlp"]


class WritesMarker:
    """Unpickling this runs ``os.system``: a stand-in for any command a hostile file could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def small_data(seed: int = 0):
    """60 queries, 8-dim embeddings, 3 models; model 2 is best where the first coordinate is > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    scores = np.zeros((60, 3))
    scores[:, 2] = x[:, 0] > 0
    scores[:, 0] = x[:, 0] <= 0
    costs = np.tile([0.1, 0.5, 0.9], (60, 1))
    return x, scores, costs


@pytest.mark.parametrize("name", ONE_SHOT)
def test_every_one_shot_router_round_trips_through_a_plain_tensor_file(name, tmp_path):
    x, scores, costs = small_data()
    agent = load_router_class(name)(lam=0.2).fit(x, scores, costs, models=["a", "b", "c"])
    path = agent.save(tmp_path / f"{name}.pt")
    torch.load(path, weights_only=True)  # nothing in it needs unpickling
    loaded = load_checkpoint(path)
    assert type(loaded) is type(agent) and loaded.models == ("a", "b", "c")
    # Random's saved generator state continues where the original's is now
    assert np.array_equal(loaded.select_arms(x), agent.select_arms(x))
    if agent.routes_by_estimates:
        for got, want in zip(loaded.estimate(x), agent.estimate(x)):
            assert np.array_equal(got, want)


def test_a_crafted_pt_runs_nothing_and_the_error_names_the_file(tmp_path):
    marker = tmp_path / "marker"
    crafted = tmp_path / "knn.pt"
    torch.save({"format": 2, "agent": "KNNRouter", "state": WritesMarker(marker)}, crafted)
    for load in (KNNRouter.load, load_checkpoint):
        with pytest.raises(CheckpointError, match=f"{crafted}.*trust_pickle=True") as caught:
            load(crafted)
        assert "posix.system" in str(caught.value) or "os.system" in str(caught.value)
        assert not marker.exists()
    # the command line refuses it too: one line, exit 1, no marker
    assert main(["evaluate", "--checkpoint", str(crafted), "--env", ENV]) == 1
    assert not marker.exists()
    # the file really is hostile: trusting it runs the command (what the flag is there to allow)
    with pytest.raises(Exception):
        KNNRouter.load(crafted, trust_pickle=True)
    assert marker.exists()


def test_an_old_pickled_checkpoint_needs_the_trust_flag(tmp_path):
    """Format 1 pickled fitted objects (an sklearn estimator, numpy arrays): trusted, it still loads."""
    from sklearn.neural_network import MLPRegressor

    x, scores, costs = small_data()
    net = MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(
        x, np.hstack([scores, costs])
    )
    old = tmp_path / "mlp_v1.pt"
    torch.save(
        {
            "format": 1,
            "agent": "MLPRouter",
            "config": {"hidden": (4,), "lam": 0.2},
            "models": ["a", "b", "c"],
            "embedding_dim": 8,
            "arms": [[0], [1], [2]],
            "action_mode": None,
            "env_lam": None,
            "fitted": True,
            "state": {"regressor": net},
        },
        old,
    )
    with pytest.raises(
        CheckpointError, match=f"{old} is not a plain-data agent checkpoint.*sklearn"
    ):
        load_checkpoint(old)
    loaded = load_checkpoint(old, trust_pickle=True)
    out = net.predict(x)
    expected = np.argmax(out[:, :3] - 0.2 * out[:, 3:], axis=1)
    assert np.array_equal(loaded.select_arms(x), expected)
    resaved = loaded.save(tmp_path / "mlp_v2.pt")  # the way to convert it
    assert np.array_equal(load_checkpoint(resaved).select_arms(x), expected)


@pytest.fixture(scope="module")
def ppo_zip(tmp_path_factory) -> tuple[HierRouter, Path]:
    agent = HierRouter(n_envs=1, n_steps=64, batch_size=64, n_epochs=1).fit(ENV, total_timesteps=64)
    return agent, agent.save(tmp_path_factory.mktemp("ppo") / "ppo.zip")


def rewrite_data(source: Path, target: Path, edit) -> Path:
    """A copy of an SB3 zip whose ``data`` JSON went through ``edit``."""
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    edit(data)
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return target


def pickled(value) -> dict:
    return {":type:": "x", ":serialized:": base64.b64encode(cloudpickle.dumps(value)).decode()}


def test_a_saved_ppo_zip_holds_no_pickle_that_load_reads(ppo_zip, tmp_path):
    agent, path = ppo_zip
    marker = tmp_path / "marker"
    # every entry SB3 would unpickle now runs a command; the plain description replaces them all
    hostile = rewrite_data(
        path,
        tmp_path / "hostile.zip",
        lambda d: d.update(
            {
                k: pickled(WritesMarker(marker))
                for k, v in d.items()
                if isinstance(v, dict) and ":serialized:" in v
            }
        ),
    )
    loaded = HierRouter.load(hostile)
    assert not marker.exists()
    obs = np.stack([gym.make(ENV, split="test").reset(options={"index": i})[0] for i in range(8)])
    assert np.array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])


def test_a_ppo_zip_with_an_unknown_pickled_entry_is_refused(ppo_zip, tmp_path):
    _, path = ppo_zip
    marker = tmp_path / "marker"
    hostile = rewrite_data(
        path,
        tmp_path / "extra.zip",
        lambda d: d.update(policy_kwargs=pickled(WritesMarker(marker))),
    )
    for load in (HierRouter.load, load_checkpoint):
        with pytest.raises(CheckpointError, match=f"{hostile}.*policy_kwargs.*trust_pickle"):
            load(hostile)
    assert not marker.exists()


def test_a_ppo_zip_of_an_older_release_needs_the_trust_flag(ppo_zip, tmp_path):
    agent, path = ppo_zip
    old = rewrite_data(path, tmp_path / "old.zip", lambda d: d.pop("hierrouter_plain"))
    with pytest.raises(CheckpointError, match=f"{old} has no plain description.*trust_pickle=True"):
        HierRouter.load(old)
    # SB3's own zip of these spaces unpickles fine when trusted
    loaded = load_checkpoint(old, trust_pickle=True)
    assert loaded.models == agent.models


def test_hierrouter_on_another_observation_layout_names_both(ppo_zip):
    agent, _ = ppo_zip
    cascade = gym.make(CASCADE, split="test")
    with pytest.raises(
        ValueError, match=r"trained on observations Box\(384,\); this env gives Dict\("
    ):
        agent.adapt_to(cascade)
    obs, _ = cascade.reset(seed=0)
    with pytest.raises(
        ValueError, match=r"trained on observations Box\(384,\); got Dict\(.*embedding"
    ):
        agent.predict(obs)
    with pytest.raises(ValueError, match=r"Box\(384,\); got an array of shape \(10,\)"):
        agent.predict(np.zeros(10, dtype=np.float32))


def test_train_refuses_an_out_path_of_the_wrong_kind_before_training(tmp_path, capsys):
    out = tmp_path / "knn.zip"
    with pytest.raises(SystemExit) as caught:
        main(["train", "--agent", "knn", "--env", ENV, "--out", str(out), "--no-progress"])
    assert caught.value.code == 2
    assert f"use '{tmp_path / 'knn.pt'}'" in capsys.readouterr().err
    assert not out.exists()


def test_load_checkpoint_goes_by_content_not_by_name(tmp_path):
    x, scores, costs = small_data()
    agent = KNNRouter(k=3).fit(x, scores, costs)
    misnamed = agent.save(tmp_path / "knn.zip")  # a torch file named like an SB3 zip
    assert np.array_equal(load_checkpoint(misnamed).select_arms(x), agent.select_arms(x))


def test_a_crafted_haps_weights_file_runs_nothing(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_haps import make_env, quick

    from agents.haps import HAPSAgent

    env = make_env(tmp_path / "env", quick())
    try:
        agent = HAPSAgent(quick())
        agent.adapt_to(env)
        folder = agent.save(tmp_path / "haps")
    finally:
        env.close()
    assert isinstance(load_checkpoint(folder), HAPSAgent)  # found as a folder, by content
    marker = tmp_path / "marker"
    torch.save({"policy": WritesMarker(marker)}, folder / "weights.pt")
    for load in (HAPSAgent.load, load_checkpoint):
        with pytest.raises(
            CheckpointError, match=f"{folder / 'weights.pt'} is not a HAPS weights file"
        ):
            load(folder)
    assert not marker.exists()
