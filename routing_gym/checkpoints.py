"""Reading saved agents with errors that name the file and say what kind of file it is.

Two formats exist: a ``torch.save`` pickle (the one-shot routers' ``.pt``) and a
stable-baselines3 zip (HierRouter's ``.zip``). Both are zip archives, so each reader checks
which one it was given before unpacking, and a truncated or foreign file is reported with its
path instead of a raw torch or zipfile error.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from routing_gym.errors import CheckpointError


def is_sb3_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a stable-baselines3 model zip (what HierRouter saves)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"data", "policy.pth"} <= names


def read_agent_file(path: str | os.PathLike, reader: str) -> Any:
    """The payload of an agent file written by ``torch.save``; every failure names ``path``.

    ``reader`` (e.g. ``"KNNRouter.load"``) is named in the hint when the file is of another kind.
    It is a pickle: read only files you trust.
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
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path} is not a readable agent checkpoint (truncated, or not written by save): "
            f"{type(exc).__name__}: {reason}"
        ) from exc
