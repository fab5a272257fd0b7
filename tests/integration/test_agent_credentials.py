"""Enrolment issues the agent's Kafka credential, revocation takes it away, and the ACLs on the
broker are those of deploy/security/kafka-acls.yaml: on the real, secured local stack.

``vigie agents add`` runs in-process (``vigie.cli.main``) against the live registry for a fresh
agent id (the stack is shared), with the admin settings of this home; the test then connects
with nothing but the credential file it wrote.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deploy.local.credentials import LOCAL_AGENT
from deploy.security import kafka_acls
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from schemas.topics import EVENTS_RAW
from tests.integration.support import run_vigie as _vigie

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.fixture()
def enrolled(stack: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
             ) -> Iterator[tuple[str, Path, str]]:
    """A fresh agent enrolled with ``vigie agents add``: (id, credential file, stdout);
    revoked at the end whatever the test did."""
    agent_id = f"it-credential-{uuid.uuid4().hex[:10]}"
    out = tmp_path / "agent.kafka.yaml"
    code, stdout, err = _vigie(capsys, "agents", "add", "--agent-id", agent_id,
                               "--establishment", "750712184", "--public-key", _public_key(),
                               "--credential-out", str(out), "--by", "integration-test")
    assert code == 0, err
    yield agent_id, out, stdout
    _vigie(capsys, "agents", "revoke", agent_id, "--reason", "end of test")


def _agent_connection(credential: Path) -> KafkaConnection:
    return KafkaConnection.model_validate(yaml.safe_load(credential.read_text())["kafka"])


def _deliver(kafka: KafkaConnection) -> KafkaError | None:
    producer = kafka.producer(**{"message.timeout.ms": 15000})  # idempotent: the defaults
    outcome: list[KafkaError | None] = []
    producer.produce(EVENTS_RAW.name, key=b"credential-test", value=b"{}",
                     on_delivery=lambda e, _m: outcome.append(e))
    producer.flush(30)
    assert outcome, "no delivery report within 30 s"
    return outcome[0]


def _read_error(kafka: KafkaConnection, seconds: int = 20) -> list[int]:
    """Error codes of fetching events.raw by partition; fails if a record is read."""
    consumer = kafka.consumer("unused", **{"auto.offset.reset": "earliest"})
    codes: list[int] = []
    try:
        consumer.assign([TopicPartition(EVENTS_RAW.name, p, OFFSET_BEGINNING)
                         for p in range(EVENTS_RAW.partitions)])
        for _ in range(seconds):
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            assert error is not None, "the agent read a record of events.raw"
            codes.append(int(error.code()))
            if codes[-1] == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                break
    finally:
        consumer.close()
    return codes


def test_an_enrolled_agent_writes_events_raw_reads_nothing_and_is_shut_out_once_revoked(
        enrolled: tuple[str, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    agent_id, credential, stdout = enrolled
    kafka = _agent_connection(credential)
    assert kafka.sasl_username == f"agent-{agent_id}"
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() not in stdout
    assert str(credential) in stdout
    assert credential.stat().st_mode & 0o777 == 0o600

    assert _deliver(kafka) is None
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED in _read_error(kafka)

    code, out, err = _vigie(capsys, "agents", "revoke", agent_id, "--reason", "stolen server")
    assert code == 0, err
    assert "credential deleted" in out
    deadline = time.monotonic() + 15
    while True:  # a deletion reaches the broker through the metadata log: give it a moment
        try:
            kafka.admin(**{"log_level": 0}).list_topics(timeout=5)
        except KafkaException as refused:
            assert refused.args[0].code() in (KafkaError._AUTHENTICATION,
                                              KafkaError._TRANSPORT,
                                              KafkaError.SASL_AUTHENTICATION_FAILED), refused
            break
        assert time.monotonic() < deadline, "the revoked agent still authenticates"
        time.sleep(1)
    admin = kafka_acls.present_acls(Settings().kafka.admin())
    assert not [b for b in admin if b.principal == f"User:agent-{agent_id}"]


def test_a_refused_enrolment_creates_no_credential(enrolled: tuple[str, Path, str],
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    agent_id, _, _ = enrolled
    again = tmp_path / "again.yaml"
    code, _, err = _vigie(capsys, "agents", "add", "--agent-id", agent_id, "--establishment",
                          "750712184", "--public-key", _public_key(), "--credential-out",
                          str(again))
    assert code == 65, err
    assert "already enrolled" in err and not again.exists()


def test_a_right_granted_by_hand_to_a_fixed_principal_is_removed_by_the_reconcile(
        stack: Settings) -> None:
    admin = stack.kafka.admin()
    undeclared = AclBinding(ResourceType.TOPIC, f"vigie-undeclared-{uuid.uuid4().hex[:8]}",
                            ResourcePatternType.LITERAL, "User:vigie-notifier", "*",
                            AclOperation.READ, AclPermissionType.ALLOW)
    kafka_acls.create_bindings(admin, [undeclared])
    try:
        assert undeclared in kafka_acls.check_acls(admin, agent_ids=[LOCAL_AGENT]).remove
        kafka_acls.apply_acls(admin, agent_ids=[LOCAL_AGENT])  # what `vigie stack up` runs
        assert undeclared not in kafka_acls.present_acls(admin)
    finally:
        kafka_acls.delete_bindings(admin, [undeclared])
