"""The ``vigie-agent`` distribution, as a hospital installs it: the wheel built by
``deploy/agent/build.py`` goes into a fresh virtual environment with its own dependencies
only; the national ones are absent there; ``ingest --dry-run``, ``test config``, ``test
output`` and a short ``run`` against the real secured Kafka (SASL_SSL, the local agent's
credential and ACLs) work from it.

Takes a minute or two (pip fetches the dependencies; ``PIP_FIND_LINKS=/opt/wheels`` is used
when that folder exists). Needs the local stack up (``VIGIE_HOME``) for the last steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deploy.agent.build import build_wheel
from deploy.local.credentials import LOCAL_AGENT, local_security
from deploy.local.layout import state_dir
from tests.integration.agent.support import connection_block

pytestmark = pytest.mark.integration

NATIONAL = ("faust", "mode", "aiokafka", "elasticsearch", "sigma", "matplotlib",
            "ahocorasick", "cramjam")
ORG = {"id": "750712184", "name": "CHU Test", "type": "university_hospital",
       "region": "ile-de-france"}


def logon(record_id: int, user: str) -> dict[str, object]:
    return {"@timestamp": "2025-01-01T00:00:00Z", "host": {"name": "ws01"},
            "winlog": {"channel": "Security", "event_id": "4624", "record_id": str(record_id),
                       "computer_name": "ws01.chu.local",
                       "event_data": {"TargetUserName": user, "IpAddress": "10.1.2.3",
                                      "LogonType": "3"}}}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the built wheel and its dependencies installed."""
    root = tmp_path_factory.mktemp("agent-dist")
    wheel = build_wheel(root / "dist")
    assert wheel.name.startswith("vigie_agent-")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if Path("/opt/wheels").is_dir() and any(Path("/opt/wheels").iterdir()):
        env["PIP_FIND_LINKS"] = "/opt/wheels"
    subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "--quiet", str(wheel)],
                   check=True, env=env, timeout=600)
    return root / "venv"


def run(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``vigie argv`` from the installed distribution (not from this checkout)."""
    return subprocess.run([str(venv / "bin" / "vigie"), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=120,
                          env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)})


@pytest.fixture()
def agent_config(tmp_path: Path) -> Iterator[Path]:
    """The local stack's enrolled agent (its Kafka credential), events to ship in a file."""
    kafka = local_security(state_dir()).kafka("agent")
    events = tmp_path / "security.jsonl"
    events.write_text("".join(json.dumps(logon(i, f"user{i}")) + "\n" for i in range(1, 4)))
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "establishment": ORG, "agent_id": LOCAL_AGENT, "key_path": "agent.key",
        "state_dir": "state", "kafka": connection_block(kafka), "metrics_port": 0,
        "sources": [{"type": "json", "name": "dc", "paths": [str(events)]}]}))
    config.chmod(0o600)
    yield config


def test_the_distribution_has_no_national_dependency(venv: Path, tmp_path: Path) -> None:
    probe = ("import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) "
             f"is not None for m in {NATIONAL!r}}}))")
    found = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert json.loads(found.stdout) == dict.fromkeys(NATIONAL, False)
    for absent in ("processors", "sinks", "soc", "deploy", "producers.simulator",
                   "vigie.cli.platform", "runtime.elasticsearch", "runtime.topics"):
        probe = f"import importlib.util; print(importlib.util.find_spec({absent!r}) is None)"
        assert subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path,
                              capture_output=True, text=True).stdout.strip() == "True", absent
    helped = run(venv, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "agent" in helped.stdout
    assert "stack" not in helped.stdout and "incidents" not in helped.stdout


def test_dry_run_and_test_config_from_the_distribution(venv: Path, tmp_path: Path,
                                                       agent_config: Path) -> None:
    enrolled = run(venv, "agent", "enroll", "--out", "agent.key", cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    dry = run(venv, "agent", "ingest", "--dry-run", "-c", str(agent_config),
              str(tmp_path / "security.jsonl"), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    events = [json.loads(line) for line in dry.stdout.splitlines()]
    assert len(events) == 3 and all(e["event"]["code"] == "4624" for e in events)
    assert "user1" not in dry.stdout  # pseudonymised with the configuration's key
    checked = run(venv, "agent", "test", "config", "-c", str(agent_config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PASS  agent key" in checked.stdout


def test_test_output_and_a_short_run_against_the_secured_kafka(
        venv: Path, tmp_path: Path, agent_config: Path) -> None:
    assert run(venv, "agent", "enroll", "--out", "agent.key", cwd=tmp_path).returncode == 0
    output = run(venv, "agent", "test", "output", "-c", str(agent_config), cwd=tmp_path)
    assert output.returncode == 0, output.stdout + output.stderr
    assert [line.split()[0] for line in output.stdout.splitlines()] == ["PASS"] * 5
    assert "producer id" in output.stdout and "SASL_SSL" not in output.stderr
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen([str(venv / "bin" / "vigie"), "agent", "run", "-c",
                              str(agent_config), "--log-format", "json"], cwd=tmp_path,
                             stdout=log, stderr=subprocess.STDOUT,
                             env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 60
        delivered = 0
        while time.monotonic() < deadline and delivered < 3:
            time.sleep(1)
            status = run(venv, "agent", "status", "--json", "-c", str(agent_config),
                         cwd=tmp_path)
            live = json.loads(status.stdout).get("last_run") or {}
            delivered = live.get("delivered", 0)
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()
        assert delivered == 3, (tmp_path / "agent.log").read_text()
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(60)
        log.close()
    assert code == 0
    lines = (tmp_path / "agent.log").read_text().splitlines()
    assert lines and all(json.loads(line)["log.level"] for line in lines)
    assert (os.stat(tmp_path / "state" / "spool").st_mode & 0o777) == 0o700
