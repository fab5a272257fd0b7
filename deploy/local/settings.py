"""The local stack's own ``VIGIE_*`` variables: where downloads go and the servers' heaps.

They are not settings of Vigie's processes (``runtime.settings.Settings``), which refuse
unknown ``VIGIE_*`` variables except those it lists as owned elsewhere
(``runtime.settings.OWNED_ELSEWHERE``): these, declared here. ``VIGIE_HOME`` is a setting
(``Settings.home``), read there and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StackSettings(BaseSettings):
    """``VIGIE_CACHE``, ``VIGIE_KAFKA_HEAP``, ``VIGIE_ES_HEAP``."""

    # Other VIGIE_* variables belong to Settings: not this class's business.
    model_config = SettingsConfigDict(env_prefix="VIGIE_", extra="ignore")

    cache: Path = Field(default_factory=lambda: Path.home() / ".cache" / "vigie",
                        description="Downloaded Kafka/Elasticsearch artifacts, shared by "
                        "every checkout")
    kafka_heap: str = Field("1g", description="JVM heap of the local Kafka (one dev broker)")
    es_heap: str = Field("2g", description="JVM heap of the local Elasticsearch (e.g. 4g "
                         "for benchmarks)")
