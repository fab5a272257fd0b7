"""The live agents registry on the real stack: an agent enrolled while the processor runs is
accepted, its revocation takes effect on the running processor within 10 s (no restart), and
a processor that is not in demo mode refuses records signed by simulated agents.

Reads the processor's outputs straight from Kafka (``events.classified``, ``events.dlq``):
what is checked is the processor's decision, not the sink's indexing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from confluent_kafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic_core import from_json

from deploy.local.pipeline import PROCESSOR_READY, Service
from producers.agent.pipeline import Finisher
from producers.signing import Signer, public_key_b64
from producers.simulator.fleet import simulated_agents
from producers.simulator.run import AGENT_SEED
from producers.simulator.simulation import Simulation
from runtime.agents_store import TopicStore, enroll, revoke
from runtime.settings import Settings
from runtime.topics import end_offsets, start_group_at_end
from schemas.organization import Organization
from schemas.topics import EVENTS_CLASSIFIED, EVENTS_DLQ, EVENTS_RAW
from tests.integration.fresh import _free_port, delete_leftovers, processor_group

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: What the issue promises: a revocation applies on every running worker within this.
REVOCATION_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def production_processor(stack: Settings, national_registry: list[Organization],
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A processor of its own (fresh group, starting at the topics' end), NOT in demo mode:
    it trusts the production registry only."""
    work = tmp_path_factory.mktemp("revocation")
    app_id = processor_group(f"it-revocation-{int(time.time() * 1000)}")
    start_group_at_end(stack.kafka, app_id)
    env = {"VIGIE_PROCESSOR_APP_ID": app_id, "VIGIE_METRICS_PORT": str(_free_port()),
           "APP_DATADIR": str(work / "faust-data")}
    processor = Service("processor", ["process"], work, env).start()
    try:
        assert processor.wait_for_log(PROCESSOR_READY), processor.tail(40)
        assert "DEMO MODE" not in processor.log_path.read_text()
        yield processor
    finally:
        processor.stop()
        delete_leftovers(stack.kafka, app_id)


