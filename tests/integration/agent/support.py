"""Helpers for the agent drills: a configured agent process, Kafka read-back, broker stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from confluent_kafka import KafkaError, TopicPartition

from producers.signing import generate_key
from runtime.kafka import KafkaConnection
from schemas.enrolment import HEADER_AGENT
from schemas.organization import Organization
from schemas.topics import EVENTS_RAW


def connection_block(kafka: KafkaConnection) -> dict[str, object]:
    """``kafka`` as an agent configuration's ``kafka:`` block, password included.

    The drills run the agent with the stack's admin connection, not the agent principal of
    deploy/security/kafka-acls.yaml: the agent's restart check still reads events.raw, which
    an agent's ACLs do not allow (issue 12, item 3, redesigns that check)."""
    block: dict[str, object] = {}
    for name, value in kafka.model_dump(exclude_none=True).items():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        block[name] = str(value) if isinstance(value, Path) else value
    return block


def write_config(tmp_path: Path, org: Organization, agent_id: str, kafka: KafkaConnection,
                 sources: list[dict], **extra: object) -> Path:
    key = tmp_path / "agent.key"
    if not key.exists():
        generate_key(key)
    config = {
        "establishment": org.model_dump(mode="json"), "agent_id": agent_id,
        "key_path": str(key), "kafka": connection_block(kafka),
        "state_dir": str(tmp_path / "state"), "sources": sources,
        "metrics_port": 0, **extra,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class AgentProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        out = self.log.open("ab")
        env = {**os.environ, "VIGIE_METRICS_PORT": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vigie.cli", "agent", "run", "--config", str(self.config),
             "--drain", "20"], stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        out.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def status(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def read_back(kafka: KafkaConnection, start: dict[int, int], agent_id: str,
              timeout: float = 60) -> Counter[str]:
    """event.id → how many times it is in events.raw after ``start``, for ``agent_id``."""
    consumer = kafka.consumer("vigie-agent-test", **{"enable.partition.eof": True})
    counts: Counter[str] = Counter()
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(EVENTS_RAW.name, p),
                                                  timeout=15)[1] for p in start}
        todo = {p for p in start if ends[p] > start[p]}
        consumer.assign([TopicPartition(EVENTS_RAW.name, p, start[p]) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    todo.discard(msg.partition())
                continue
            if msg.offset() >= ends[msg.partition()] - 1:
                todo.discard(msg.partition())
            if dict(msg.headers() or []).get(HEADER_AGENT) == agent_id.encode():
                counts[json.loads(msg.value())["event"]["id"]] += 1
    finally:
        consumer.close()
    return counts


def stop_kafka(grace: float = 60) -> None:
    """SIGTERM the local broker (deploy/local) and wait until it is gone."""
    from deploy.local import procs
    from deploy.local.kafka import Kafka
    from deploy.local.layout import Layout

    kafka = Kafka(Layout.default())
    pid = kafka.pid()
    if pid is None:
        return
    procs.signal_all([pid], signal.SIGTERM)
    left = procs.wait_gone([pid, *procs.marked_pids(kafka.mark)], grace)
    if left:
        procs.signal_all(left, signal.SIGKILL)
        procs.wait_gone(left, 15)
