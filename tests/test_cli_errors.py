"""The command line names the bad input in one line: exit 2 for usage errors, 1 for failures
while running, and a traceback only with --debug."""

from __future__ import annotations

import subprocess
import sys

import pytest

from routing_gym.cli import UsageError, main


def usage_error(capsys, argv: list[str]) -> str:
    """The one stderr line of a usage error (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_missing_config_file_is_named(capsys, tmp_path):
    line = usage_error(capsys, ["bench", "--config", str(tmp_path / "missing.yaml")])
    assert "--config" in line and "missing.yaml: no such file" in line


def test_malformed_yaml_and_json_config_files_name_the_file_and_line(capsys, tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("agents: [knn\n  x: : y\n")
    line = usage_error(capsys, ["bench", "--config", str(bad_yaml)])
    assert "bad.yaml, line 2: not valid YAML" in line
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"agents": ["knn",}')
    line = usage_error(capsys, ["train", "--config", str(bad_json)])
    assert "bad.json, line 1: not valid JSON" in line


def test_a_config_value_of_the_wrong_type_names_key_and_flag(capsys, tmp_path):
    config = tmp_path / "jobs.yaml"
    config.write_text("jobs: banana\n")
    line = usage_error(capsys, ["bench", "--config", str(config)])
    assert "key 'jobs' (--jobs) must be an int, got 'banana'" in line
    config.write_text("jobs: 2.5\n")  # not silently truncated to 2
    assert "got 2.5" in usage_error(capsys, ["bench", "--config", str(config)])
    config.write_text("no_progress: maybe\n")
    assert "true or false" in usage_error(capsys, ["bench", "--config", str(config)])


def test_train_names_an_unknown_env_id(capsys):
    line = usage_error(capsys, ["train", "--env", "LLMRouting-Nope-v0"])
    assert "--env 'LLMRouting-Nope-v0' is not a registered env ID" in line


def test_train_names_a_bad_lambda(capsys):
    line = usage_error(capsys, ["train", "--lam", "banana"])
    assert line.startswith("routing-gym: --lam 'banana':") and "regime" in line


def test_a_bad_env_config_names_the_flag(capsys):
    for command in ("train", "bench"):
        line = usage_error(capsys, [command, "--env-config", '{"tasks": ["nope"]}'])
        assert "--env-config" in line and "unknown task 'nope'" in line


def test_env_config_cannot_silently_lose_to_a_registered_variant(capsys):
    line = usage_error(
        capsys,
        ["train", "--env", "LLMRouting-Table-GSM8K-v0", "--env-config", '{"tasks": ["math"]}'],
    )
    assert "'tasks' is given twice" in line


def test_a_bad_flag_is_one_line(capsys):
    line = usage_error(capsys, ["bench", "--jobs", "banana"])
    assert "argument --jobs: invalid int value: 'banana'" in line


def test_train_haps_names_a_bad_flag_or_value_in_one_line(capsys):
    line = usage_error(capsys, ["train-haps", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in line
    line = usage_error(capsys, ["train-haps", "--updates", "many"])
    assert "argument --updates: invalid int value: 'many'" in line
    assert "'routing-gym train-haps --help'" in line


def test_the_train_haps_example_names_a_bad_flag_in_one_line(run_example):
    done = run_example("train_haps.py", ["--router", "psychic"], timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "argument --router: invalid choice: 'psychic'" in lines[0], lines


def test_a_failure_while_running_is_one_line_with_status_1(capsys, tmp_path):
    argv = [
        "precompute",
        "--data-dir",
        str(tmp_path / "nowhere"),
        "--out",
        str(tmp_path / "t.jsonl"),
    ]
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "--debug" in lines[0]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main([*argv, "--debug"])


def test_usage_errors_are_system_exits_with_status_2():
    error = UsageError("--lam: bad")
    assert isinstance(error, SystemExit) and error.code == 2 and str(error) == "--lam: bad"


def test_the_installed_command_prints_no_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "routing_gym", "train", "--lam", "banana"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    debug = subprocess.run(
        [sys.executable, "-m", "routing_gym", "train", "--lam", "banana", "--debug"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr
