"""An agent configured for TLS speaks TLS with every Kafka client it builds.

The restart check (asking Kafka for the agent's committed position before re-sending what the
spool held at a crash) once built its consumer from the bare bootstrap address: with TLS
configured, an agent restarting with a non-empty spool could never check, so never shipped
again. Both clients are recorded here at the one place they are created (``runtime.kafka``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException

import runtime.kafka
from producers.agent.config import ConfigError, load_config
from producers.agent.run import Agent
from producers.agent.spool import Spool
from producers.signing import generate_key
from tests.unit.agent.conftest import ORG
from tests.unit.tls_files import write_tls_files


class _Recorder:
    """Stands for the confluent-kafka classes: notes each client's configuration. The broker
    is away: the restart check's request for the committed position fails, as on a real
    outage."""

    built: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.built.append((self.kind, dict(config)))

    kind = "?"

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        return 0

    def init_transactions(self, *_: Any) -> None:
        pass

    def committed(self, *_: Any, **__: Any) -> Any:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, retriable=True))

    def close(self) -> None:
        pass


class _Producer(_Recorder):
    kind = "producer"


class _Consumer(_Recorder):
    kind = "consumer"


@pytest.fixture()
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    clients: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(_Recorder, "built", clients)
    monkeypatch.setattr(runtime.kafka, "Producer", _Producer)
    monkeypatch.setattr(runtime.kafka, "Consumer", _Consumer)
    monkeypatch.setattr(runtime.kafka, "AdminClient", _Recorder)
    return clients


def _tls_agent_config(folder: Path) -> Path:
    """A hospital's agent.yaml with TLS to the national brokers; certificate paths relative
    to the file, as an installer would write them."""
    write_tls_files(folder)
    generate_key(folder / "agent.key")
    config = folder / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "establishment": ORG.model_dump(mode="json"), "agent_id": "chu-test-01",
        "key_path": "agent.key", "state_dir": "state",
        "kafka": {"bootstrap": "vigie.example.org:9093", "security_protocol": "SSL",
                  "ssl_cafile": "ca.pem", "ssl_certfile": "client.pem",
                  "ssl_keyfile": "client.key"},
    }))
    return config


def test_every_kafka_client_of_a_restarting_tls_agent_uses_tls(
        tmp_path: Path, built: list[tuple[str, dict[str, Any]]]) -> None:
    config = load_config(_tls_agent_config(tmp_path))
    # The previous run left records in the spool, unacknowledged: the restart check must run.
    spool = Spool(config.spool_dir, fsync=False)
    spool.append([(ORG.id.encode(), "evt-1", b"sig", b'{"event":{"id":"evt-1"}}')])
    spool.close()

    agent = Agent(config)
    assert not agent.shipper.reconciled
    assert agent.shipper.pump() == 0  # the check could not reach Kafka: nothing sent yet
    assert agent.shipper.last_error is not None

    kinds = [kind for kind, _ in built]
    assert kinds == ["producer", "consumer"], kinds
    for kind, client in built:
        assert client["bootstrap.servers"] == "vigie.example.org:9093", kind
        assert client["security.protocol"] == "SSL", kind
        assert client["ssl.ca.location"] == str(tmp_path / "ca.pem"), kind
        assert client["ssl.certificate.location"] == str(tmp_path / "client.pem"), kind
        assert client["ssl.key.location"] == str(tmp_path / "client.key"), kind
        assert client["ssl.endpoint.identification.algorithm"] == "https", kind
    consumer = dict(built)["consumer"]
    assert consumer["group.id"] == "vigie-agent-chu-test-01"  # its own group only
    assert consumer["enable.auto.commit"] is False
    assert dict(built)["producer"]["transactional.id"] == "vigie-agent-chu-test-01"
    agent.spool.close()


def test_the_old_free_form_librdkafka_settings_are_refused(tmp_path: Path) -> None:
    """``kafka_bootstrap`` plus a free librdkafka dict could leave a client out; refused so
    an operator upgrading is told instead of silently connecting in clear."""
    path = _tls_agent_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["kafka_bootstrap"] = data["kafka"].pop("bootstrap")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="kafka_bootstrap"):
        load_config(path)
    data["kafka"] = {"security.protocol": "SSL", "ssl.ca.location": "ca.pem"}
    del data["kafka_bootstrap"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"security\.protocol"):
        load_config(path)


def test_a_refused_kafka_block_does_not_echo_its_password(tmp_path: Path) -> None:
    path = _tls_agent_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["kafka"] = {"bootstrap": "vigie.example.org:9094", "security_protocol": "SASL_SSL",
                     "sasl_password": "agent-s3cret"}  # no mechanism nor user: refused
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="sasl_mechanism") as refused:
        load_config(path)
    assert "agent-s3cret" not in str(refused.value)
