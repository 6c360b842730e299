"""Reading and writing saved agents without running code from the file.

Two formats exist: a ``torch.save`` file of tensors and plain data (the one-shot routers'
``.pt``), read with ``torch.load(weights_only=True)``, and a stable-baselines3 zip
(HierRouter's ``.zip``), whose pickled entries are rebuilt from plain JSON written beside
them instead of being unpickled. A file that could only be read by unpickling arbitrary
Python objects (a checkpoint of an older routing_gym, or a crafted one) is refused with a
``CheckpointError`` naming it, unless the caller passes ``trust_pickle=True`` (command line:
``--trust-checkpoint``). Both formats are zip archives, so each reader checks which one it
was given before unpacking, and a truncated or foreign file is reported with its path.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from routing_gym.errors import CheckpointError

#: What a refused file's message tells the user to do.
TRUST_HINT = (
    "loading it would unpickle Python objects, which can run code. If you trust the file, "
    "load it with trust_pickle=True (command line: --trust-checkpoint) and save it again"
)
#: The key that marks a numpy array stored as a tensor (``plain_state`` / ``from_plain_state``).
NDARRAY_TAG = "__ndarray__"


def is_sb3_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a stable-baselines3 model zip (what HierRouter saves)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"data", "policy.pth"} <= names


def plain_state(value: Any, where: str = "state") -> Any:
    """``value`` as tensors and plain data that ``torch.load(weights_only=True)`` reads back.

    numpy arrays become ``{NDARRAY_TAG: tensor}``, numpy scalars Python numbers; anything else
    that is not a tensor, dict, list, tuple, str, number, bool or None raises TypeError naming
    where it sits (a fitted object must be saved as its arrays).
    """
    import torch

    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{where} is an object array; a checkpoint holds numeric arrays only.")
        return {NDARRAY_TAG: torch.from_numpy(np.array(value, copy=True))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(
                    f"{where} has a {type(key).__name__} key; checkpoint keys are str or int."
                )
            out[key] = plain_state(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        items = [plain_state(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(
        f"{where} is a {type(value).__name__}; a checkpoint holds tensors, arrays and plain data."
    )


def from_plain_state(value: Any) -> Any:
    """Undo ``plain_state``: tagged tensors become numpy arrays again."""
    if isinstance(value, dict):
        if set(value) == {NDARRAY_TAG}:
            return value[NDARRAY_TAG].numpy()
        return {key: from_plain_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_plain_state(item) for item in value]
    if isinstance(value, tuple):
        return tuple(from_plain_state(item) for item in value)
    return value


def _unsafe_globals(path: Path) -> list[str]:
    """The Python objects a torch.save file would import to be unpickled (read without running it)."""
    import torch

    try:
        found = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001  (only an aid to the message)
        return []
    # the telling names first: numpy's own constructors are in every old file
    return sorted(found, key=lambda name: (name.startswith(("numpy.", "torch.")), name))


def read_agent_file(path: str | os.PathLike, reader: str, trust_pickle: bool = False) -> Any:
    """The payload of an agent file written by ``torch.save``; every failure names ``path``.

    Read with ``weights_only=True``: a file that needs anything more (a pickled object) is
    refused with a ``CheckpointError`` unless ``trust_pickle``. ``reader`` (e.g.
    ``"KNNRouter.load"``) is named in the hint when the file is of another kind.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Agent checkpoint {path} does not exist.")
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not an agent file for {reader} (HAPSAgent.load reads folders)."
        )
    if is_sb3_zip(path):
        raise CheckpointError(
            f"{path} is a HierRouter checkpoint (a stable-baselines3 zip), not a file for "
            f"{reader}; load it with HierRouter.load."
        )
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if not trust_pickle and "Weights only load failed" in str(exc):
            needs = _unsafe_globals(path)
            listed = (
                f" ({', '.join(needs[:4])}{', ...' if len(needs) > 4 else ''})" if needs else ""
            )
            raise CheckpointError(
                f"{path} is not a plain-data agent checkpoint: {TRUST_HINT}{listed}."
            ) from None
        raise _unreadable(path, exc) from exc
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    reason = (str(exc).strip().splitlines() or [""])[0][:200]
    return CheckpointError(
        f"{path} is not a readable agent checkpoint (truncated, or not written by save): "
        f"{type(exc).__name__}: {reason}"
    )


# ---------------------------------------------------------------- gymnasium spaces as JSON


def space_to_json(space: Any) -> dict[str, Any]:
    """A Box, Discrete, MultiDiscrete, MultiBinary or Dict space as plain JSON data."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise TypeError(f"A {type(space).__name__} space cannot be saved as plain data.")


def space_from_json(data: Any, where: str = "space") -> Any:
    """The space that ``space_to_json`` described; a malformed description raises CheckpointError."""
    from gymnasium import spaces

    try:
        kind = data["type"]
        if kind == "Box":
            dtype = np.dtype(str(data["dtype"]))
            return spaces.Box(
                low=np.array(data["low"], dtype=dtype),
                high=np.array(data["high"], dtype=dtype),
                shape=tuple(int(n) for n in data["shape"]),
                dtype=dtype,
            )
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data["start"]))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(
                np.array(data["nvec"], dtype=np.int64),
                dtype=np.dtype(str(data["dtype"])),
                start=np.array(data["start"], dtype=np.int64),
            )
        if kind == "MultiBinary":
            return spaces.MultiBinary(data["n"])
        if kind == "Dict":
            return spaces.Dict(
                {str(k): space_from_json(v, f"{where}[{k!r}]") for k, v in data["spaces"].items()}
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where}: malformed space description ({exc}).") from None
    raise CheckpointError(f"{where}: unknown space type {data.get('type')!r}.")


def describe_space(space: Any) -> str:
    """A short text of an observation layout: ``Box(384,)`` or ``Dict(context: (384,), depth: (1,))``."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return (
            "Dict(" + ", ".join(f"{k}: {describe_space(s)}" for k, s in space.spaces.items()) + ")"
        )
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    return str(space)
