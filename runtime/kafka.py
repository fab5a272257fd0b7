"""How every Vigie process reaches Kafka: one connection object, every client built from it.

A deployment that turns on TLS or SASL must not find a client somewhere that still connects
in clear text (an agent's restart check did: with TLS configured, an agent restarting with a
non-empty spool never shipped again). So the broker address, the security protocol, the
certificates and the credentials live in :class:`KafkaConnection` only, and the librdkafka
producers, consumers and admin clients are built by its methods; the aiokafka side (Faust)
gets the same settings from :meth:`KafkaConnection.aiokafka_kwargs`.

The producer defaults are the project's: idempotence makes broker-side retries safe (no
duplicate on a lost ack); acks=all waits for the in-sync replicas so an acknowledged event
survives a broker loss. Delivery results are counted, never ignored: a producer that cannot
deliver says how many records failed.

No faust or aiokafka import here: the hospital agent uses this module.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

log = logging.getLogger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

#: The project's producer: idempotent, acknowledged by every in-sync replica, lz4, batched.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 512 * 1024,
    "queue.buffering.max.messages": 200_000,
    "message.timeout.ms": 300_000,
}

#: librdkafka keys that only the connection may set: an override cannot bypass it.
CONNECTION_KEYS = frozenset({
    "bootstrap.servers", "metadata.broker.list", "security.protocol",
    "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm", "sasl.mechanism", "sasl.mechanisms",
    "sasl.username", "sasl.password",
})


class KafkaConnection(BaseModel):
    """Where the brokers are and how to authenticate to them (TLS, SASL).

    YAML: ``kafka: {bootstrap: broker:9093, security_protocol: SSL, ssl_cafile: ca.pem}``;
    national processes also read ``VIGIE_KAFKA__<FIELD>`` environment variables.
    """

    # Errors must not echo what was given: it may hold a password.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    bootstrap: str = Field("localhost:9092", min_length=1,
                           description="Kafka bootstrap servers, host:port[,host:port...]")
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' "
                                    "certificates (default: the system's)")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(None, description="Private key of the client certificate")
    ssl_key_password: SecretStr | None = Field(None, description="Password of ssl_keyfile")
    ssl_check_hostname: bool = Field(True, description="Check the broker's name against its "
                                     "certificate")
    sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)")
    sasl_username: str | None = Field(None, description="SASL user")
    sasl_password: SecretStr | None = Field(None, description="SASL password")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConnection:
        """Refuse settings that would be silently ignored or fail only at the first connect."""
        problems: list[str] = []
        ssl_set = [name for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile",
                                     "ssl_key_password") if getattr(self, name) is not None]
        if ssl_set and not self.uses_tls:
            problems.append(f"{', '.join(ssl_set)} set but security_protocol is "
                            f"{self.security_protocol}: use SSL or SASL_SSL")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            problems.append("a client certificate needs both ssl_certfile and ssl_keyfile")
        if self.ssl_key_password is not None and self.ssl_keyfile is None:
            problems.append("ssl_key_password set without ssl_keyfile")
        sasl_set = [name for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                    if getattr(self, name) is not None]
        if self.uses_sasl:
            missing = [name for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                       if name not in sasl_set]
            if missing:
                problems.append(f"security_protocol {self.security_protocol} needs "
                                f"{', '.join(missing)}")
        elif sasl_set:
            problems.append(f"{', '.join(sasl_set)} set but security_protocol is "
                            f"{self.security_protocol}: use SASL_PLAINTEXT or SASL_SSL")
        if problems:
            raise ValueError("inconsistent Kafka connection: " + "; ".join(problems))
        return self

    def rebased(self, base: Path) -> KafkaConnection:
        """The same connection with relative certificate paths taken under ``base`` (the folder
        of the configuration file that named them)."""
        updates = {name: base / path for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
                   if (path := getattr(self, name)) is not None and not path.is_absolute()}
        return self.model_copy(update=updates) if updates else self

    # --- librdkafka (confluent-kafka) --------------------------------------------------------
    def librdkafka(self, **overrides: Any) -> dict[str, Any]:
        """The librdkafka configuration of a client of this connection, plus ``overrides``
        (client tuning: group id, batching...). Overrides may not touch the connection."""
        clash = sorted(CONNECTION_KEYS & overrides.keys())
        if clash:
            raise ValueError(f"{', '.join(clash)}: set on the Kafka connection, not per client")
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap,
                                  "security.protocol": self.security_protocol}
        if self.uses_tls:
            if self.ssl_cafile is not None:
                config["ssl.ca.location"] = str(self.ssl_cafile)
            if self.ssl_certfile is not None and self.ssl_keyfile is not None:
                config["ssl.certificate.location"] = str(self.ssl_certfile)
                config["ssl.key.location"] = str(self.ssl_keyfile)
            if self.ssl_key_password is not None:
                config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none")
        if self.uses_sasl and self.sasl_password is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password.get_secret_value()
        config.update(overrides)
        return config

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """:meth:`librdkafka` with the project's producer defaults, then ``overrides``."""
        return self.librdkafka(**{**PRODUCER_DEFAULTS, **overrides})

    def producer(self, **overrides: Any) -> Producer:
        """An idempotent, acks=all, lz4 producer (see :data:`PRODUCER_DEFAULTS`)."""
        return Producer(self.producer_config(**overrides))

    def consumer(self, group_id: str, **overrides: Any) -> Consumer:
        """A consumer in ``group_id``; offsets are committed by the caller, never auto."""
        return Consumer(self.librdkafka(**{"group.id": group_id, "enable.auto.commit": False,
                                           **overrides}))

    def admin(self, **overrides: Any) -> AdminClient:
        """An admin client (topics, groups)."""
        return AdminClient(self.librdkafka(**overrides))

    # --- aiokafka (Faust) ----------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context aiokafka needs (it takes no file names), or None without TLS."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(self.ssl_cafile) if self.ssl_cafile is not None else None)
        if self.ssl_certfile is not None and self.ssl_keyfile is not None:
            password = (self.ssl_key_password.get_secret_value()
                        if self.ssl_key_password is not None else None)
            context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile), password)
        context.check_hostname = self.ssl_check_hostname
        return context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's clients (``AIOKafkaProducer(**kwargs)``...)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers(),
            "security_protocol": self.security_protocol,
            "ssl_context": self.ssl_context(),
        }
        if self.uses_sasl and self.sasl_password is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return kwargs

    def bootstrap_servers(self) -> list[str]:
        """``bootstrap`` as a list of ``host:port``."""
        return [server.strip() for server in self.bootstrap.split(",") if server.strip()]


@dataclass
class DeliveryReport:
    """What the broker acknowledged; ``on_delivery`` is the producer callback."""

    delivered: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    positions: list[tuple[int, int]] = field(default_factory=list)
    keep_positions: bool = False

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.errors[err.str()] = self.errors.get(err.str(), 0) + 1
            return
        self.delivered += 1
        partition, offset = msg.partition(), msg.offset()
        if self.keep_positions and partition is not None and offset is not None:
            self.positions.append((partition, offset))


def produce_blocking(producer: Producer, topic: str, key: bytes, value: bytes,
                     on_delivery: Any = None, headers: Any = None) -> None:
    """Produce, waiting for room when the local queue is full instead of dropping."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery,
                             headers=headers)
            return
        except BufferError:
            producer.poll(0.1)
