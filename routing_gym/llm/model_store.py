"""Find, fingerprint and materialize model weights for each kind of location.

GGUF weights are de-quantized once into the user cache dir and saved as an ordinary
transformers folder (float32 safetensors); later loads read that folder (seconds instead of
minutes). The first use parses the GGUF's metadata once (``parsed_once``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from routing_gym.errors import BackendError
from routing_gym.llm import gguf_parts
from routing_gym.llm.gguf_parts import PartedGGUF
from routing_gym.llm.spec import ModelSpec
from routing_gym.paths import cache_dir, exclusive_lock


#: Location kinds whose weights come from a GGUF file (de-quantized once into the cache).
GGUF_KINDS = ("gguf-package", "gguf-assemble", "gguf-parts", "gguf-file")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file, memoized in a sidecar keyed by size and mtime (hashing 100s of MB is slow)."""
    path = Path(path)
    stat = path.stat()
    memo = cache_dir() / "digests.json"
    memo_key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    with exclusive_lock(memo.with_suffix(".lock")):
        known = json.loads(memo.read_text()) if memo.exists() else {}
        if memo_key not in known:
            known[memo_key] = _sha256_file(path)
            _atomic_write_text(memo, json.dumps(known, indent=0))
        return known[memo_key]


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def package_folder(package: str) -> Path:
    """A package's folder, found without importing it (some model packages fail on import)."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise BackendError(
            f"Package {package!r} is not installed; install it to use this model "
            f"(pip install {package.replace('_', '-')})."
        )
    return Path(list(found.submodule_search_locations)[0])


def gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file of a ``gguf-package:``, ``gguf-assemble:`` or ``gguf-parts:`` spec, rebuilt if needed."""
    kind, value = spec.location_kind, spec.location_value
    if kind == "gguf-package":
        package, _, filename = value.partition("/")
        path = package_folder(package) / filename
        if not path.is_file():
            raise BackendError(f"Model {spec.name!r}: {filename!r} not found in package {package!r} ({path}).")
        return path
    if kind == "gguf-assemble":
        package_folder(value)  # clear error if missing
        module = importlib.import_module(value)
        target = cache_dir() / "gguf" / f"{spec.name}.gguf"
        with exclusive_lock(target.with_suffix(".lock")):
            return Path(module.assemble(output_path=target))
    if kind == "gguf-parts":
        parted = PartedGGUF.from_options(spec.options, spec.name)
        target = cache_dir() / "gguf" / f"{spec.name}-{parted.sha256[:16]}.gguf"
        return gguf_parts.assemble(parted, target, spec.name)
    if kind == "gguf-file":
        path = Path(value).expanduser()
        if not path.is_file():
            raise BackendError(f"Model {spec.name!r}: GGUF file {path} not found.")
        return path
    raise BackendError(f"Model {spec.name!r} has no GGUF file (location {spec.location!r}).")


def model_digest(spec: ModelSpec) -> str:
    """A digest of the model's weights or source: part of every cache key."""
    kind, value = spec.location_kind, spec.location_value
    if kind == "gguf-assemble":
        module = importlib.import_module(value)
        expected = getattr(module, "EXPECTED_SHA256", None)
        return expected or file_digest(gguf_path(spec))
    if kind in ("gguf-package", "gguf-file"):
        return file_digest(gguf_path(spec))
    if kind == "gguf-parts":
        # Assembly verifies every byte against this digest, so it identifies the weights.
        return PartedGGUF.from_options(spec.options, spec.name).sha256
    if kind == "random":
        payload = json.dumps({"arch": value, **dict(spec.options)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()
    if kind == "dir":
        folder = Path(value).expanduser()
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        if not weights:
            raise BackendError(f"Model {spec.name!r}: no *.safetensors or *.bin weights in {folder}.")
        return hashlib.sha256("".join(file_digest(w) for w in weights).encode()).hexdigest()
    if kind == "hub":
        revision = spec.options.get("revision", "main")
        return hashlib.sha256(f"{value}@{revision}".encode()).hexdigest()
    raise BackendError(f"Model {spec.name!r}: unknown location kind {kind!r}.")


def materialized_folder(spec: ModelSpec, digest: str) -> Path:
    """The de-quantized copy of a GGUF: keyed by the weights' digest alone, so specs that
    differ only in name or compute dtype share one folder."""
    return cache_dir() / "models" / f"gguf-{digest[:24]}"


#: The last GGUF metadata parsed in this process: ``{(path, size, mtime): GGUFReader}``.
_PARSED: dict[tuple, object] = {}


@contextlib.contextmanager
def parsed_once():
    """Within the context, transformers parses each GGUF file's metadata once.

    For the legacy (gguf-py) loader, transformers parses the whole metadata, with every
    vocabulary string, for the tokenizer's config, the model's config and the weights: four
    parses of a Qwen file on a first use, which took most of its time. The reader only maps the
    file, so one instance serves them all; the last one is kept for the model load that follows
    a tokenizer load, and ``forget_parsed`` drops it. transformers also rebuilds gguf's tensor
    name map once per module of the model (hundreds of times); it depends only on the
    architecture and depth, so it is built once per pair.
    """
    import gguf

    original, original_names = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_names)

    def reader(path, mode="r"):
        stat = os.stat(path)
        key = (os.fspath(path), mode, stat.st_size, stat.st_mtime_ns)
        if key not in _PARSED:
            _PARSED.clear()
            _PARSED[key] = original(path, mode)
        return _PARSED[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = original, original_names


def forget_parsed() -> None:
    """Drop the kept GGUF metadata (its vocabulary strings take memory)."""
    _PARSED.clear()


def materialize_gguf(spec: ModelSpec, digest: str) -> Path:
    """De-quantize a GGUF model into a transformers folder in the cache (once), return it."""
    target = materialized_folder(spec, digest)
    if (target / "config.json").is_file():
        return target
    with exclusive_lock(target.parent / (target.name + ".lock")):
        if (target / "config.json").is_file():
            return target
        from safetensors.torch import save_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = gguf_path(spec)
        with parsed_once():
            tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
            quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
        forget_parsed()
        # GGUF-loaded models refuse save_pretrained ("not serializable") because of their
        # quantization settings. The weights are already plain de-quantized tensors, so they are
        # written as they are, with the config minus those settings; building a fresh model to
        # hold them would first initialise every weight at random.
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        weights, seen = {}, set()
        for name, tensor in quantized.state_dict().items():
            if tensor.data_ptr() in seen:  # a tied copy (lm_head of tied embeddings): loading re-ties it
                continue
            seen.add(tensor.data_ptr())
            weights[name] = tensor.contiguous()
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".partial-"))
        try:
            save_file(weights, str(staging / "model.safetensors"), metadata={"format": "pt"})
            config.save_pretrained(staging)
            if quantized.generation_config is not None:
                quantized.generation_config.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            os.replace(staging, target)  # atomic: a killed process leaves no half folder behind
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
