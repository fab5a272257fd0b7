"""Faust's view of the Kafka connection: broker URLs and ``broker_credentials``.

Faust (through aiokafka) takes neither librdkafka's settings nor certificate file names: it
wants ``kafka://host:port`` URLs and a credentials object holding an ``ssl.SSLContext`` and
the SASL user. Both are derived here from the one :class:`runtime.kafka.KafkaConnection`, so
the processor's consumer, its table changelogs and its own producer authenticate exactly like
the librdkafka clients. (``runtime`` cannot import faust: the hospital agent uses it.)
"""

from __future__ import annotations

import faust
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
