"""The systemd unit of the agent: hardened, and accepted by ``systemd-analyze verify``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "deploy" / "agent" / "vigie-agent.service"
LOW_PORT = UNIT.with_name("low-port.conf")


def settings(path: Path) -> dict[str, list[str]]:
    """``key -> [values]`` of a unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_is_hardened() -> None:
    unit = settings(UNIT)
    for key, value in {"DynamicUser": "yes", "NoNewPrivileges": "yes",
                       "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "StateDirectory": "vigie-agent",
                       "StateDirectoryMode": "0700", "UMask": "0077",
                       "CapabilityBoundingSet": "", "AmbientCapabilities": ""}.items():
        assert unit[key] == [value], key
    assert unit["LoadCredential"] == ["agent.yaml:/etc/vigie-agent/agent.yaml",
                                      "agent.key:/etc/vigie-agent/agent.key"]
    assert "78" in unit["RestartPreventExitStatus"][0].split()
    assert unit["ExecStart"][0].startswith("/opt/vigie-agent/bin/vigie agent run --config "
                                           "${CREDENTIALS_DIRECTORY}/agent.yaml")


def test_a_low_port_grants_one_capability_only() -> None:
    assert settings(LOW_PORT) == {"CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"],
                                  "AmbientCapabilities": ["CAP_NET_BIND_SERVICE"]}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify also checks that the programs exist: the venv's is not installed here (the
    # .deb test verifies the installed unit), /usr/bin/env stands in for it.
    copy = tmp_path / "vigie-agent.service"
    copy.write_text(UNIT.read_text().replace("/opt/vigie-agent/bin/vigie", "/usr/bin/env"))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and str(copy) not in done.stderr, done.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(copy.read_text().replace("ProtectSystem=strict", "ProtectSystem=maybe"))
    done = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True,
                          text=True, timeout=60)
    assert f"{broken}:" in done.stderr  # a line of ours is reported: the check can fail
