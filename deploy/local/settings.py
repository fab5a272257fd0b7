"""The local stack's own ``VIGIE_*`` variables: where downloads go, the servers' heaps and
the ports they listen on.

They are not settings of Vigie's processes (``runtime.settings.Settings``), which refuse
unknown ``VIGIE_*`` variables except those it lists as owned elsewhere
(``runtime.settings.OWNED_ELSEWHERE``): these, declared here. ``VIGIE_HOME`` is a setting
(``Settings.home``), read there and nowhere else.

The ports exist so that a second, private stack can run beside a shared one (another
``VIGIE_HOME``, other ports). Clients need not be told: ``vigie stack up`` writes the address
it chose into ``<home>/vigie.yaml``, which every Vigie process of that home reads.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StackSettings(BaseSettings):
    """``VIGIE_CACHE``, ``VIGIE_KAFKA_HEAP``, ``VIGIE_ES_HEAP`` and ``VIGIE_STACK_*_PORT``."""

    # Other VIGIE_* variables belong to Settings: not this class's business.
    model_config = SettingsConfigDict(env_prefix="VIGIE_", extra="ignore")

    cache: Path = Field(default_factory=lambda: Path.home() / ".cache" / "vigie",
                        description="Downloaded Kafka/Elasticsearch artifacts, shared by "
                        "every checkout")
    kafka_heap: str = Field("1g", description="JVM heap of the local Kafka (one dev broker)")
    es_heap: str = Field("2g", description="JVM heap of the local Elasticsearch (e.g. 4g "
                         "for benchmarks)")
    stack_kafka_port: int = Field(9092, description="Local Kafka's client listener "
                                  "(SASL_SSL)")
    stack_controller_port: int = Field(9093, description="Local Kafka's KRaft controller "
                                       "listener (mutual TLS, loopback)")
    stack_es_port: int = Field(9200, description="Local Elasticsearch's HTTPS port")
    stack_es_transport_port: int = Field(9300, description="Local Elasticsearch's transport "
                                         "port (TLS, loopback)")
