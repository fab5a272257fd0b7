"""The enrolment service over real HTTPS, with tokens in memory and a stand-in for the Kafka
side: what an agent and an attacker get back, what the logs hold, and what `vigie agent
enroll --token` leaves on the hospital's server (an agent configuration that loads)."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deploy.local.pki import Pki
from deploy.security import enrolment_tokens as tokens
from deploy.security.enrolment_service import (
    EnrolmentHttpServer,
    EnrolmentService,
    RateLimiter,
    make_server,
)
from producers.agent.config import load_config
from producers.agent.enrol_client import EnrolmentRefused, request_enrolment
from producers.signing import load_key, public_key_b64
from runtime.agents_registry import AgentsRegistryError
from schemas.enrolment_api import ENROL_PATH, EnrolmentToken, KafkaClientBlock
from vigie.cli import main

PASSWORD = "s3cret-password-never-printed"
CA_PEM = "-----BEGIN CERTIFICATE-----\nnot-checked-here\n-----END CERTIFICATE-----\n"


@dataclass
class Running:
    url: str
    ca: Path
    store: tokens.MemoryTokenStore
    enrolled: list[tuple[str, str]]
    fail: list[Exception]
    server: EnrolmentHttpServer


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.fixture()
def running(tmp_path: Path) -> Iterator[Running]:
    pki = Pki(tmp_path / "pki", servers=("enrolment",)).ensure()
    store = tokens.MemoryTokenStore()
    enrolled: list[tuple[str, str]] = []
    fail: list[Exception] = []

    def enroller(claimed: EnrolmentToken, public_key: str) -> KafkaClientBlock:
        if fail:
            raise fail.pop()
        enrolled.append((claimed.agent_id, public_key))
        return KafkaClientBlock(bootstrap="kafka.example.org:9093",
                                sasl_username=f"agent-{claimed.agent_id}",
                                sasl_password=PASSWORD, ca_pem=CA_PEM)

    files = pki.server("enrolment")
    server = make_server(EnrolmentService(store, enroller, RateLimiter(limit=20)),
                         "127.0.0.1", 0, files.cert, files.key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Running(f"https://localhost:{server.server_address[1]}", pki.ca_cert, store,
                      enrolled, fail, server)
    finally:
        server.shutdown()
        server.server_close()


def _token(store: tokens.MemoryTokenStore, agent_id: str = "chu-test-01") -> str:
    return tokens.issue(store, agent_id, "750712184", issued_by="tester")[0]


def _post(running: Running, body: bytes, headers: dict[str, str] | None = None
          ) -> tuple[int, dict[str, str]]:
    context = ssl.create_default_context(cafile=str(running.ca))
    connection = http.client.HTTPSConnection("localhost", running.server.server_address[1],
                                             context=context, timeout=10)
    try:
        connection.request("POST", ENROL_PATH, body=body,
                           headers={"Content-Type": "application/json", **(headers or {})})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_a_token_trades_for_the_kafka_block_once(running: Running) -> None:
    token = _token(running.store)
    key = _public_key()
    response = request_enrolment(running.url, token, key, running.ca, agent_version="0.1.0")
    assert (response.agent_id, response.establishment_id) == ("chu-test-01", "750712184")
    assert response.kafka.sasl_password == PASSWORD
    assert running.enrolled == [("chu-test-01", key)]

    with pytest.raises(EnrolmentRefused, match=r"401.*already used"):
        request_enrolment(running.url, token, _public_key(), running.ca, agent_version="0.1.0")
    assert len(running.enrolled) == 1


def test_unknown_and_expired_tokens_get_401_with_the_reason(running: Running) -> None:
    with pytest.raises(EnrolmentRefused, match=r"401.*unknown token"):
        request_enrolment(running.url, "vgt_" + "A" * 43, _public_key(), running.ca,
                          agent_version="1")
    expired, _ = tokens.issue(running.store, "chu-old-01", "750712184", issued_by="t",
                              ttl=timedelta(seconds=1), now=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(EnrolmentRefused, match=r"401.*expired"):
        request_enrolment(running.url, expired, _public_key(), running.ca, agent_version="1")
    assert running.enrolled == []


def test_malformed_and_oversized_bodies_are_refused_and_the_service_keeps_serving(
        running: Running) -> None:
    assert _post(running, b"{not json")[0] == 400
    status, body = _post(running, json.dumps({"token": _token(running.store),
                                              "public_key": "AAAA"}).encode())
    assert status == 400 and "public_key" in body["reason"]
    assert _post(running, b"x" * (16 * 1024 + 1))[0] == 413
    assert _post(running, b"", {"Content-Length": "abc"})[0] in (400, 411)
    token = _token(running.store)
    assert _post(running, json.dumps({"token": token, "public_key": _public_key(),
                                      "agent_version": "0.1.0"}).encode())[0] == 200


def test_a_failed_enrolment_gives_the_token_back(running: Running) -> None:
    token = _token(running.store)
    running.fail.append(AgentsRegistryError("public key is enrolled already for agent x"))
    with pytest.raises(EnrolmentRefused, match=r"409.*enrolled already"):
        request_enrolment(running.url, token, _public_key(), running.ca, agent_version="1")
    running.fail.append(RuntimeError("Kafka fell over"))
    with pytest.raises(EnrolmentRefused, match=r"503.*still valid"):
        request_enrolment(running.url, token, _public_key(), running.ca, agent_version="1")
    assert request_enrolment(running.url, token, _public_key(), running.ca,
                             agent_version="1").agent_id == "chu-test-01"


def test_an_address_that_keeps_trying_is_slowed_down(running: Running) -> None:
    statuses = [_post(running, b"{}")[0] for _ in range(22)]
    assert statuses[:20] == [400] * 20
    assert statuses[20:] == [429, 429]


def test_the_client_verifies_the_service_certificate(running: Running, tmp_path: Path) -> None:
    other = Pki(tmp_path / "other", servers=()).ensure()
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        request_enrolment(running.url, _token(running.store), _public_key(), other.ca_cert,
                          agent_version="1")
    with pytest.raises(Exception, match="https://"):
        request_enrolment(running.url.replace("https", "http"), _token(running.store),
                          _public_key(), running.ca, agent_version="1")


def test_the_logs_hold_neither_token_nor_password(running: Running,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    token = _token(running.store)
    with caplog.at_level(logging.DEBUG):
        request_enrolment(running.url, token, _public_key(), running.ca, agent_version="1")
        with pytest.raises(EnrolmentRefused):
            request_enrolment(running.url, token, _public_key(), running.ca, agent_version="1")
    text = caplog.text
    assert "enrolled chu-test-01" in text and "already used" in text
    assert token not in text and PASSWORD not in text


AGENT_CONFIG = """\
# the admin's own comment, kept
establishment: {id: "750712184", name: "CHU Test", type: university_hospital,
                region: ile-de-france}
