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

from processors.verify import Verifier
from producers.signing import generate_key
from runtime.kafka import KafkaConnection
from schemas.enrolment import HEADER_AGENT, HEADER_SEQUENCE, AgentEntry
from schemas.envelope import is_envelope, unpack
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


Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


def read_records(kafka: KafkaConnection, start: dict[int, int], agent_id: str,
                 timeout: float = 60, isolation: str = "read_committed") -> list[Record]:
    """The ``events.raw`` records ``agent_id`` signed after ``start``, in log order."""
    consumer = kafka.consumer("vigie-agent-test", **{"enable.partition.eof": True,
                                                     "isolation.level": isolation})
    out: list[Record] = []
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
            error, value = msg.error(), msg.value()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    todo.discard(msg.partition())
                continue
            if msg.offset() >= ends[msg.partition()] - 1:
                todo.discard(msg.partition())
            headers = [(k, bytes(v or b"")) for k, v in msg.headers() or []]
            if value is not None and dict(headers).get(HEADER_AGENT) == agent_id.encode():
                out.append((msg.key() or b"", value, headers))
    finally:
        consumer.close()
    return out


def event_ids(records: list[Record]) -> Counter[str]:
    """event.id → how many times it is in ``records``, envelopes opened."""
    counts: Counter[str] = Counter()
    for _key, value, _headers in records:
        events = unpack(value)[1] if is_envelope(value) else [value]
        counts.update(json.loads(event)["event"]["id"] for event in events)
    return counts


def read_back(kafka: KafkaConnection, start: dict[int, int], agent_id: str,
              timeout: float = 60) -> Counter[str]:
    """event.id → how many times it is in events.raw after ``start``, for ``agent_id``
    (read_committed, envelopes opened)."""
    return event_ids(read_records(kafka, start, agent_id, timeout))


def check_envelopes(records: list[Record], agent: AgentEntry) -> list[int]:
    """What the processor checks first, for each record of one agent: an envelope whose
    signature verifies (``processors.verify.Verifier``) and whose header line agrees with its
    key and headers. Returns their sequences, in log order."""
    verifier = Verifier([agent])
    sequences = []
    for key, value, headers in records:
        assert is_envelope(value), value[:80]
        assert verifier.verify(value, headers, key.decode()) == agent.agent_id
        header, _events = unpack(value)
        sequence = int(dict(headers)[HEADER_SEQUENCE])
        assert (header.agent, header.establishment, header.sequence) == (
            agent.agent_id, key.decode(), sequence)
        sequences.append(sequence)
    return sequences


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
