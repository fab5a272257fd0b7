"""``vigie agent`` runs on a hospital server where the national dependencies are not installed.

Each check runs ``vigie`` in a fresh interpreter whose import system refuses Faust, aiokafka,
Elasticsearch, matplotlib, pySigma and pyahocorasick, as if they were absent: any import of
them on the agent's path (even a lazy one) fails the command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED_EVTX = REPO.parent / "shared" / "data" / "sigma" / "regression"

NATIONAL = ("faust", "mode", "aiokafka", "elasticsearch", "elastic_transport", "matplotlib",
            "sigma", "ahocorasick")

HOSPITAL_SERVER = textwrap.dedent(f"""
    import importlib.abc
    import sys

    NATIONAL = {NATIONAL!r}

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in NATIONAL:
                raise ImportError(f"No module named {{name!r}} (not on a hospital server)")
            return None

    sys.meta_path.insert(0, NotInstalled())
    from vigie.cli import main

    main(sys.argv[1:])
""")

ORG = {"id": "750712184", "name": "CHU Test", "type": "university_hospital",
       "region": "ile-de-france"}


def vigie(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``vigie argv`` on a simulated hospital server (the worktree's code first on the path)."""
    return subprocess.run([sys.executable, "-c", HOSPITAL_SERVER, *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


@pytest.fixture()
def agent_config(tmp_path: Path) -> Path:
    enrolled = vigie("agent", "enroll", "--out", str(tmp_path / "agent.key"))
    assert enrolled.returncode == 0, enrolled.stderr
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "establishment": ORG, "agent_id": "chu-test-01", "key_path": "agent.key",
        "state_dir": "state", "sources": []}))
    return config


def logon(record_id: int, user: str) -> dict[str, object]:
    """A Winlogbeat-shaped Windows logon (4624) of ``user`` from an internal address."""
    return {"@timestamp": "2025-01-01T00:00:00Z", "host": {"name": "ws01"},
            "winlog": {"channel": "Security", "event_id": "4624", "record_id": str(record_id),
                       "event_data": {"TargetUserName": user, "IpAddress": "10.1.2.3",
                                      "LogonType": "3"}}}


def test_the_national_modules_are_really_refused() -> None:
    probe = vigie("--version")
    assert probe.returncode == 0, probe.stderr
    refused = subprocess.run(
        [sys.executable, "-c", HOSPITAL_SERVER.replace("from vigie.cli import main",
                                                       "import elasticsearch")],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "not on a hospital server" in refused.stderr


def test_agent_help_without_national_dependencies() -> None:
    assert vigie("--help").returncode == 0
    shown = vigie("agent", "--help")
    assert shown.returncode == 0, shown.stderr
    for command in ("run", "ingest", "enroll", "status"):
        assert command in shown.stdout


def test_ingest_dry_run_without_national_dependencies(agent_config: Path,
                                                      tmp_path: Path) -> None:
    sample = tmp_path / "logons.jsonl"
    sample.write_text("\n".join(json.dumps(logon(n, "alice.martin")) for n in (7, 8)) + "\n")
    done = vigie("agent", "ingest", "--dry-run", "--config", str(agent_config), str(sample))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["winlog"]["record_id"] for e in events] == [7, 8]
    assert {e["organization"]["id"] for e in events} == {ORG["id"]}
    assert {e["agent"]["id"] for e in events} == {"chu-test-01"}
    assert "alice.martin" not in done.stdout, "identities must be pseudonymised"
    assert "2 events parsed" in done.stderr


@pytest.mark.skipif(not SHARED_EVTX.is_dir(), reason="shared regression data not present")
def test_ingest_dry_run_of_an_evtx_without_national_dependencies(agent_config: Path) -> None:
    sample = min(SHARED_EVTX.rglob("*.evtx"))
    done = vigie("agent", "ingest", "--dry-run", "--config", str(agent_config), str(sample))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events and all(e["event"]["module"] == "windows" for e in events)
    assert f"{len(events)} events parsed" in done.stderr