agent_id: chu-test-01
key_path: keys/agent.key
kafka: {bootstrap: "wrong.example.org:9092"}
state_dir: state
"""


def test_vigie_agent_enroll_with_a_token_leaves_a_configuration_that_loads(
        running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "etc"
    (site / "keys").mkdir(parents=True)
    config = site / "agent.yaml"
    config.write_text(AGENT_CONFIG)
    token = _token(running.store)
    with pytest.raises(SystemExit) as exited:
        main(["agent", "enroll", "--token", token, "--server", running.url,
              "--ca", str(running.ca), "--config", str(config)])
    assert exited.value.code in (0, None)
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err and token not in out + err
    assert "enrolled chu-test-01" in out

    key = site / "keys" / "agent.key"
    kafka_file = site / "kafka.yaml"
    for secret in (key, kafka_file):
        assert secret.stat().st_mode & 0o777 == 0o600
    assert config.read_text().startswith(AGENT_CONFIG)  # comments kept, a line appended
    loaded = load_config(config)
    assert loaded.kafka.bootstrap == "kafka.example.org:9093"
    assert loaded.kafka.sasl_username == "agent-chu-test-01"
    assert loaded.kafka.sasl_password is not None
    assert loaded.kafka.sasl_password.get_secret_value() == PASSWORD
    assert loaded.kafka.ssl_cafile == site / "kafka-ca.pem"
    assert (site / "kafka-ca.pem").read_text() == CA_PEM
    [(agent_id, public_key)] = running.enrolled
    assert agent_id == "chu-test-01"
    assert yaml.safe_load(kafka_file.read_text())["kafka"]["sasl_password"] == PASSWORD
    assert public_key_b64(load_key(key)) == public_key  # the key sent is the one on disk


def test_a_refused_enrolment_leaves_no_key_behind(running: Running, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "agent.key"
    with pytest.raises(SystemExit) as exited:
        main(["agent", "enroll", "--token", "vgt_" + "B" * 43, "--server", running.url,
              "--ca", str(running.ca), "--out", str(key), "--kafka-out",
              str(tmp_path / "kafka.yaml")])
    assert exited.value.code == 65
    assert "unknown token" in capsys.readouterr().err
    assert not key.exists() and not (tmp_path / "kafka.yaml").exists()


def test_a_kafka_file_others_may_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kafka.yaml").write_text("kafka: {bootstrap: 'b:1'}\n")
    (tmp_path / "kafka.yaml").chmod(0o644)
    config = tmp_path / "agent.yaml"
    config.write_text(AGENT_CONFIG + "kafka_file: kafka.yaml\n")
    with pytest.raises(Exception, match="chmod 600"):
        load_config(config)
