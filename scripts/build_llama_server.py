"""Build llama.cpp's ``llama-server`` from the sources the installed llama-cpp-python vendors.

The sdist of the installed llama-cpp-python version carries llama.cpp under ``vendor/llama.cpp``;
building from it keeps the server's numerics the same llama.cpp release as the in-process
``*-llamacpp`` backend. Only the ``llama-server`` target is built (CPU, Release, no curl), into
``<ROUTING_GYM_CACHE or ~/.cache/routing_gym>/bin/llama-server``, where
``routing_gym.llm.llama_cpp_server`` finds it. The sdist is fetched from the package registry
(build time only) unless ``--sdist-dir`` already holds it.

    python scripts/build_llama_server.py [--sdist-dir DIR] [--jobs N] [--force]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing_gym.llm.llama_cpp_server import native_server_build_info_path, native_server_path

PACKAGE = "llama-cpp-python"
CMAKE_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",  # llama-server lives under tools/ in recent llama.cpp
    "-DLLAMA_BUILD_SERVER=ON",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary to copy into the cache
    "-DGGML_CUDA=OFF",
    "-DGGML_METAL=OFF",
]


class BuildError(RuntimeError):
    """A build step failed; the message is one line naming which."""


def installed_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(f"{PACKAGE} is not installed in {sys.executable}'s environment.") from None


def find_sdist(folder: Path, version: str) -> Path | None:
    for pattern in (f"llama_cpp_python-{version}.tar.gz", f"llama-cpp-python-{version}.tar.gz"):
        candidates = sorted(folder.glob(pattern))
        if candidates:
            return candidates[0]
    return None


def fetch_sdist(folder: Path, version: str) -> Path:
    """The sdist in ``folder``, downloaded there from the package registry if missing."""
    folder.mkdir(parents=True, exist_ok=True)
    found = find_sdist(folder, version)
    if found is not None:
        return found
    # Only llama-cpp-python itself as source: with ``:all:`` pip would also build every build
    # dependency (setuptools, hatchling, ...) from source just to read the sdist's metadata.
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        PACKAGE,
        "--no-deps",
        "--dest",
        str(folder),
        f"{PACKAGE}=={version}",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    found = find_sdist(folder, version)
    if found is None:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"could not download the {PACKAGE}=={version} sdist into {folder}: {last}")
    return found


def run_step(command: list[str], log_path: Path, what: str) -> None:
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()
        error_lines = [line for line in tail if "error" in line.lower()]
        detail = (error_lines or tail or ["no output"])[-1].strip()
        raise BuildError(f"{what} failed (exit {code}; full log {log_path}): {detail}")


def build(sdist: Path, jobs: int, target: Path, version: str) -> Path:
    """Unpack ``sdist``, configure and build ``llama-server``, copy it to ``target``."""
    work = Path(tempfile.mkdtemp(prefix="llama-server-build-"))
    try:
        log_path = target.parent / "llama-server-build.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        roots = list(work.glob("*/vendor/llama.cpp"))
        if not roots or not (roots[0] / "CMakeLists.txt").is_file():
            raise BuildError(f"{sdist.name} holds no vendor/llama.cpp/CMakeLists.txt.")
        source = roots[0]
        build_dir = work / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        run_step(
            ["cmake", "-S", str(source), "-B", str(build_dir), *generator, *CMAKE_OPTIONS],
            log_path,
            "cmake configure",
        )
        run_step(
            ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)],
            log_path,
            "cmake build of llama-server",
        )
        built = next(
            (p for p in build_dir.rglob("llama-server") if p.is_file() and os.access(p, os.X_OK)),
            None,
        )
        if built is None:
            raise BuildError(
                f"the build finished but produced no llama-server binary (log {log_path})."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_suffix(".new")
        shutil.copy2(built, staging)
        staging.replace(target)  # atomic, so a running pool never sees half a binary
        native_server_build_info_path(target).write_text(f"{PACKAGE}=={version}\n")
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the unpacked sources and objects are large


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sdist-dir",
        type=Path,
        default=None,
        help="folder holding (or to receive) the llama-cpp-python sdist",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=None, help="where to put the binary")
    parser.add_argument("--force", action="store_true", help="rebuild even if the binary is there")
    args = parser.parse_args(argv)
    target = args.output or native_server_path(search=False)
    try:
        version = installed_version()
        info = native_server_build_info_path(target)
        if (
            not args.force
            and target.is_file()
            and info.is_file()
            and info.read_text().strip() == f"{PACKAGE}=={version}"
        ):
            print(target)
            return 0
        folder = args.sdist_dir or (target.parent.parent / "sdist")
        sdist = fetch_sdist(folder, version)
        print(f"building llama-server from {sdist} ...", file=sys.stderr)
        print(build(sdist, args.jobs, target, version))
    except BuildError as error:
        print(f"build_llama_server: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
