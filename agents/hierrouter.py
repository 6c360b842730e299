"""HierRouter: a PPO agent that picks the model of every turn (or hop) of an episode.

Reference: Gupta, Guo, Kannan and Prasanna, "HierRouter: Coordinated Routing of Specialized
Large Language Models via Reinforcement Learning", 2025 (arXiv:2511.09873). Routing is a
finite-horizon MDP: the state is the evolving context (its embedding), the depth and the
accumulated cost; each action calls one model of the pool; the episode's reward is the final
answer's quality minus λ times its cost. The agent is stable-baselines3's PPO:

* ``MlpPolicy`` on a Box observation (``LLMRouting-Table-v0``: one decision per query),
  ``MultiInputPolicy`` on a Dict observation (the cascade and the live Teacher–Student envs);
* vector envs from ``make_vec_env`` (``DummyVecEnv`` or ``SubprocVecEnv``) or, for live envs,
  ``routing_gym.vector.make_batched_vec_env`` (one batched model call per vector step);
* TensorBoard logging (``tensorboard_log``), an optional progress bar, and
  ``RoutingInfoCallback``, which logs each rollout's mean perf, mean normalized cost and every
  model's share of the calls (read from the envs' ``info``) under ``routing/``.

The algorithm, top to bottom: ``HierRouterConfig`` (every hyperparameter), ``make_env`` (the
vector env), ``HierRouter.fit`` (build PPO, learn), ``predict`` (PPO's policy).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from agents.base import Agent, env_models, make_config, match_models, single_threaded
from routing_gym.checkpoints import (
    TRUST_HINT,
    describe_space,
    is_sb3_zip,
    space_from_json,
    space_to_json,
)
from routing_gym.envs.registration import is_live_env_id
from routing_gym.errors import CheckpointError
from routing_gym.evaluation import models_called
from routing_gym.routers import TRAIN_PER_REGIME, TrainingRun
from routing_gym.vector import make_batched_vec_env

__all__ = [
    "HierRouter",
    "HierRouterConfig",
    "RoutingInfoCallback",
    "is_live_env_id",  # re-exported: it lives in routing_gym.envs.registration
    "make_env",
    "models_called",  # re-exported: it lives in routing_gym.evaluation
]

VEC_ENVS = ("auto", "dummy", "subproc", "batched")
#: Observation keys with one entry per model (the cascade's), reordered when models are matched.
MODEL_INDEXED_KEYS = ("tried", "outcomes")


@dataclass
class HierRouterConfig:
    """PPO hyperparameters and how the training envs are built."""

    policy: str | None = None  # None: MlpPolicy for a Box observation, MultiInputPolicy for a Dict
    total_timesteps: int = 20_000
    n_envs: int = 4
    vec_env: str = (
        "auto"  # "auto" (batched for live envs, else dummy), "dummy", "subproc", "batched"
    )
    learning_rate: float = 1e-3
    n_steps: int = 128  # per env per rollout
    batch_size: int = 128
    n_epochs: int = 4
    gamma: float = 1.0  # finite horizon, reward at the end: no discounting
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: list[int] = field(default_factory=lambda: [128, 128])
    seed: int = 0
    device: str = "cpu"  # small MLPs: the GPU would only add transfers
    tensorboard_log: str | None = None  # a folder; one run per fit, named "HierRouter_<n>"
    progress_bar: bool = False  # needs tqdm and rich
    verbose: int = 0


class RoutingInfoCallback(BaseCallback):
    """Logs mean perf, mean normalized cost and each model's call share of finished episodes.

    Reads the final ``info`` of each episode: ``perf``, ``normalized_cost`` and the models
    called (``models`` on live envs, ``called`` on the cascade, ``model`` on the table env).
    Values go to the SB3 logger (TensorBoard, CSV...) under ``routing/`` at every rollout's end.
    """

    def __init__(self, verbose: int = 0):
        super().__init__(verbose)
        self._perf: list[float] = []
        self._cost: list[float] = []
        self._calls: Counter[str] = Counter()

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if not done:
                continue
            if "perf" in info:
                self._perf.append(float(info["perf"]))
            if "normalized_cost" in info:
                self._cost.append(float(info["normalized_cost"]))
            self._calls.update(models_called(info))
        return True

    def _on_rollout_end(self) -> None:
        if not self._perf:
            return
        self.logger.record("routing/perf", float(np.mean(self._perf)))
        self.logger.record("routing/cost", float(np.mean(self._cost)) if self._cost else 0.0)
        self.logger.record("routing/episodes", len(self._perf))
        total = sum(self._calls.values()) or 1
        for model, count in sorted(self._calls.items()):
            self.logger.record(f"routing/share/{model}", count / total)
        self._perf, self._cost, self._calls = [], [], Counter()


def make_env(
    env_id: str, config: HierRouterConfig, env_kwargs: dict[str, Any] | None = None
) -> VecEnv:
    """The training vector env for an env ID, as ``config.vec_env`` asks."""
    kind = config.vec_env
    # make_vec_env asks for render_mode="rgb_array" unless told; routing envs render text only
    env_kwargs = {"render_mode": None, **(env_kwargs or {})}
    if kind == "auto":
        kind = "batched" if is_live_env_id(env_id) else "dummy"
    if kind == "batched":
        return make_batched_vec_env(
            env_id, n_envs=config.n_envs, seed=config.seed, env_kwargs=env_kwargs
        )
    vec_cls = SubprocVecEnv if kind == "subproc" else DummyVecEnv
    entry = gym.spec(env_id).entry_point
    if kind == "subproc" and ":" not in env_id and isinstance(entry, str):
        # workers start as fresh processes: "package:ID" makes them import the registering package
        env_id = f"{entry.split('.')[0]}:{env_id}"
    return make_vec_env(
        env_id, n_envs=config.n_envs, seed=config.seed, env_kwargs=env_kwargs, vec_env_cls=vec_cls
    )


class HierRouter(Agent):
    """HierRouter (Gupta et al., 2025): PPO picks the model of each turn from context, depth and cost."""

    name = "hierrouter"
    Config = HierRouterConfig
    training = TRAIN_PER_REGIME
    checkpoint_suffix = ".zip"

    def __init__(self, config: HierRouterConfig | None = None, **overrides):
        self.config = make_config(HierRouterConfig, config, overrides)
        if self.config.vec_env not in VEC_ENVS:
            raise ValueError(
                f"HierRouterConfig key 'vec_env' must be one of {VEC_ENVS}, got {self.config.vec_env!r}."
            )
        self.model: PPO | None = None
        #: The training env's model names, in its action order (None: the env has no names).
        self.models: tuple[str, ...] | None = None
        self._to_env: np.ndarray | None = None  # the bound env's index of each of self.models

    def build(self, env: gym.Env | VecEnv) -> PPO:
        """The PPO model for ``env`` (called by ``fit``; exposed to set a custom logger first)."""
        cfg = self.config
        policy = cfg.policy or (
            "MultiInputPolicy"
            if isinstance(env.observation_space, gym.spaces.Dict)
            else "MlpPolicy"
        )
        self.model = PPO(
            policy,
            env,
            learning_rate=cfg.learning_rate,
            n_steps=cfg.n_steps,
            batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs,
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            clip_range=cfg.clip_range,
            ent_coef=cfg.ent_coef,
            vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm,
            policy_kwargs={"net_arch": list(cfg.net_arch)},
            tensorboard_log=cfg.tensorboard_log,
            seed=cfg.seed,
            device=cfg.device,
            verbose=cfg.verbose,
        )
        self.model.hierrouter_config = dataclasses.asdict(cfg)  # saved inside the SB3 zip
        names = env_models(env)
        self.models = None if names is None else tuple(names)
        self.model.hierrouter_models = None if names is None else list(names)  # saved, too
        self._to_env = None
        return self.model

    def fit(
        self,
        env: str | gym.Env | VecEnv,
        total_timesteps: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
        callback: BaseCallback | None = None,
        keep_training: bool = False,
    ) -> "HierRouter":
        """Train PPO on an env ID (vector env per ``config``), an env or a VecEnv.

        A fresh PPO is built unless ``keep_training`` (then the current one goes on in ``env``).
        """
        if isinstance(env, str):
            env = make_env(env, self.config, env_kwargs)
        elif env_kwargs:
            raise ValueError("env_kwargs only applies when env is an ID.")
        if keep_training and self.model is not None:
            names = env_models(env)
            if self.models is not None and names is not None and tuple(names) != self.models:
                raise ValueError(
                    f"HierRouter was trained on models {list(self.models)}; keep_training needs an "
                    f"env with the same models in the same order, not {list(names)}."
                )
            self.model.set_env(env)
        else:
            self.build(env)
        callbacks = [RoutingInfoCallback()] + ([callback] if callback is not None else [])
        with single_threaded():
            self.model.learn(
                total_timesteps or self.config.total_timesteps,
                callback=CallbackList(callbacks),
                progress_bar=self.config.progress_bar,
                tb_log_name="HierRouter",
                reset_num_timesteps=not keep_training,
            )
        return self

    def learn(self, run: TrainingRun) -> "HierRouter":
        """PPO on vector envs built from ``run``'s env ID and config (``run.timesteps`` steps, or
        the config's ``total_timesteps`` when None)."""
        return self.fit(
            run.env_id,
            total_timesteps=run.timesteps,
            env_kwargs={"config": dict(run.env_config)},
            callback=run.callback,
        )

    def fit_env(self, env: gym.Env | VecEnv | str, **kwargs) -> "HierRouter":
        """HierRouter learns by interacting: the same as ``fit(env)``."""
        return self.fit(env, **kwargs)

    def adapt_to(self, env: Any) -> None:
        """Match ``env``'s models to the ones PPO was trained on, by name (``evaluate_agent``
        calls this): an env with the same models in another order gets remapped actions (and
        per-model observations); one that lacks a model, or has an extra one, is refused."""
        space = getattr(env, "observation_space", None)
        if self.model is not None and space is not None:
            trained, given = describe_space(self.model.observation_space), describe_space(space)
            if trained != given:
                raise ValueError(
                    f"HierRouter was trained on observations {trained}; this env gives {given}."
                )
        names = env_models(env)
        if names is None:
            self._to_env = None
            return
        if self.models is None:
            raise ValueError(
                "HierRouter does not know the models it was trained on (a checkpoint saved "
                "without them): load it with HierRouter.load(path, models=[...]) naming them in "
                f"the training env's order; this env has {list(names)}."
            )
        self._to_env = match_models("HierRouter", self.models, names, allow_extra=False)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """PPO's action for one observation or a batch, in the bound env's model order."""
        if self.model is None:
            raise RuntimeError("HierRouter is not trained: call fit or load first.")
        self._check_layout(observation)
        values = observation.values() if isinstance(observation, Mapping) else [observation]
        if not all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in values):
            raise ValueError("HierRouter: the observation holds NaN or infinite values.")
        to_env = self._to_env
        if to_env is not None and isinstance(observation, Mapping):
            observation = {  # per-model entries in the training env's model order
                k: np.asarray(v)[..., to_env] if k in MODEL_INDEXED_KEYS else v
                for k, v in observation.items()
            }
        with single_threaded(blas=False):
            actions, state = self.model.predict(
                observation, state=state, episode_start=episode_start, deterministic=deterministic
            )
        if to_env is not None:
            m = len(to_env)  # an index past the models (the cascade's STOP) stays as it is
            actions = np.where(actions < m, to_env[np.minimum(actions, m - 1)], actions)
        return actions, state

    def _check_layout(self, observation) -> None:
        """Raise ValueError naming both layouts unless ``observation`` (or a batch) fits PPO's."""
        space = self.model.observation_space
        expected = describe_space(space)
        if isinstance(space, gym.spaces.Dict):
            fits = isinstance(observation, Mapping) and set(observation) == set(space.spaces)
            parts = (
                [(np.shape(observation[k]), s.shape) for k, s in space.spaces.items()]
                if fits
                else []
            )
        else:
            fits = not isinstance(observation, Mapping)
            parts = [(np.shape(observation), space.shape)] if fits else []
        fits = fits and all(
            len(got) in (len(want), len(want) + 1) and tuple(got[len(got) - len(want):]) == want
            for got, want in parts
        )
        if not fits:
            if isinstance(observation, Mapping):
                shapes = ", ".join(f"{k}: {np.shape(v)}" for k, v in observation.items())
                given = f"Dict({shapes})"
            else:
                given = f"an array of shape {np.shape(observation)}"
            raise ValueError(f"HierRouter was trained on observations {expected}; got {given}.")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the SB3 zip (policy, optimizer, this config), readable without unpickling:
        the spaces and the policy's name go in as plain JSON, the rollout state stays out."""
        if self.model is None:
            raise RuntimeError("HierRouter is not trained: nothing to save.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.hierrouter_plain = {
            "policy": _policy_alias(self.model),
            "observation_space": space_to_json(self.model.observation_space),
            "action_space": space_to_json(self.model.action_space),
        }
        self.model.save(path, exclude=list(ROLLOUT_STATE))
        return path if path.suffix == ".zip" else path.with_name(path.name + ".zip")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        env: gym.Env | VecEnv | None = None,
        models: Sequence[str] | None = None,
        trust_pickle: bool = False,
    ) -> "HierRouter":
        """Read a zip written by ``save`` (optionally bound to ``env`` to train further).

        ``models`` names the training env's models in action order, for a zip saved without
        them; errors name the path and say what kind of file it is. Nothing in the zip is
        unpickled: a zip that needs it (saved by an older routing_gym, or crafted) is refused
        unless ``trust_pickle``, which lets it run code.
        """
        given = Path(path)
        # save() appends ".zip" to a name without it, so "agent" finds "agent.zip"
        candidates = [given]
        if given.suffix != ".zip":
            candidates.append(given.with_name(given.name + ".zip"))
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise FileNotFoundError(f"HierRouter checkpoint {given} does not exist.")
        if found.is_dir():
            raise CheckpointError(
                f"{found} is a folder, not a HierRouter checkpoint (HAPSAgent.load reads folders)."
            )
        if not is_sb3_zip(found):
            kind = (
                "a torch.save file, as the one-shot routers write (load it with "
                "routing_gym.bench.load_checkpoint or its class's load)"
                if zipfile.is_zipfile(found)
                else "truncated, or another kind of file"
            )
            raise CheckpointError(
                f"{found} is not a HierRouter checkpoint (a stable-baselines3 PPO zip): "
                f"it is {kind}."
            )
        custom_objects = None if trust_pickle else _plain_objects(found)
        try:
            model = PPO.load(found, device="cpu", custom_objects=custom_objects)
        except Exception as exc:  # SB3 and torch raise many types for a damaged zip
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(
                f"{found} is not a readable HierRouter checkpoint: {type(exc).__name__}: {reason}"
            ) from exc
        saved = getattr(model, "hierrouter_config", None) or {}
        known = {f.name for f in dataclasses.fields(HierRouterConfig)}
        agent = cls(HierRouterConfig(**{k: v for k, v in saved.items() if k in known}))
        agent.model = model
        stored = getattr(model, "hierrouter_models", None)
        if models is not None and stored is not None and list(models) != list(stored):
            raise ValueError(
                f"{found} was trained on models {list(stored)}, not {list(models)}."
            )
        names = models if models is not None else stored
        agent.models = None if names is None else tuple(str(m) for m in names)
        if env is not None:
            names_now = env_models(env)
            if agent.models and names_now is not None and tuple(names_now) != agent.models:
                raise ValueError(
                    f"{found} was trained on models {list(agent.models)}; the env to train further "
                    f"has {list(names_now)} (same models in the same order needed)."
                )
            model.set_env(env)
        return agent


