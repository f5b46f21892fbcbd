"""The command line (bot/__main__.py): --version, a help text per command, one-line usage errors."""

from __future__ import annotations

import pytest

from bot.__main__ import main
from bot.api.deps import package_version

COMMANDS = {
    "run": "Connect to Discord",
    "migrate": "Copy the database aside",
    "check-config": "Run exactly the checks `run` makes",
    "backup": "online backup API",
    "rotate-keys": "re-encrypt every stored Telegram chat",
    "demo": "built-in Discord, Telegram and Signal emulators",
}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"rallypoint {package_version()}"


def test_the_overview_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize(("command", "words"), COMMANDS.items())
def test_each_command_describes_itself(capsys: pytest.CaptureFixture[str], command: str, words: str) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert f"usage: python -m bot {command}" in out and words in out
    assert ("--config" in out) is (command != "demo")  # the demo builds its own configuration


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "--log-level", "verbose"], "'verbose' is not a log level"),
        (["--log-level", "loud", "migrate"], "'loud' is not a log level"),
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["backup"], "the following arguments are required: destination"),
        (["demo", "--config", "x.toml"], "unrecognized arguments"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], words: str) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    [line] = err.strip().splitlines()
    assert line.startswith("rallypoint: ") and words in line and "--help" in line


def test_options_before_or_after_the_command(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    missing = str(tmp_path / "missing.toml")
    for argv in (["--config", missing, "check-config"], ["check-config", "--config", missing]):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip() == f"rallypoint: config file not found: {missing}"
