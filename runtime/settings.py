"""Configuration: defaults, then a YAML file, then ``VIGIE_*`` environment variables.

A hospital IT team or a SOC deploys the same binary in many places; what differs lives in
one file (``--config`` or ``VIGIE_CONFIG``) and can be overridden per process by environment
(containers, systemd units). Every setting is documented here and in the README.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from runtime.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """Where local state lives (registry, stack data, agent spool): ``.vigie/`` in the repo."""
    return Path(os.environ.get("VIGIE_HOME", REPO_ROOT / ".vigie"))


class Settings(BaseSettings):
    """Settings shared by every Vigie process."""

    model_config = SettingsConfigDict(env_prefix="VIGIE_", extra="ignore")

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers")
    es_url: str = Field("http://localhost:9200", description="Elasticsearch URL")
    es_username: str | None = Field(None, description="Elasticsearch user (full clusters)")
    es_password: str | None = Field(None, description="Elasticsearch password")
    es_ca_certs: Path | None = Field(None, description="CA bundle to verify Elasticsearch TLS")
    registry: Path = Field(
        default_factory=lambda: default_home() / "registry" / "establishments.jsonl",
        description="National registry of establishments (JSON lines)",
    )
    agents_registry: Path = Field(
        default_factory=lambda: default_home() / "registry" / "agents.jsonl",
        description="Registry of enrolled agents and their public keys (JSON lines or YAML)",
    )
    require_signatures: bool = Field(
        True, description="Refuse events not signed by an enrolled agent of the establishment"
    )
    metrics_port: int = Field(0, description="Prometheus metrics port; 0 picks the default")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(False, description="Log as JSON lines (for log shippers)")
    max_clock_skew_s: float = Field(
        300.0, description="Events dated further in the future than this are refused"
    )
    detection_enabled: bool = Field(True, description="Run the Sigma engine in the processor")
    rule_dirs: list[Path] = Field(
        default_factory=list,
        description="Sigma rule folders (default: the SigmaHQ folders under ../shared/data/sigma)",
    )
    incidents_enabled: bool = Field(True, description="Correlate detections into incidents")
    scoring: Path | None = Field(
        None, description="Incident scoring file (default: processors/incidents/scoring.yaml)")
    incident_tick_s: float = Field(
        60.0, description="How often establishments with open incidents are checked for "
        "resolution")
    processor_app_id: str = Field("vigie-processor", description="Faust app id (consumer group)")
    sink_group: str = Field("vigie-sink", description="Kafka consumer group of the sink")
    notifier_group: str = Field("vigie-notifier",
                                description="Kafka consumer group of `vigie notify`")
    sink_batch_max_docs: int = Field(2000, description="Bulk batch size bound, documents")
    sink_batch_max_bytes: int = Field(8 * 1024 * 1024, description="Bulk batch bound, bytes")
    sink_batch_max_wait_s: float = Field(1.0, description="Flush a partial batch after this")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("VIGIE_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config`` (or ``VIGIE_CONFIG``), environment, then explicit overrides.

    Raises :class:`ConfigurationError` naming the file when it does not exist (pydantic-settings
    would silently run on defaults), is not YAML, or holds a value of the wrong type.
    """
    if config is not None:
        os.environ["VIGIE_CONFIG"] = str(config)
    config_file = os.environ.get("VIGIE_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigurationError(
            "no such settings file" + ("" if config is not None else " (VIGIE_CONFIG)"),
            source=config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}",
                                 source=config_file or "VIGIE_* environment") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"not valid YAML: {exc}", source=config_file) from None
