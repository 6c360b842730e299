"""HAPS on disk, without pickle: a saved agent (JSON config and a tensors-only weights file) and
the joint phase's resumable checkpoint, both read back with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import gymnasium as gym
import torch

from agents.haps.config import HAPSConfig
from agents.haps.layout import HybridLayout
from routing_gym.errors import CheckpointError
from routing_gym.records import content_digest, json_digest

if TYPE_CHECKING:
    from agents.haps.agent import HAPSAgent
    from agents.haps.training import EarlyStopping

SAVE_FORMAT = 1


# ---------------------------------------------------------------------------- a saved agent


def save_agent(agent: "HAPSAgent", path: str | os.PathLike) -> Path:
    """Write a folder: ``config.json`` (config, env layout, baseline) and ``weights.pt``."""
    agent.require_built()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": SAVE_FORMAT,
        "agent": type(agent).__name__,
        "config": dataclasses.asdict(agent.config),
        "layout": agent.layout.to_dict(),
        "baseline": agent.baseline,
    }
    (path / "config.json").write_text(json.dumps(meta, indent=2))
    torch.save(agent.trained_state(), path / "weights.pt")
    return path


def load_agent(cls: type["HAPSAgent"], path: str | os.PathLike, **overrides) -> "HAPSAgent":
    """Read a folder written by ``save_agent`` (keyword overrides change config keys)."""
    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format") != SAVE_FORMAT or meta.get("agent") != cls.__name__:
        raise ValueError(f"{path} is not a {cls.__name__} folder of format {SAVE_FORMAT}.")
    agent = cls(HAPSConfig(**meta["config"]), **overrides)
    agent.build(HybridLayout.from_dict(meta["layout"]))
    agent.baseline = float(meta["baseline"])
    weights = path / "weights.pt"
    try:  # weights_only: a file that needs unpickling (it could run code) is refused
        state = torch.load(weights, map_location=agent.device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"{weights} is not a HAPS weights file of tensors ({type(exc).__name__}: {reason})."
        ) from None
    agent.load_trained_state(state)
    return agent


# ---------------------------------------------------------------------------- the joint phase


def env_identity(env: gym.Env | None) -> dict[str, Any] | None:
    """What an env adds to a run: its ID, its config without paths, its questions' content."""
    if env is None:
        return None
    base = env.unwrapped
    config = {
        k: v for k, v in base.config.items() if k not in ("cache_path", "cache_mode", "data_dir")
    }
    questions = hashlib.sha256(
        "".join(content_digest(e) for e in base.examples).encode()
    ).hexdigest()
    return {
        "id": env.spec.id if env.spec else type(base).__name__,
        "config": config,
        "questions": questions,
    }


def run_fingerprint(
    agent: "HAPSAgent",
    env: gym.Env,
    valid_env: gym.Env | None,
    updates: int,
    action_table: Any | None = None,
    valid_table: Any | None = None,
) -> str:
    """sha256 of everything that decides a training run: a checkpoint of another run is refused.

    Paths (data folder, response cache) are left out: the same questions and settings are the
    same run wherever their files lie.
    """
    config = dataclasses.asdict(agent.config)
    for key in ("progress_bar", "tensorboard_log", "device"):
        config.pop(key)
    tables = [None if t is None else content_digest(t.rows) for t in (action_table, valid_table)]
    content = {
        "config": config,
        "updates": updates,
        "train": env_identity(env),
        "valid": env_identity(valid_env),
        "tables": tables,
    }
    return json_digest(content)


class JointCheckpoint:
    """The joint phase's state after every update, so a stopped run resumes where it stopped.

    One ``torch.save`` file, replaced atomically (a kill leaves the previous one whole). It holds
    the weights, the optimizer, the baseline, early stopping's best weights and the next update;
    the joint phase's episodes are a function of the seed and the update index, so the resumed
    run plays exactly the episodes the uninterrupted one would have played.
    """

    FORMAT = "routing_gym.haps_joint_checkpoint/1"

    def __init__(self, path: str | os.PathLike, fingerprint: str):
        self.path, self.fingerprint = Path(path), fingerprint

    def load(self) -> dict[str, Any] | None:
        """The saved state, None when there is no file; another run's file is an error."""
        if not self.path.exists():
            return None
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
            raise ValueError(
                f"{self.path} is not a readable HAPS checkpoint ({type(exc).__name__}); "
                "delete it to start over."
            ) from None
        if not isinstance(data, dict) or data.get("format") != self.FORMAT:
            raise ValueError(
                f"{self.path} is not a HAPS joint checkpoint; delete it to start over."
            )
        if data["fingerprint"] != self.fingerprint:
            raise ValueError(
                f"{self.path} is the checkpoint of another run (other settings, questions "
                "or warm-up table); delete it or choose another path."
            )
        return data

    def save(
        self, agent: "HAPSAgent", next_update: int, stopper: "EarlyStopping", finished: bool
    ) -> None:
        """Write the state; a finished run keeps only its final weights (a fine-tuned backbone
        with Adam's moments and early stopping's copy would be four times the size)."""
        data = {
            "format": self.FORMAT,
            "fingerprint": self.fingerprint,
            "next_update": next_update,
            "finished": finished,
            "state": agent.trained_state(),
            "baseline": float(agent.baseline),
            "steps": agent.logged_steps,
            "stopper": {
                "best": float(stopper.best),
                "stale": int(stopper.stale),
                "best_state": None if finished else stopper.best_state,
            },
        }
        if not finished:
            data["optimizer"] = agent.joint_optimizer().state_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        torch.save(data, partial)
        os.replace(partial, self.path)

    @staticmethod
    def restore(data: Mapping[str, Any], agent: "HAPSAgent", stopper: "EarlyStopping") -> None:
        """Put a loaded state back into the agent and early stopping."""
        agent.load_trained_state(data["state"])
        agent.baseline = float(data["baseline"])
        agent.logged_steps = data["steps"]
        stopper.best, stopper.best_state, stopper.stale = (
            float(data["stopper"]["best"]),
            data["stopper"]["best_state"],
            int(data["stopper"]["stale"]),
        )
        if not data["finished"]:
            agent.joint_optimizer().load_state_dict(data["optimizer"])
