"""The Kafka connection: what every client (librdkafka, aiokafka/Faust) is given, what is
refused, and that passwords stay out of reprs, logs and error messages."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from processors.brokers import broker_credentials, broker_urls
from runtime.kafka import PRODUCER_DEFAULTS, KafkaConnection
from tests.unit.tls_files import TlsFiles, write_tls_files

PASSWORD = "s3cret-never-printed"


@pytest.fixture()
def tls(tmp_path: Path) -> TlsFiles:
    return write_tls_files(tmp_path, key_password=PASSWORD.encode())


def _ssl(tls: TlsFiles, **extra: object) -> KafkaConnection:
    return KafkaConnection.model_validate({
        "bootstrap": "kafka-1:9093,kafka-2:9093", "security_protocol": "SSL",
        "ssl_cafile": tls.ca, "ssl_certfile": tls.cert, "ssl_keyfile": tls.key,
        "ssl_key_password": PASSWORD, **extra})


def _sasl_ssl(tls: TlsFiles) -> KafkaConnection:
    return KafkaConnection.model_validate({
        "bootstrap": "kafka-1:9094", "security_protocol": "SASL_SSL", "ssl_cafile": tls.ca,
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "vigie-processor",
        "sasl_password": PASSWORD})


# --- librdkafka ---------------------------------------------------------------------------
def test_plaintext_is_the_default_and_adds_nothing_else() -> None:
    assert KafkaConnection().librdkafka() == {"bootstrap.servers": "localhost:9092",
                                              "security.protocol": "PLAINTEXT"}


def test_ssl_gives_librdkafka_the_ca_the_client_certificate_and_its_key(tls: TlsFiles) -> None:
    config = _ssl(tls).librdkafka()
    assert config == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093", "security.protocol": "SSL",
        "ssl.ca.location": str(tls.ca), "ssl.certificate.location": str(tls.cert),
        "ssl.key.location": str(tls.key), "ssl.key.password": PASSWORD,
        "ssl.endpoint.identification.algorithm": "https",
    }
    unchecked = _ssl(tls, ssl_check_hostname=False).librdkafka()
    assert unchecked["ssl.endpoint.identification.algorithm"] == "none"


def test_sasl_ssl_gives_librdkafka_the_mechanism_and_credentials(tls: TlsFiles) -> None:
    config = _sasl_ssl(tls).librdkafka()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["ssl.ca.location"] == str(tls.ca)
    assert (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"]) == (
        "SCRAM-SHA-512", "vigie-processor", PASSWORD)


def test_every_client_kind_carries_the_connection(tls: TlsFiles) -> None:
    kafka = _ssl(tls)
    producer = kafka.producer_config(**{"linger.ms": 5})
    assert producer["security.protocol"] == "SSL" and producer["ssl.ca.location"] == str(tls.ca)
    assert producer["enable.idempotence"] is True and producer["acks"] == "all"
    assert producer["linger.ms"] == 5  # an override wins over the project's default (20)
    assert {k: v for k, v in producer.items() if k in PRODUCER_DEFAULTS and k != "linger.ms"} \
        == {k: v for k, v in PRODUCER_DEFAULTS.items() if k != "linger.ms"}


def test_a_client_override_cannot_replace_the_connection() -> None:
    kafka = KafkaConnection()
    for key in ("bootstrap.servers", "security.protocol", "sasl.password"):
        with pytest.raises(ValueError, match=re.escape(key)):
            kafka.librdkafka(**{key: "x"})
    with pytest.raises(ValueError, match=r"bootstrap\.servers"):
        kafka.consumer("g", **{"bootstrap.servers": "elsewhere:9092"})


def test_real_librdkafka_clients_accept_the_configuration(tls: TlsFiles) -> None:
    """librdkafka checks names and files when a client is created (nothing listens)."""
    for kafka in (KafkaConnection(bootstrap="127.0.0.1:1"), _ssl(tls, bootstrap="127.0.0.1:1")):
        kafka.producer(log_level=0).purge()
        kafka.consumer("vigie-test", log_level=0).close()
        kafka.admin(log_level=0)


# --- aiokafka / Faust ---------------------------------------------------------------------
def test_plaintext_for_aiokafka_and_faust() -> None:
    kafka = KafkaConnection(bootstrap="a:9092, b:9092")
    assert kafka.aiokafka_kwargs() == {"bootstrap_servers": ["a:9092", "b:9092"],
                                       "security_protocol": "PLAINTEXT", "ssl_context": None}
    assert broker_urls(kafka) == ["kafka://a:9092", "kafka://b:9092"]
    assert broker_credentials(kafka) is None


def test_ssl_for_aiokafka_is_a_context_built_from_the_same_files(tls: TlsFiles) -> None:
    kwargs = _ssl(tls).aiokafka_kwargs()
    context = kwargs["ssl_context"]
    assert kwargs["security_protocol"] == "SSL" and isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "Vigie test CA"),),)]
    assert not _ssl(tls, ssl_check_hostname=False).aiokafka_kwargs()["ssl_context"].check_hostname
    with pytest.raises(ssl.SSLError):  # the key password is really used
        _ssl(tls, ssl_key_password="wrong").ssl_context()


def test_faust_gets_the_same_tls_and_sasl_as_aiokafka(tls: TlsFiles) -> None:
    credentials = broker_credentials(_ssl(tls))
    assert isinstance(credentials, SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"

    kafka = _sasl_ssl(tls)
    credentials = broker_credentials(kafka)
    assert isinstance(credentials, SASLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    expected = kafka.aiokafka_kwargs()
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                "sasl_plain_password"):
        assert auth[key] == expected[key], key
    assert auth["security_protocol"] == "SASL_SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


# --- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "message"), [
    ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism, sasl_username, sasl_password"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
      "sasl_username": "u"}, "needs sasl_password"),
    ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "needs both ssl_certfile and "
     "ssl_keyfile"),
    ({"security_protocol": "SSL", "ssl_keyfile": "k.pem", "ssl_key_password": "p"},
     "needs both ssl_certfile and ssl_keyfile"),
    ({"ssl_cafile": "ca.pem"}, "ssl_cafile set but security_protocol is PLAINTEXT"),
    ({"security_protocol": "SSL", "sasl_username": "u"}, "sasl_username set but "
     "security_protocol is SSL"),
    ({"security_protocol": "TLS"}, "PLAINTEXT"),
    ({"bootstrap_servers": "x:9092"}, "bootstrap_servers"),
    ({"bootstrap": ""}, "bootstrap"),
])
def test_inconsistent_settings_are_refused_with_a_clear_message(
        fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaConnection.model_validate(fields)


def test_relative_certificate_paths_are_taken_under_the_configuration_folder() -> None:
    kafka = KafkaConnection(security_protocol="SSL", ssl_cafile=Path("ca.pem"),
                            ssl_certfile=Path("/etc/vigie/agent.pem"),
                            ssl_keyfile=Path("keys/agent.key"))
    rebased = kafka.rebased(Path("/srv/agent"))
    assert (rebased.ssl_cafile, rebased.ssl_certfile, rebased.ssl_keyfile) == (
        Path("/srv/agent/ca.pem"), Path("/etc/vigie/agent.pem"), Path("/srv/agent/keys/agent.key"))


# --- secrets --------------------------------------------------------------------------------
def test_passwords_never_appear_in_repr_str_dumps_logs_or_errors(
        tls: TlsFiles, caplog: pytest.LogCaptureFixture) -> None:
    for kafka in (_ssl(tls), _sasl_ssl(tls)):
        assert PASSWORD not in repr(kafka) and PASSWORD not in str(kafka)
        assert PASSWORD not in kafka.model_dump_json()
        assert PASSWORD not in str(kafka.model_dump())
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("vigie.test").info("connecting with %s / %r", kafka, kafka)
        assert "connecting with" in caplog.text and PASSWORD not in caplog.text
        assert PASSWORD not in repr(broker_credentials(kafka))
    with pytest.raises(ValidationError) as refused:
        KafkaConnection.model_validate({"security_protocol": "SASL_SSL",
                                        "sasl_password": PASSWORD})
    assert PASSWORD not in str(refused.value)
