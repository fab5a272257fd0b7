"""The agent's transactional shipping on the real broker: a restart resumes from the position
Kafka committed with the records, and the agent reads nothing of ``events.raw``.

Two crashes, in-process: one right after a transaction committed (the spool never learnt it),
one with a transaction open whose envelopes already sit, uncommitted, in ``events.raw``.
After the restart every event is visible exactly once to a read_committed consumer, in
envelopes that verify and whose sequences rise, while the log itself (read uncommitted)
holds the aborted copies: that is what the isolation level hides.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import Consumer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import producers.agent.ship as ship
import runtime.kafka
from producers.agent.ship import Shipper
from producers.agent.spool import Spool
from producers.signing import Signer, public_key_b64
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas.enrolment import AgentEntry
from schemas.topics import AGENT_PROGRESS, EVENTS_RAW

from .support import check_envelopes, event_ids, read_records

pytestmark = [pytest.mark.integration]


class SpyConsumer:
    """A real consumer whose every method call is noted."""

    calls: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self._group = str(config["group.id"])
        self._real = Consumer(config)

    def __getattr__(self, name: str) -> Any:
        self.calls.append((self._group, name))
        return getattr(self._real, name)


def _records(tag: str, start: int, count: int) -> list[tuple[bytes, str, bytes, bytes]]:
    out = []
    for i in range(start, start + count):
        eid = f"{tag}{i:08d}".ljust(32, "0")
        out.append((b"750712184", eid, b"c2ln", json.dumps({"event": {"id": eid}}).encode()))
    return out


def _ship_until(shipper: Shipper, done: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, shipper.last_error
        if shipper.pump() == 0:
            shipper.flush(0.2)


def test_restart_resumes_from_the_committed_position_and_reads_nothing_of_events_raw(
        stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent_id = f"it-txn-{int(time.time())}"
    start = end_offsets(stack.kafka, EVENTS_RAW.name)
    monkeypatch.setattr(runtime.kafka, "Consumer", SpyConsumer)  # from here: the agent's
    monkeypatch.setattr(SpyConsumer, "calls", [])
    # Envelopes of about 20 events: several are produced, inside the open transaction,
    # before the crash of step 2.
    monkeypatch.setattr(ship, "TARGET_BYTES", 20 * 70)
    spool = Spool(tmp_path / "spool", fsync=False)
    key = Ed25519PrivateKey.generate()
    signer = Signer(agent_id, key)

    # 1. 300 records committed in Kafka; the spool's acknowledgement never reaches the disk.
    spool.append(_records("a", 0, 300))
    first = Shipper(spool, kafka=stack.kafka, topic=EVENTS_RAW.name, signer=signer,
                    commit_interval=0.2)
    spool.ack = lambda *_: None  # type: ignore[method-assign]  # the SIGKILL comes first
    _ship_until(first, lambda: first.delivered == 300 and not first.in_flight)
    # 2. 200 more handed in a transaction that stays open: the full envelopes are in the
    # log, never committed; the last, partial one never left the agent.
    spool.append(_records("b", 0, 200))
    first.commit_interval = 3600.0
    assert first.pump() == 200 and first.in_flight
    first.producer.flush(30)  # they reach the broker, inside the open transaction
    never_left = {r.event_id for r in first._envelope}
    assert 0 < len(never_left) < 200

    restarted = Spool(tmp_path / "spool", fsync=False)
    assert restarted.acked == 0 and restarted.depth == 500
    second = Shipper(restarted, kafka=stack.kafka, topic=EVENTS_RAW.name, signer=signer,
                     commit_interval=0.2)
    _ship_until(second, lambda: restarted.depth == 0)
    second.close()
    agent_calls = list(SpyConsumer.calls)  # before the test's own read-back consumers
    assert second.sent == 200  # the 300 committed records were not sent again

    wanted = {r[1] for r in _records("a", 0, 300) + _records("b", 0, 200)}
    committed = read_records(stack.kafka, start, agent_id)  # read_committed
    counts = event_ids(committed)
    assert set(counts) == wanted and max(counts.values()) == 1
    sequences = check_envelopes(committed, AgentEntry(
        agent_id=agent_id, establishment_id="750712184", public_key=public_key_b64(key)))
    assert len(committed) < 500 // 10  # a few envelopes, not a record per event
    assert sequences == sorted(set(sequences))  # what the processor's replay check needs
    in_log = event_ids(read_records(stack.kafka, start, agent_id,
                                    isolation="read_uncommitted"))
    assert all(in_log[eid] == (1 if eid in never_left else 2)  # aborted + resent
               for eid in wanted if eid.startswith("b"))

    group = f"vigie-agent-{agent_id}"
    assert {g for g, _ in agent_calls} == {group}
    assert {name for _, name in agent_calls} <= {
        "committed", "consumer_group_metadata", "close"}, agent_calls
    assert second._progress_consumer().committed(
        [TopicPartition(AGENT_PROGRESS.name, 0)], 10)[0].offset == 500
