"""Assembling a GGUF from part packages: every byte checked, errors name the package."""

import hashlib
import sys
import textwrap

import pytest

from routing_gym.errors import BackendError
from routing_gym.llm.gguf_parts import GGUFPart, PartedGGUF, assemble, parts_option
from routing_gym.llm.spec import BUILTIN_SPECS


def _make_part_package(root, package: str, payload: bytes) -> None:
    folder = root / package
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "part.bin").write_bytes(payload)
    (folder / "__init__.py").write_text(
        textwrap.dedent(
            """
            import os
            def get_part_path():
                return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "part.bin")
            """
        )
    )


@pytest.fixture
def parted(tmp_path, monkeypatch):
    """Three small part packages on sys.path and the PartedGGUF that describes them."""
    payloads = [b"GGUF" + bytes(range(200)) * 3, bytes(range(256)) * 2, b"tail-bytes" * 7]
    prefix = f"rg_test_part_{tmp_path.name.replace('-', '_')}_"
    for k, payload in enumerate(payloads, 1):
        _make_part_package(tmp_path / "site", f"{prefix}{k}", payload)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    parts = parts_option(prefix, [(len(p), hashlib.sha256(p).hexdigest()) for p in payloads])
    whole = hashlib.sha256(b"".join(payloads)).hexdigest()
    yield PartedGGUF.from_options({"parts": parts, "sha256": whole}, "toy"), payloads, prefix
    for k in range(1, len(payloads) + 1):
        sys.modules.pop(f"{prefix}{k}", None)


def test_parts_concatenate_in_order_into_a_verified_file(parted, tmp_path):
    gguf, payloads, _ = parted
    target = assemble(gguf, tmp_path / "out" / "toy.gguf", "toy")
    assert target.read_bytes() == b"".join(payloads)
    assert gguf.size == sum(len(p) for p in payloads)
    # A second call reuses the verified file.
    mtime = target.stat().st_mtime_ns
    assert assemble(gguf, target, "toy").stat().st_mtime_ns == mtime


def test_a_truncated_part_is_rejected_naming_its_package(parted, tmp_path):
    gguf, payloads, prefix = parted
    part_file = tmp_path / "site" / f"{prefix}2" / "data" / "part.bin"
    part_file.write_bytes(payloads[1][:-10])
    target = tmp_path / "out" / "toy.gguf"
    with pytest.raises(BackendError, match=f"{prefix}2".replace("_", "-") + ".*truncated"):
        assemble(gguf, target, "toy")
    assert not target.exists()
    assert not list((tmp_path / "out").glob("*.partial")), "no half-written file may stay behind"


def test_a_part_from_the_wrong_package_is_rejected_naming_it(parted, tmp_path):
    gguf, payloads, prefix = parted
    # Same size, other bytes: what a part of another model's package looks like.
    part_file = tmp_path / "site" / f"{prefix}3" / "data" / "part.bin"
    part_file.write_bytes(b"X" * len(payloads[2]))
    target = tmp_path / "out" / "toy.gguf"
    with pytest.raises(BackendError, match=f"{prefix}3".replace("_", "-") + ".*sha256"):
        assemble(gguf, target, "toy")
    assert not target.exists() and not list((tmp_path / "out").glob("*.partial"))


def test_a_missing_part_package_names_the_package_to_install(tmp_path):
    gguf = PartedGGUF((GGUFPart("rg_no_such_part_package_1", 3, "0" * 64),), "0" * 64)
    with pytest.raises(BackendError, match="rg-no-such-part-package-1"):
        assemble(gguf, tmp_path / "x.gguf", "toy")


def test_a_parts_spec_without_options_gives_a_clear_error():
    with pytest.raises(BackendError, match="'parts'"):
        PartedGGUF.from_options({}, "toy")


@pytest.mark.parametrize("name,size", [("qwen2.5-coder-0.5b", 491_400_064), ("qwen2.5-coder-1.5b", 1_117_320_768)])
def test_builtin_qwen_parts_add_up_to_the_published_size(name, size):
    spec = BUILTIN_SPECS[name]
    gguf = PartedGGUF.from_options(spec.options, name)
    assert gguf.size == size
    assert len(gguf.sha256) == 64
