"""The local stack for real: Kafka 4.x and Elasticsearch 9.x started by ``deploy.local.stack``.

These tests start the stack if it is not running and leave it running (other integration tests
and developers use it), except for the last one, which checks that ``down()`` leaves no process
behind and then brings the stack back up.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic
from elasticsearch import Elasticsearch

from deploy.local import fetch, stack
from deploy.local.errors import StackError
from deploy.local.java import find_jdk
from deploy.local.kafka import Kafka
from deploy.local.layout import Layout
from deploy.local.service import Service
from deploy.local.settings import StackSettings
from runtime.kafka import KafkaConnection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

@pytest.fixture(scope="module")
def running() -> list[stack.ServiceStatus]:
    """The stack, started if needed (cold start: ~20 s, more on the very first fetch)."""
    return stack.up(timeout=300)


@pytest.fixture(scope="module")
def local(running: list[stack.ServiceStatus]) -> KafkaConnection:
    """The local stack's broker as its admin reaches it (SASL_SSL, the generated CA)."""
    return stack.security().kafka("admin")


@pytest.fixture
def topic(local: KafkaConnection) -> Iterator[str]:
    """A fresh 2-partition topic, deleted afterwards so the broker stays tidy."""
    name = f"test-stack-{uuid.uuid4().hex[:10]}"
    admin = local.admin()
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


def test_up_is_idempotent_and_fast_when_running(running: list[stack.ServiceStatus]) -> None:
    t0 = time.monotonic()
    again = stack.up()
    assert time.monotonic() - t0 < 5
    assert [s.pid for s in again] == [s.pid for s in running]
    assert all(s.detail == "already running" for s in again)


def test_status_reports_both_running(running: list[stack.ServiceStatus]) -> None:
    statuses = {s.name: s for s in stack.status()}
    assert set(statuses) == {"Kafka", "Elasticsearch"}
    for st in statuses.values():
        assert st.running and st.answering, st
        assert st.pid and Path(f"/proc/{st.pid}").exists()
        assert st.log.is_file(), st.log
    assert statuses["Kafka"].version.startswith("4.")
    assert statuses["Elasticsearch"].version.startswith("9.")


