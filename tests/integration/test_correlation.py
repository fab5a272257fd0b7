"""Sigma correlation rules on the real broker: each type fires once, across a SIGKILL.

A worker running the correlation agent (``tests/integration/correlation_worker.py``, the same
``register`` the processor calls) is fed signals on ``vigie.correlation-inputs``; it is
killed with SIGKILL in the middle of every window, restarted, and the rest of the evidence
follows. The windows must be recovered from the table's changelog: each correlation fires
exactly once (one id), not zero times (state lost) and not twice (state replayed).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from processors.classify import Document, SigmaClassifier
from processors.detection.engine import Engine
from processors.detection.loader import VIGIE_RULES
from producers.simulator import events as ev
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from runtime.topics import end_offsets, ensure_topics
from schemas.detection import Detection
from schemas.event import SecurityEvent
from schemas.identity import event_id
from schemas.organization import Organization
from schemas.topics import CORRELATION_INPUTS, DETECTIONS

pytestmark = pytest.mark.integration

BRUTE_FORCE = "ab18263f-b4e0-4faa-ba6e-156338b65682"
SPRAY = "bc4c8f7c-b65e-4275-991f-d3593dfcbde6"
BRUTE_THEN_LOGON = "306c50a2-8cf9-4a62-a645-77bff1083a43"
RANSOMWARE_PRELUDE = "8f5ae3af-acbc-461c-bc91-b2c03481a639"
ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, app_id: str, log: Path) -> None:
        self.app_id, self.log = app_id, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 120) -> Worker:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.correlation_worker", self.app_id],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            with self.log.open("rb") as f:
                f.seek(offset)
                if b"Ready" in f.read():
                    time.sleep(3)  # partitions assigned and positioned
                    return self
            time.sleep(0.5)
        raise AssertionError("worker not ready:\n" + self.log.read_text(errors="replace")[-3000:])

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)


def signals_of(classifier: SigmaClassifier, docs: list[dict[str, Any]]) -> list[Detection]:
    out: list[Detection] = []
    for doc in docs:
        raw = json.dumps(doc).encode()
        out.extend(classifier.classify(Document(SecurityEvent.model_validate_json(raw),
                                                json.loads(raw))).signals)
    return out


def send(kafka: KafkaConnection, org: Organization, signals: list[Detection]) -> None:
    producer = kafka.producer()
    for item in signals:
        producer.produce(CORRELATION_INPUTS.name, key=org.id.encode(), value=item.to_json_bytes())
    assert producer.flush(30) == 0


def read_detections(kafka: KafkaConnection, start: dict[int, int], org: Organization,
                    until: set[str], timeout: float = 90) -> dict[str, list[str]]:
    """Correlation detection ids per rule id, for ``org``, once ``until`` rules showed up
    (and a few seconds more, for any late duplicate)."""
    consumer = kafka.consumer(f"test-{uuid.uuid4()}")
    consumer.assign([TopicPartition(DETECTIONS.name, p, o) for p, o in start.items()])
    found: dict[str, list[str]] = defaultdict(list)
    deadline = time.monotonic() + timeout
    settle: float | None = None
    try:
        while time.monotonic() < (settle or deadline):
            message = consumer.poll(0.5)
            if message is None or message.error():
                if settle is None and until <= set(found):
                    settle = time.monotonic() + 8
                continue
            record = json.loads(message.value())
            if record["organization"]["id"] == org.id and "correlation.type" in record["matched"]:
                found[record["rule"]["id"]].append(record["id"])
    finally:
        consumer.close()
    return dict(found)


def test_each_correlation_type_fires_once_across_a_sigkill(
        stack: Settings, national_registry: list[Organization], tmp_path: Path) -> None:
    kafka = stack.kafka
    ensure_topics(kafka)
    classifier = SigmaClassifier(Engine.from_paths([VIGIE_RULES]))
    org = national_registry[0]
    run = uuid.uuid4().hex[:8]
    attacker = f"198.51.100.{int(run[:2], 16) % 250 + 2}"
    sprayer = f"203.0.113.{int(run[2:4], 16) % 250 + 2}"
    host = f"PC-URG-{run}"
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    n = 0

    def eid() -> str:
        nonlocal n
        n += 1
        return event_id(org.id, f"correlation-test-{run}", n)

    def failures(count: int, *, ip: str, users: list[str], offset: float) -> list[dict[str, Any]]:
        return [ev.windows_logon(org, t0 + timedelta(seconds=offset + i), eid(), success=False,
                                 host="SRV-AD-01", user=users[i % len(users)], source_ip=ip,
                                 logon_type=3, record=n) for i in range(count)]

    before_kill = signals_of(classifier, [
        *failures(12, ip=attacker, users=["admin.dpi"], offset=0),
        *failures(6, ip=sprayer, users=[f"user.{i}" for i in range(6)], offset=20),
        ev.sysmon_process(org, t0 + timedelta(seconds=30), eid(), host=host, user="dupont.a",
                          image=r"C:\Windows\System32\vssadmin.exe",
                          command_line="vssadmin.exe delete shadows /all /quiet",
                          parent_image=r"C:\Windows\explorer.exe", record=n),
    ])
    after_kill = signals_of(classifier, [
        *failures(10, ip=attacker, users=["admin.dpi"], offset=40),
        ev.windows_logon(org, t0 + timedelta(seconds=55), eid(), success=True, host="SRV-AD-01",
                         user="admin.dpi", source_ip=attacker, logon_type=3, record=n),
        *failures(6, ip=sprayer, users=[f"user.{i}" for i in range(6, 12)], offset=60),
        ev.sysmon_process(org, t0 + timedelta(seconds=70), eid(), host=host, user="dupont.a",
                          image=r"C:\Users\Public\svch0st.exe",
                          command_line=r"C:\Users\Public\svch0st.exe -q",
                          parent_image=r"C:\Windows\explorer.exe", record=n),
    ])
    assert len(before_kill) == 19 and len(after_kill) == 18

    start = end_offsets(kafka, DETECTIONS.name)
    worker = Worker(f"vigie-correlation-test-{run}", tmp_path / "worker.log").start()
    try:
        send(kafka, org, before_kill)
        time.sleep(8)  # processed, state changelogged, offsets committed
        worker.signal(signal.SIGKILL)  # inside every window
        worker.start()
        send(kafka, org, after_kill)
        wanted = {BRUTE_FORCE, SPRAY, BRUTE_THEN_LOGON, RANSOMWARE_PRELUDE}
        found = read_detections(kafka, start, org, wanted)
    finally:
        worker.signal(signal.SIGTERM)
    assert set(found) == wanted, found
    for rule_id, ids in found.items():
        assert len(set(ids)) == 1, f"{rule_id} fired {len(set(ids))} times: {ids}"
