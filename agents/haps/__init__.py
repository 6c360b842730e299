"""HAPS: a hierarchical router that assigns a model to each role and writes per-query LoRA for it.

Reference: the HAPS paper (hierarchical LLM routing with a high-level router over model
assignments and a low-level generator of LoRA parameters, trained by SFT then REINFORCE);
prompts, sizes and defaults here are the project's own. It acts on the hybrid envs
``LLMRouting-HotpotQA-HAPS-v0`` / ``LLMRouting-MMLU-HAPS-v0`` (``action_type="hybrid"``).

The algorithm, top to bottom (module in brackets):

* ``HAPSConfig`` [config]: every hyperparameter and ablation switch, checked when it is made;
  ``haps_env_config`` makes the env config that fits it.
* **The env's layout** (``HybridLayout`` [layout]): its models, its roles (``env.unwrapped.roles``,
  in the order an assignment lists them), the LoRA shapes and scaling, the task and λ.
* **Routing prompt** (``routing_prompt`` [prompt]): role definitions, the task description, the
  question, the candidate models. A **backbone** (``PromptEncoder`` [networks]; default
  SmolLM2-135M, any transformers causal or encoder model, ``"tiny-llama"`` in tests) embeds
  it: the masked mean of its last hidden state. It is frozen by default (features are cached
  per prompt) and then it is the pool's own loaded model, shared, never modified;
  ``finetune_backbone=True`` trains a separate float32 copy.
* **High level** (``HAPSPolicy.high`` [networks]): a 2-layer MLP giving a *joint* categorical
  over the M^R assignments (one model per role, ``itertools.product`` order over the env's R
  roles). A joint categorical is exact for two roles and lets the warm-up learn the table's
  argmax directly.
* **Low level** (``LoRAGenerator`` [networks]): one per open model, a 2-layer MLP (256 hidden)
  on the same pooled features, with two linear heads per adapted layer giving A (out × r) and
  B (r × in) through ``tanh``, i.e. exactly the env's ``Box(-1, 1)`` layout. The training
  adapters are built from the very same numbers as the env does (× ``lora_scale``, α =
  ``lora_alpha``), so the episode the env plays and the log-likelihood being trained agree
  bit for bit. A's head starts at zero (as in LoRA), so the untrained low level leaves the
  models unchanged.
* **Acting** (``HAPSAgent`` [agent]): the observation holds only an embedding, so the agent
  reads the question itself. ``predict_episode(question)`` gives the env action for a
  question; ``predict(obs)`` serves the env bound by ``adapt_to(env)``
  (``agents.evaluation.evaluate_agent`` calls it) and reads the current episode's question
  from it, or takes ``question=`` explicitly.
* **Warm-up** (``fit`` → ``training.warmup``): cross-entropy of the high level against the
  per-question best assignment of an exhaustive ``ActionTable``, read as ``Outcomes``
  (``table_outcomes`` [tables]) and shaped (``shaped_rewards``);
  ``ties`` says how equal-reward assignments become a target ("cheapest", "first", or "soft":
  uniform over the tied ones).
* **Joint phase** (``train_joint`` → ``training.train_joint``): per update, play
  ``episodes_per_update`` episodes through the env [rollouts] (sampling: the protocol's
  ``temperature`` > 0, ``record_text=True``; with ``rollout_envs`` > 1 in that many copies of
  the env, in lockstep, each model answering one batch per round of turns; the episodes are a
  function of the seed and the update index, ``training_schedule``), then REINFORCE on
  ``(R − b) · (log π(assignment) + Σ log p(tokens | LoRA))``: the tokens' log-probabilities
  come from ``episode_logprob`` with adapters made by the generators, so gradients reach
  them. ``R`` is HAPS's shaping (``haps_reward`` [tables]: F1 if F1 > 0 else −1) minus
  λ·normalized cost (the paper's appendix F), ``b`` an optional moving average. The update
  recomputes each episode's graph and backpropagates it alone, so memory stays at one episode.
* **Early stopping** (``training.EarlyStopping``) on a validation env, keeping the best weights.
* **On disk** [checkpoints]: ``save`` / ``load`` write a folder of a JSON config and a
  tensors-only weights file, read with ``weights_only=True`` (a file that needs unpickling is a
  ``CheckpointError``); ``JointCheckpoint`` keeps the joint phase's state after every update,
  so the same run resumes where it stopped.
* **The command line** [cli]: ``routing-gym train-haps`` (its one argument parser).

Ablations (config fields): ``router="random"`` / ``"fixed"`` (no high-level router),
``use_lora=False`` (no low-level router), ``share_backbone=False`` (the high level reads a
frozen backbone and the generators a separate fine-tuned copy), ``lora_layers`` k ∈ {1, 2,
4, "all"} (set the env's ``lora_layers`` to match: ``haps_env_config`` does).
"""

from agents.haps.agent import HAPSAgent
from agents.haps.checkpoints import SAVE_FORMAT, JointCheckpoint, run_fingerprint
from agents.haps.config import (
    BASELINES,
    ROUTERS,
    SHAPINGS,
    TIES,
    TOKEN_REDUCTIONS,
    HAPSConfig,
    haps_env_config,
)
from agents.haps.layout import HybridLayout
from agents.haps.networks import HAPSPolicy, LoRAGenerator, PromptEncoder
from agents.haps.prompt import (
    ROLE_DEFINITIONS,
    TASK_DESCRIPTIONS,
    current_example,
    example_text,
    routing_prompt,
)
from agents.haps.rollouts import Episode
from agents.haps.tables import (
    examples_of,
    haps_reward,
    shaped_rewards,
    table_outcomes,
    warmup_targets,
)
from agents.haps.training import EarlyStopping

__all__ = [
    "BASELINES",
    "ROLE_DEFINITIONS",
    "ROUTERS",
    "SAVE_FORMAT",
    "SHAPINGS",
    "TASK_DESCRIPTIONS",
    "TIES",
    "TOKEN_REDUCTIONS",
    "EarlyStopping",
    "Episode",
    "HAPSAgent",
    "HAPSConfig",
    "HAPSPolicy",
    "HybridLayout",
    "JointCheckpoint",
    "LoRAGenerator",
    "PromptEncoder",
    "current_example",
    "examples_of",
    "example_text",
    "haps_env_config",
    "haps_reward",
    "routing_prompt",
    "run_fingerprint",
    "shaped_rewards",
    "table_outcomes",
    "warmup_targets",
]