class Outputs:
    """What the processor wrote to events.classified and events.dlq since it was made."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = settings.kafka.consumer(f"it-revocation-reader-{uuid4().hex}")
        self.consumer.assign([
            TopicPartition(topic, partition, offset)
            for topic in (EVENTS_CLASSIFIED.name, EVENTS_DLQ.name)
            for partition, offset in end_offsets(settings.kafka, topic).items()])
        self.accepted_agents: list[str] = []
        #: (raw partition, raw offset) → (reason, detail) of each dead letter. Several: every
        #: processor on the shared stack (other sessions', other groups) reads events.raw and
        #: says what it decided; the reasons and details tell which code decided.
        self.refused: dict[tuple[int, int], list[tuple[str, str]]] = {}

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self.consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            doc = from_json(message.value() or b"{}")
            if message.topic() == EVENTS_CLASSIFIED.name:
                self.accepted_agents.append((doc.get("agent") or {}).get("id", ""))
            elif doc.get("origin", {}).get("topic") == EVENTS_RAW.name:
                self.refused.setdefault((doc["origin"]["partition"], doc["origin"]["offset"]),
                                        []).append((doc["reason"], doc.get("detail", "")))

    def reasons(self, where: tuple[int, int]) -> set[str]:
        return {reason for reason, _ in self.refused.get(where, [])}

    def close(self) -> None:
        self.consumer.close()


def _send(settings: Settings, key: bytes, value: bytes,
          headers: Sequence[tuple[str, bytes]]) -> tuple[int, int]:
    """Produce one record, acknowledged; its (partition, offset) on events.raw."""
    producer = settings.kafka.producer()
    where: list[tuple[int | None, int | None]] = []
    producer.produce(EVENTS_RAW.name, key=key, value=value,
                     headers=[(name, data) for name, data in headers],
                     on_delivery=lambda err, msg: where.append((msg.partition(), msg.offset())))
    assert producer.flush(30) == 0 and where
    partition, offset = where[0]
    assert partition is not None and offset is not None
    return partition, offset


def _event(finisher: Finisher) -> bytes:
    return finisher.value({"@timestamp": datetime.now(UTC).isoformat(),
                           "event": {"id": uuid4().hex, "code": "4625"},
                           "user": {"name": "ps-revocation"}})[1]


def test_a_revocation_reaches_the_running_processor_within_10_s(
        stack: Settings, national_registry: list[Organization],
        production_processor: Service) -> None:
    org = national_registry[0]
    key = Ed25519PrivateKey.generate()
    agent_id = f"it-rev-{uuid4().hex[:12]}"
    store = TopicStore(stack.kafka)
    outputs = Outputs(stack)
    finisher = Finisher(org, Signer(agent_id, key), None)
    try:
        # Enrolled while the processor runs: accepted without a restart.
        enroll(store, agent_id, org.id, public_key_b64(key), actor="integration-test",
               reason="test_revocation")
        deadline = time.monotonic() + 30
        while agent_id not in outputs.accepted_agents:
            assert time.monotonic() < deadline, (
                f"no record of the newly enrolled agent accepted; refused: {outputs.refused}"
                f"\n{production_processor.tail(30)}")
            value = _event(finisher)
            _send(stack, org.id.encode(), value, finisher.signer.headers(value))
            outputs.poll(1.0)

        revoke(store, agent_id, actor="integration-test", reason="key stolen (test)")
        revoked_at = time.monotonic()
        sent: list[tuple[float, tuple[int, int]]] = []
        while time.monotonic() - revoked_at < REVOCATION_WITHIN_S + 3:
            value = _event(finisher)
            sent.append((time.monotonic() - revoked_at,
                         _send(stack, org.id.encode(), value, finisher.signer.headers(value))))
            outputs.poll(0.5)
        outputs.poll(5.0)  # the last records' outcome
        # revoked_agent: only a processor that follows the live registry can say it (others
        # do not know the agent at all: unknown_agent)
        refused = [t for t, pos in sent if "revoked_agent" in outputs.reasons(pos)]
        assert refused, (f"nothing refused as revoked_agent after the revocation: "
                         f"{outputs.refused}\n{production_processor.tail(30)}")
        first = refused[0]
        print(f"first record refused as revoked_agent: sent {first:.1f} s after the revocation")
        assert first <= REVOCATION_WITHIN_S, f"first refusal {first:.1f} s after the revocation"
        # from then on every record of the agent is refused, as revoked_agent, with the reason
        after = [pos for t, pos in sent if t >= first]
        assert all("revoked_agent" in outputs.reasons(pos) for pos in after), outputs.refused
        assert any("key stolen (test)" in detail for pos in after
                   for _, detail in outputs.refused[pos])
        assert production_processor.alive
    finally:
        outputs.close()


def test_a_processor_not_in_demo_mode_refuses_simulated_agents(
        stack: Settings, national_registry: list[Organization],
        production_processor: Service) -> None:
    """The simulated agents are registered (on their own registry), their keys derive from a
    public seed: a production processor must refuse what they sign."""
    sim = Simulation(national_registry, seed=int(time.time()), total=20,
                     start=datetime.now(UTC) - timedelta(minutes=1),
                     span=timedelta(seconds=30), scenarios=[], malformed=0)
    record = next(iter(sim))
    signer = simulated_agents(national_registry, AGENT_SEED)[1][record.key.decode()]
    outputs = Outputs(stack)
    try:
        where = _send(stack, record.key, record.value, signer.headers(record.value))
        deadline = time.monotonic() + 60
        # The production processor's verdict names the one registry it looked in (other
        # sessions' processors on the shared stack decide too, differently worded).
        verdict = ("unknown_agent", f"agent {signer.agent_id!r} is not in the agents "
                   "registry (vigie.agents)")
        while verdict not in outputs.refused.get(where, []):
            assert time.monotonic() < deadline, (outputs.refused.get(where),
                                                 production_processor.tail(30))
            outputs.poll(1.0)
    finally:
        outputs.close()
