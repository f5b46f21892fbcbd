"""deploy/: the systemd unit, the Dockerfile and the compose file agree with the code they run.

Always: every environment variable they set is one the settings read, every file they copy exists,
the health check asks /readyz, exit code 2 is not restarted. Where the tools exist, they check the
files too: `systemd-analyze verify` for the unit, `docker compose config` (or docker-compose) for the
compose file. No Docker engine is needed (none runs the image here).
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import environment_names
from bot.sandbox.stack import PROJECT_ROOT

ROOT = Path(PROJECT_ROOT)
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "rallypoint.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
KNOWN_VARIABLES = {*environment_names(), "PTB_TIMEDELTA"}


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_the_unit_does_not_restart_a_configuration_error() -> None:
    service = unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["ExecStart"].endswith("/.venv/bin/python -m bot run")
    assert service["KillSignal"] == "SIGTERM"


def test_the_unit_runs_a_python_that_lives_under_home() -> None:
    # ProtectHome=yes would hide a pyenv/asdf interpreter under /home (status 203/EXEC).
    assert unit()["Service"]["ProtectHome"] == "read-only"


def test_the_unit_sets_only_variables_the_bot_reads() -> None:
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment="):
            name = line.removeprefix("Environment=").split("=", 1)[0]
            assert name in KNOWN_VARIABLES, name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # The installed path does not exist here: point ExecStart at this interpreter, change nothing else.
    copy = tmp_path / "rallypoint.service"
    copy.write_text(
        UNIT.read_text(encoding="utf-8").replace("/opt/rallypoint/.venv/bin/python", str(Path(sys.executable))),
        encoding="utf-8",
    )
    result = subprocess.run(  # noqa: S603
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False  # noqa: S607
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr  # no warning either


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_copies_files_that_exist_and_sets_known_variables() -> None:
    instructions = dockerfile()
    for kind, args in instructions:
        if kind == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
        if kind == "ENV":
            for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", args):
                assert name.startswith(("PYTHON", "PIP_")) or name in KNOWN_VARIABLES, name
    env = " ".join(args for kind, args in instructions if kind == "ENV")
    assert "RALLYPOINT_API__HOST=0.0.0.0" in env and "RALLYPOINT_API__PORT=8080" in env
    assert ("EXPOSE", "8080") in instructions
    assert ("CMD", '["python", "-m", "bot", "run"]') in instructions


def test_the_image_is_healthy_only_when_ready() -> None:
    [check] = [args for kind, args in dockerfile() if kind == "HEALTHCHECK"]
    assert "http://127.0.0.1:8080/readyz" in check


def test_docker_leaves_secrets_and_databases_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", ".git", "config.toml", "*.sqlite3", "*.sqlite3-*", "data"} <= ignored


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_rallypoint_beside_signal_cli_rest_api() -> None:
    services = compose()["services"]
    assert set(services) == {"rallypoint", "signal-cli-rest-api"}
    bot, signal = services["rallypoint"], services["signal-cli-rest-api"]
    assert (COMPOSE.parent / bot["build"]["context"] / bot["build"]["dockerfile"]).resolve() == DOCKERFILE
    for name in bot["environment"]:
        assert name in KNOWN_VARIABLES, name
    # The bot reaches Signal by its service name, on the port signal-cli-rest-api serves inside.
    assert bot["environment"]["RALLYPOINT_SIGNAL__API_URL"] == "http://signal-cli-rest-api:8080"
    assert signal["environment"]["MODE"] == "json-rpc"
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port  # nothing published beyond the host's loopback


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)  # noqa: S603
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


@pytest.mark.skipif(compose_command() is None, reason="neither docker compose nor docker-compose is installed")
def test_compose_accepts_the_file(tmp_path: Path) -> None:
    # Its files live in /etc/rallypoint on a server; give it stand-ins, change nothing else.
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "secrets.env").write_text("", encoding="utf-8")
    (etc / "config.toml").write_text("", encoding="utf-8")
    (tmp_path / "deploy").mkdir()
    copy = tmp_path / "deploy" / "compose.yaml"
    copy.write_text(COMPOSE.read_text(encoding="utf-8").replace("/etc/rallypoint", str(etc)), encoding="utf-8")
    command = compose_command()
    assert command is not None
    result = subprocess.run(  # noqa: S603
        [*command, "-p", "rallypoint", "-f", str(copy), "config", "-q"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
