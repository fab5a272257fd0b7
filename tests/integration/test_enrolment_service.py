"""Enrolment by one-time token on the real, secured local stack: `vigie agents issue-token`,
`vigie enrolment serve` (a child process, HTTPS with a certificate of a test CA) and `vigie
agent enroll --token` (a child process, as on a hospital server). The agent lands in the live
registry, its credential writes to events.raw, and a token is good once and only in time.

Agent ids carry a uuid (the stack is shared); every agent enrolled here is revoked at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import KafkaError

from deploy.local.pki import Pki
from producers.agent.enrol_client import EnrolmentRefused, request_enrolment
from runtime.agents_store import TopicStore
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from schemas.enrolment import AgentStatus
from schemas.topics import EVENTS_RAW
from tests.integration.support import run_vigie as _vigie

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ESTABLISHMENT = "750712184"
ROOT = Path(__file__).resolve().parents[2]


def _issue(capsys: pytest.CaptureFixture[str], agent_id: str, ttl: str = "1h") -> str:
    code, out, err = _vigie(capsys, "agents", "issue-token", "--agent-id", agent_id,
                            "--establishment", ESTABLISHMENT, "--ttl", ttl,
                            "--by", "integration-test")
    assert code == 0, err
    return out.strip()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture()
def service(stack: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The enrolment service on a free port: (its URL, the CA that signed its certificate)."""
    pki = Pki(tmp_path / "pki", servers=("enrolment",)).ensure()
    files = pki.server("enrolment")
    log = tmp_path / "enrolment.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "vigie.cli", "enrolment", "serve", "--port", "0",
             "--cert", str(files.cert), "--key", str(files.key), "--rate", "50"],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "enrolment service on https://" in line, log.read_text()
        port = line.split("https://", 1)[1].split()[0].rsplit(":", 1)[1]
        yield f"https://localhost:{port}", pki.ca_cert
    finally:
        process.terminate()
        process.wait(15)
    text = log.read_text()
    assert "sasl_password" not in text and "vgt_" not in text, text


@pytest.fixture()
def agent_ids(capsys: pytest.CaptureFixture[str]) -> Iterator[list[str]]:
    """Ids of agents the test enrols, revoked at the end whatever happened."""
    ids: list[str] = []
    yield ids
    for agent_id in ids:
        _vigie(capsys, "agents", "revoke", agent_id, "--reason", "end of test")


def _deliver(kafka: KafkaConnection) -> KafkaError | None:
    producer = kafka.producer(**{"message.timeout.ms": 15000})
    outcome: list[KafkaError | None] = []
    producer.produce(EVENTS_RAW.name, key=b"enrolment-test", value=b"{}",
                     on_delivery=lambda e, _m: outcome.append(e))
    producer.flush(30)
    assert outcome, "no delivery report within 30 s"
    return outcome[0]


def _post(url: str, ca: Path, body: bytes) -> int:
    import http.client
    import ssl

    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection(
        "localhost", port, context=ssl.create_default_context(cafile=str(ca)), timeout=15)
    try:
        connection.request("POST", "/api/v1/enrol", body=body,
                           headers={"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_an_agent_enrols_with_a_token_and_ships_with_the_credential_it_received(
        stack: Settings, service: tuple[str, Path], agent_ids: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, ca = service
    agent_id = f"it-token-{uuid.uuid4().hex[:10]}"
    agent_ids.append(agent_id)
    token = _issue(capsys, agent_id)

    site = tmp_path / "hospital"
    site.mkdir()
    enrol = subprocess.run(
        [sys.executable, "-m", "vigie.cli", "agent", "enroll", "--token", token,
         "--server", url, "--ca", str(ca), "--out", str(site / "agent.key"),
         "--kafka-out", str(site / "kafka.yaml")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert enrol.returncode == 0, enrol.stderr
    assert f"enrolled {agent_id}" in enrol.stdout
    written = yaml.safe_load((site / "kafka.yaml").read_text())["kafka"]
    password = written["sasl_password"]
    assert password not in enrol.stdout + enrol.stderr and token not in enrol.stdout
    assert (site / "kafka.yaml").stat().st_mode & 0o777 == 0o600

    entry = TopicStore(stack.kafka).entries()[agent_id]
    assert entry.status is AgentStatus.ACTIVE and entry.establishment_id == ESTABLISHMENT
    kafka = KafkaConnection.model_validate(written).rebased(site)
    assert kafka.sasl_username == f"agent-{agent_id}"
    assert _deliver(kafka) is None

    # Malformed and oversized bodies: refused, and the service keeps serving.
    assert _post(url, ca, b"{not json") == 400
    assert _post(url, ca, json.dumps({"token": "x" * 20, "public_key": 3}).encode()) == 400
    assert _post(url, ca, b"x" * (16 * 1024 + 1)) == 413
    with pytest.raises(EnrolmentRefused, match=r"401.*already used"):
        request_enrolment(url, token, entry.public_key, ca, agent_version="test")


def test_an_expired_token_is_refused(stack: Settings, service: tuple[str, Path],
                                     agent_ids: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    url, ca = service
    agent_id = f"it-token-{uuid.uuid4().hex[:10]}"
    agent_ids.append(agent_id)  # not enrolled: revoking it fails quietly
    token = _issue(capsys, agent_id, ttl="1s")
    time.sleep(1.5)
    import base64

    with pytest.raises(EnrolmentRefused, match=r"401.*expired"):
        request_enrolment(url, token, base64.b64encode(os.urandom(32)).decode(), ca,
                          agent_version="test")
    assert agent_id not in TopicStore(stack.kafka).entries()


def test_a_token_claimed_at_once_by_two_servers_is_claimed_once(stack: Settings) -> None:
    """Four claims of one token in parallel, each through its own connection to the topic
    (as two enrolment servers would): the log decides, exactly one wins."""
    import threading

    from deploy.security import enrolment_tokens as tokens

    token, _ = tokens.issue(tokens.TopicTokenStore(stack.kafka),
                            f"it-token-{uuid.uuid4().hex[:10]}", ESTABLISHMENT,
                            issued_by="integration-test")
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def claim() -> None:
        store = tokens.TopicTokenStore(stack.kafka)
        start.wait()
        try:
            tokens.claim(store, token, client="test")
            outcomes.append("won")
        except tokens.TokenRefused as refused:
            outcomes.append(refused.reason)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(outcomes) == sorted(["won"] + [tokens.USED] * 3)