#: SB3 attributes of a run in progress, left out of a saved zip (``learn`` rebuilds them).
ROLLOUT_STATE = ("_last_obs", "_last_episode_starts", "ep_info_buffer", "ep_success_buffer")


def _policy_alias(model: PPO) -> str:
    """The name PPO knows the model's policy class by (``MlpPolicy``, ``MultiInputPolicy``...)."""
    for alias, policy_class in model.policy_aliases.items():
        if policy_class is type(model.policy):
            return alias
    raise ValueError(
        f"HierRouter saves PPO with a built-in policy only, not {type(model.policy).__name__}."
    )


def _plain_objects(path: Path) -> dict[str, Any]:
    """Every pickled entry of an SB3 zip's ``data``, rebuilt from the plain JSON ``save`` wrote.

    Passed to ``PPO.load`` as ``custom_objects``, so nothing is unpickled; a zip with an entry
    that cannot be rebuilt is refused with a CheckpointError naming the file and the entry.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable HierRouter checkpoint: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path} is not a readable HierRouter checkpoint: 'data' is no object."
        )
    pickled = sorted(
        k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v
    )
    plain = data.get("hierrouter_plain")
    if not isinstance(plain, dict):
        raise CheckpointError(
            f"{path} has no plain description of its spaces and policy (entries "
            f"{', '.join(pickled[:4])}{', ...' if len(pickled) > 4 else ''} are pickled): "
            f"{TRUST_HINT}."
        )
    config = data.get("hierrouter_config") or {}
    policy = plain.get("policy")
    if policy not in PPO.policy_aliases:
        raise CheckpointError(
            f"{path}: unknown policy {policy!r}; HierRouter saves one of "
            f"{sorted(PPO.policy_aliases)}."
        )
    rebuilt: dict[str, Any] = {
        "policy_class": PPO.policy_aliases[policy],
        "observation_space": space_from_json(
            plain.get("observation_space"), f"{path}: observation_space"
        ),
        "action_space": space_from_json(plain.get("action_space"), f"{path}: action_space"),
        "rollout_buffer_class": None,  # PPO picks it from the observation space
        "clip_range": float(config.get("clip_range", HierRouterConfig.clip_range)),
        "lr_schedule": None,  # PPO rebuilds it from learning_rate
        **{key: None for key in ROLLOUT_STATE},
    }
    unknown = [key for key in pickled if key not in rebuilt]
    if unknown:
        raise CheckpointError(
            f"{path} holds pickled entries {unknown} that HierRouter does not save: {TRUST_HINT}."
        )
    return rebuilt
