"""Faust's view of the Kafka connection: broker URLs and ``broker_credentials``.

Faust (through aiokafka) takes neither librdkafka's settings nor certificate file names: it
wants ``kafka://host:port`` URLs and a credentials object holding an ``ssl.SSLContext`` and
the SASL user. Both are derived here from the one :class:`runtime.kafka.KafkaConnection`, so
the processor's consumer, its table changelogs and its own producer authenticate exactly like
the librdkafka clients. (``runtime`` cannot import faust: the hospital agent uses it.)
"""

from __future__ import annotations

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer_
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types.auth import CredentialsT

from runtime.kafka import KafkaConnection


def broker_urls(kafka: KafkaConnection) -> list[str]:
    """``faust.App(broker=...)``: one ``kafka://host:port`` per bootstrap server."""
    return [f"kafka://{server}" for server in kafka.bootstrap_servers()]


def broker_credentials(kafka: KafkaConnection) -> CredentialsT | None:
    """``faust.App(broker_credentials=...)``; None for PLAINTEXT.

    Faust turns these into aiokafka's ``security_protocol``, ``ssl_context`` and
    ``sasl_*`` arguments (``faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth``).
    """
    context = kafka.ssl_context()
    if kafka.uses_sasl:
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        return faust.SASLCredentials(username=kafka.sasl_username, password=password,
                                     mechanism=kafka.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class _ReadCommittedConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: AIOKafkaTransport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust picks read_committed only with processing_guarantee=exactly_once, which would
        # also make its own producers transactional. aiokafka reads this attribute when
        # ``start()`` builds its fetcher (checked by tests/unit/test_read_committed.py).
        consumer._isolation_level = "read_committed"
        return consumer


class _ReadCommittedConsumer(AIOKafkaConsumer_):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedTransport(AIOKafkaTransport):
    """Faust's aiokafka transport whose worker consumer reads with
    ``isolation.level=read_committed``: agents write ``events.raw`` in transactions, and the
    records of a transaction aborted by an agent's crash (sent again after its restart) must
    not be processed. Faust's own topics are written without transactions: unaffected."""

    Consumer = _ReadCommittedConsumer


def read_committed_transport(app: faust.App) -> ReadCommittedTransport:
    """``app.transport = read_committed_transport(app)``, before the app starts."""
    return ReadCommittedTransport(app.conf.broker_consumer, app)
