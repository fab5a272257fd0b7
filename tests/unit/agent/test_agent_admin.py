"""What a hospital administrator runs: `vigie agent test config`, log level and format, and
librdkafka's lines held back while the link is down."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from producers.agent.kafka_logs import RepeatLimit
from producers.signing import generate_key

REPO = Path(__file__).resolve().parents[3]
ORG = {"id": "750712184", "name": "CHU Test", "type": "university_hospital",
       "region": "ile-de-france"}


def vigie(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigie.cli", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})})


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    generate_key(tmp_path / "agent.key")
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "establishment": ORG, "agent_id": "chu-test-01", "key_path": "agent.key",
        "state_dir": "state", "kafka": {"bootstrap": "localhost:1"},
        "sources": [{"type": "syslog", "name": "net", "protocol": "tcp", "port": 5514}],
        "log": {"level": "WARNING", "format": "json"}}))
    return path


def test_test_config_says_what_the_agent_would_do(config: Path) -> None:
    done = vigie("agent", "test", "config", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  agent key" in done.stdout
    assert "listens for syslog over TCP on 127.0.0.1:5514" in done.stdout
    assert "WARN  Kafka: localhost:1 over PLAINTEXT: NOT encrypted" in done.stdout


def test_test_config_fails_on_a_key_others_can_read(config: Path) -> None:
    (config.parent / "agent.key").chmod(0o644)
    done = vigie("agent", "test", "config", "-c", str(config))
    assert done.returncode == 78
    assert "FAIL  agent key" in done.stdout and "chmod 600" in done.stdout


def test_test_config_fails_on_a_weak_pseudonymisation_key(config: Path) -> None:
    state = config.parent / "state"
    state.mkdir()
    fd = os.open(state / "pseudonym.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, bytes(32).hex().encode())
    os.close(fd)
    done = vigie("agent", "test", "config", "-c", str(config))
    assert done.returncode == 78
    assert "FAIL  pseudonymisation key" in done.stdout and "all zero" in done.stdout


def test_test_output_names_the_step_that_failed(config: Path) -> None:
    done = vigie("agent", "test", "output", "-c", str(config), "--timeout", "2")
    assert done.returncode == 69
    lines = done.stdout.splitlines()
    assert lines[0].startswith("FAIL  address: no bootstrap server answers: localhost:1")
    assert all(line.startswith("SKIP") for line in lines[1:]) and len(lines) == 5


def test_log_format_and_level_from_config_env_and_option(config: Path,
                                                         tmp_path: Path) -> None:
    bad_line = tmp_path / "events.jsonl"
    bad_line.write_text("this is not JSON\n")

    def warnings(*options: str, env: dict[str, str] | None = None) -> list[str]:
        done = vigie("agent", "ingest", "--dry-run", "-c", str(config), *options,
                     str(bad_line), env=env)
        assert done.returncode == 0, done.stderr
        return [line for line in done.stderr.splitlines() if "malformed input" in line]

    # the configuration says JSON at WARNING
    [line] = warnings()
    assert json.loads(line)["log.level"] == "warning"
    # the environment beats the configuration, the option beats the environment
    [line] = warnings(env={"VIGIE_LOG_FORMAT": "text"})
    assert line.split()[2] == "WARNING"
    [line] = warnings("--log-format", "json", env={"VIGIE_LOG_FORMAT": "text"})
    assert json.loads(line)["log.level"] == "warning"
    assert warnings(env={"VIGIE_LOG_LEVEL": "ERROR"}) == []
    assert warnings("--log-level", "error") == []
    bad = vigie("agent", "status", "-c", str(config), "--log-level", "chatty")
    assert bad.returncode == 64 and "log level 'chatty'" in bad.stderr


def test_librdkafka_repeats_are_held_back_then_counted() -> None:
    now = [0.0]
    limit = RepeatLimit(60, clock=lambda: now[0])
    logger = logging.getLogger("test.librdkafka.repeat")
    logger.propagate = False
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger.handlers[:] = [Keep()]
    logger.addFilter(limit)
    for second in range(0, 125):  # an outage: one failed connect a second for two minutes
        now[0] = float(second)
        logger.error("FAIL [rdkafka#producer-1] Connect to ipv4#10.0.0.1:9093 failed "
                     "(after %dms in state CONNECT)", 1000 + second)
    logger.error("another message")
    assert len(seen) == 4  # t=0, t=60, t=120, and the other message
    assert seen[1].endswith("(repeated 59 times in 60 s)")
    assert seen[2].endswith("(repeated 59 times in 60 s)")
    assert seen[3] == "another message"


def test_no_stderr_flood_while_kafka_is_down(config: Path) -> None:
    """Against a closed port librdkafka retries several times a second; for 8 s the agent
    writes its start-up lines and a handful of warnings, all through its own log format."""
    import signal
    import time

    data = yaml.safe_load(config.read_text())
    data["log"] = {"level": "INFO", "format": "json"}
    data["sources"] = []
    config.write_text(yaml.safe_dump(data))
    agent = subprocess.Popen([sys.executable, "-m", "vigie.cli", "agent", "run", "-c",
                              str(config), "--drain", "1"], cwd=REPO, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                  "VIGIE_METRICS_PORT": "0"})
    time.sleep(8)
    agent.send_signal(signal.SIGTERM)
    _, stderr = agent.communicate(timeout=60)
    lines = stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line is the agent's JSON
    from_librdkafka = [r for r in records if r["log.logger"] == "librdkafka"]
    assert 1 <= len(from_librdkafka) <= 2, from_librdkafka
    assert len(lines) <= 12, stderr