def test_confluent_kafka_round_trip(topic: str, local: KafkaConnection) -> None:
    producer = local.producer()  # idempotent, acks=all
    sent = [f"confluent-{i}".encode() for i in range(20)]
    for i, value in enumerate(sent):
        producer.produce(topic, value=value, key=str(i % 4).encode())
    assert producer.flush(30) == 0

    consumer = local.consumer(f"g-{topic}", **{"auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received.append(msg.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert sorted(received) == sorted(sent)


def test_aiokafka_round_trip(topic: str, local: KafkaConnection) -> None:
    """aiokafka is how Faust talks to Kafka: producer, consumer group, commit, transaction."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def scenario() -> tuple[list[bytes], int | None]:
        producer = AIOKafkaProducer(**local.aiokafka_kwargs(), acks="all",
                                    enable_idempotence=True)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, f"aio-{i}".encode(), key=b"k")
        finally:
            await producer.stop()
        # Faust's exactly-once mode uses transactional producers.
        tx = AIOKafkaProducer(**local.aiokafka_kwargs(),
                              transactional_id=f"tx-{topic}")
        await tx.start()
        try:
            async with tx.transaction():
                await tx.send_and_wait(topic, b"aio-tx", key=b"k")
        finally:
            await tx.stop()

        consumer = AIOKafkaConsumer(topic, **local.aiokafka_kwargs(),
                                    group_id=f"g-{topic}", auto_offset_reset="earliest",
                                    enable_auto_commit=False, isolation_level="read_committed")
        await consumer.start()
        got: list[bytes] = []
        try:
            async with asyncio.timeout(60):
                while len(got) < 11:
                    batches = await consumer.getmany(timeout_ms=1000)
                    for messages in batches.values():
                        got.extend(m.value for m in messages if m.value is not None)
            await consumer.commit()
            committed = None
            for tp in consumer.assignment():
                offset = await consumer.committed(tp)
                if offset:
                    committed = offset
        finally:
            await consumer.stop()
        return got, committed

    got, committed = asyncio.run(scenario())
    assert sorted(got) == sorted([f"aio-{i}".encode() for i in range(10)] + [b"aio-tx"])
    assert committed is not None and committed >= 10


def test_elasticsearch_index_and_search(running: list[stack.ServiceStatus]) -> None:
    security = stack.security()
    es = Elasticsearch(security.es_url, basic_auth=security.es_auth(),
                       ca_certs=str(security.pki.ca_cert), request_timeout=30)
    index = f"test-stack-{uuid.uuid4().hex[:10]}"
    try:
        es.indices.create(index=index, settings={"number_of_shards": 1, "number_of_replicas": 0})
        es.index(index=index, id="1", document={"host": "srv-1", "severity": 7}, refresh=True)
        es.index(index=index, id="2", document={"host": "srv-2", "severity": 3}, refresh=True)
        hits = es.search(index=index, query={"range": {"severity": {"gte": 5}}})["hits"]
        assert hits["total"]["value"] == 1
        assert hits["hits"][0]["_source"]["host"] == "srv-1"
        assert es.cluster.health(index=index)["status"] == "green"
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)


def _only(monkeypatch: pytest.MonkeyPatch, service: Service) -> None:
    """Make stack.up() manage just ``service`` (a second checkout in a temporary home)."""
    monkeypatch.setattr(stack, "services", lambda layout=None: [service])


def test_port_taken_by_another_program_is_a_clear_error(
    running: list[stack.ServiceStatus], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another checkout (other VIGIE_HOME) must not adopt or fight the running broker."""
    monkeypatch.setenv("VIGIE_HOME", str(tmp_path))
    _only(monkeypatch, Kafka(Layout.default()))
    port = StackSettings().stack_kafka_port
    with pytest.raises(StackError, match=rf"port {port} is already taken .*pid \d+") as err:
        stack.up(timeout=30)
    assert str(tmp_path / "kafka" / "logs" / "server.log") in str(err.value)
    assert not (tmp_path / "kafka" / "data").exists(), "nothing fetched or formatted"


def test_server_exiting_early_is_reported_with_its_log(
    running: list[stack.ServiceStatus], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that dies at start (here: its ports are busy) fails up() with its log tail."""

    class UncheckedKafka(Kafka):
        def check_ports(self) -> None:  # let it start and hit "Address already in use"
            pass

    monkeypatch.setenv("VIGIE_HOME", str(tmp_path))
    _only(monkeypatch, UncheckedKafka(Layout.default()))
    with pytest.raises(StackError, match="exited during start-up") as err:
        stack.up(timeout=120)
    message = str(err.value)
    assert f"Read {tmp_path / 'kafka' / 'logs' / 'server.log'}" in message
    assert "--- from" in err.value.details  # the log tails, printed under the error line
    assert not (tmp_path / "run" / "kafka.pid").exists()
    assert stack.down() == ["Kafka was not running"]


def test_missing_tools_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StackError, match=r"needs Java 99\+, but no such JDK was found"):
        find_jdk(99, purpose="A future server")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError, match="Maven"):
        fetch._mvn()


def _our_processes() -> list[tuple[int, str]]:
    """Processes of this checkout's stack, found independently of deploy.local.procs:
    Kafka by its server.properties path, Elasticsearch by its ES_PATH_CONF."""
    layout = Layout.default()
    kafka_conf = str(layout.kafka / "config" / "server.properties")
    es_conf = f"ES_PATH_CONF={layout.elasticsearch / 'config'}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if ("kafka.Kafka" in cmd and kafka_conf in cmd) or (
            "org.elasticsearch" in cmd and es_conf in env
        ):
            found.append((int(name), cmd[:120]))
    return found


@pytest.mark.drill
@pytest.mark.skipif(os.environ.get("VIGIE_STACK_DRILL") != "1",
                    reason="stops the shared stack for ~20 s, breaking whoever uses it "
                           "(other test sessions, processors); opt in with VIGIE_STACK_DRILL=1")
@pytest.mark.skipif("PYTEST_XDIST_WORKER" in os.environ,
                    reason="stops the shared stack: would break tests in parallel workers")
def test_zz_down_leaves_nothing_then_up_again(running: list[stack.ServiceStatus]) -> None:
    """Runs last in this file (file order): stops the stack, then restores it for others.

    Opt-in because the stack is shared: on a machine where several sessions run integration
    tests, a down() in the middle of their run makes them fail for no fault of their own.
    """
    assert _our_processes(), "the stack should be running before down()"
    messages = stack.down()
    assert len(messages) == 2 and all("stopped" in m or "killed" in m for m in messages), messages
    assert _our_processes() == []
    assert not any(s.running for s in stack.status())
    assert stack.down() == ["Elasticsearch was not running", "Kafka was not running"]

    restarted = stack.up(timeout=300)
    assert all(s.running and s.answering for s in restarted)
