"""Configuration: defaults, then a YAML file, then ``VIGIE_*`` environment variables, then
explicit overrides (command-line options).

A hospital IT team or a SOC deploys the same binary in many places; what differs lives in
one file (``--config`` or ``VIGIE_CONFIG``; else ``<home>/vigie.yaml`` when it exists, which
``vigie stack up`` writes with the local stack's address and credentials; ``VIGIE_CONFIG=``
empty means no file at all) and can be overridden per process by environment (containers,
systemd units). Every setting is documented here and in the README.

Mistakes are refused, not ignored: an unknown key in the file, or an unknown ``VIGIE_*``
variable (a renamed setting an operator still sets), stops the process with a message naming
it. This module is the only reader of the environment for Vigie's settings; nothing here writes
it. Passwords are ``SecretStr``: they never show in a ``repr``, a log or an error message, and
are read (``get_secret_value()``) only where a client is built.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from runtime.errors import ConfigurationError
from runtime.kafka import KafkaConnection
from runtime.metrics import DEFAULT_HOST, MetricsTls

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Where local state lives (registry, stack data, agent spool, Faust tables) unless VIGIE_HOME.
DEFAULT_HOME = REPO_ROOT / ".vigie"

PREFIX = "VIGIE_"

#: ``VIGIE_*`` variables that are not national settings, and who reads them. Anything else
#: with the prefix that is not a setting is an error.
OWNED_ELSEWHERE: dict[str, str] = {
    "VIGIE_CONFIG": "the settings file itself (this module)",
    "VIGIE_CACHE": "deploy/local (downloads), deploy.local.settings.StackSettings",
    "VIGIE_KAFKA_HEAP": "deploy/local (local Kafka's JVM heap), StackSettings",
    "VIGIE_ES_HEAP": "deploy/local (local Elasticsearch's JVM heap), StackSettings",
    "VIGIE_STACK": "deploy/local (marker of the local servers' processes)",
    "VIGIE_STACK_KAFKA_PORT": "deploy/local (local Kafka's client port), StackSettings",
    "VIGIE_STACK_CONTROLLER_PORT": "deploy/local (local Kafka's controller port), "
                                   "StackSettings",
    "VIGIE_STACK_ES_PORT": "deploy/local (local Elasticsearch's HTTPS port), StackSettings",
    "VIGIE_STACK_ES_TRANSPORT_PORT": "deploy/local (local Elasticsearch's transport port), "
                                     "StackSettings",
    "VIGIE_STACK_DRILL": "tests (opt-in stack drills)",
}


#: Settings that were renamed: their old variable gets a precise pointer to the new one.
RENAMED: dict[str, str] = {
    "VIGIE_KAFKA_BOOTSTRAP": "VIGIE_KAFKA__BOOTSTRAP",
    "VIGIE_CORRELATION_ENABLED": "VIGIE_INCIDENTS_ENABLED",
}


#: Settings that no longer exist: their variable gets what replaced them.
REMOVED: dict[str, str] = {
    "VIGIE_AGENTS_REGISTRY": "the agents registry is the Kafka topic vigie.agents; load an "
    "old file once with `vigie agents import FILE`",
}


class SettingsError(ConfigurationError):
    """The settings file or the environment holds something that is not a valid setting."""


class Settings(BaseSettings):
    """Settings shared by every Vigie process."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_nested_delimiter="__",
                                      extra="forbid", hide_input_in_errors=True)

    home: Path = Field(DEFAULT_HOME, description="Local state: registry, stack data, Faust "
                       "tables, demo logs")
    kafka: KafkaConnection = Field(default_factory=KafkaConnection,
                                   description="Kafka brokers and how to authenticate to them")
    es_url: str = Field("http://localhost:9200", description="Elasticsearch URL")
    es_username: str | None = Field(None, description="Elasticsearch user (full clusters)")
    es_password: SecretStr | None = Field(None, description="Elasticsearch password")
    es_ca_certs: Path | None = Field(None, description="CA bundle to verify Elasticsearch TLS")
    es_api_key: SecretStr | None = Field(
        None, description="Elasticsearch API key, the `encoded` value Elasticsearch returns "
        "(base64 of id:key); when set it is used instead of es_username/es_password")
    registry: Path = Field(
        default_factory=lambda data: data.get("home", DEFAULT_HOME) / "registry"
        / "establishments.jsonl",
        description="National registry of establishments (JSON lines)",
    )
    require_signatures: bool = Field(
        True, description="Refuse events not signed by an enrolled agent of the establishment "
        "(the agents registry, topic vigie.agents); false is allowed in demo mode only"
    )
    demo_mode: bool = Field(
        False, description="Demos, tests and benchmarks only: the processor also trusts the "
        "simulated agents (topic vigie.agents.simulated, keys derived from a public seed)"
    )
    metrics_port: int = Field(0, description="Prometheus metrics port; 0 picks the default")
    metrics_host: str = Field(DEFAULT_HOST, description="Address /metrics listens on "
                              "(0.0.0.0: every interface)")
    metrics_tls: MetricsTls = Field(default_factory=MetricsTls,
                                    description="TLS (and client certificates) for /metrics")
    alertmanager_url: str = Field("http://localhost:9093",
                                  description="Alertmanager base URL for `vigie notify`")
    alertmanager_ca: Path | None = Field(
        None, description="CA bundle to verify Alertmanager's certificate (default: the "
        "system's)")
    alertmanager_certfile: Path | None = Field(
        None, description="Client certificate presented to Alertmanager (mutual TLS)")
    alertmanager_keyfile: Path | None = Field(None, description="Its private key")
    alertmanager_username: str | None = Field(None, description="Alertmanager basic auth user")
    alertmanager_password: SecretStr | None = Field(
        None, description="Alertmanager basic auth password")
    alertmanager_token: SecretStr | None = Field(
        None, description="Bearer token for Alertmanager (instead of basic auth)")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(False, description="Log as JSON lines (for log shippers)")
    max_clock_skew_s: float = Field(
        300.0, description="Events dated further in the future than this are refused"
    )
    max_event_age_days: float = Field(
        30.0, gt=0, description="Events older than this are dead-lettered as too_old instead "
        "of creating old monthly indices (raise it to import old logs)"
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
    sink_batch_max_wait_s: float = Field(
        0.25, description="Flush a partial batch after this (seconds): latency every document "
        "pays at low load; a busy stream fills batches first")

    @model_validator(mode="after")
    def _signatures_off_only_in_demo(self) -> Settings:
        """Turning verification off lets anyone write in any establishment's name: a demo
        may, a deployment may not."""
        if not self.require_signatures and not self.demo_mode:
            raise PydanticCustomError(
                "demo_only", "require_signatures=false is refused outside demo mode "
                "(demo_mode: true, VIGIE_DEMO_MODE=true or vigie process --demo)")
        return self

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        """A relative VIGIE_HOME means the same folder whatever a child process's cwd."""
        return home.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: overrides, environment, the YAML file (defaults last)."""
        sources: list[PydanticBaseSettingsSource] = [
            init_settings, _KnownVariablesOnly(settings_cls), env_settings]
        config_file = settings_cls.model_config.get("yaml_file") or default_config()
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def default_config() -> str | None:
    """The settings file used when no ``--config`` is given: ``VIGIE_CONFIG`` if set (empty:
    none), else ``<home>/vigie.yaml`` if it exists (home: ``VIGIE_HOME`` or the default)."""
    named = os.environ.get("VIGIE_CONFIG")
    if named is not None:
        return named or None
    home = Path(os.environ.get("VIGIE_HOME") or DEFAULT_HOME).expanduser().resolve()
    found = home / "vigie.yaml"
    return str(found) if found.is_file() else None


def setting_variables(settings_cls: type[BaseModel] = Settings) -> set[str]:
    """Every environment variable that names a setting (nested ones with ``__``)."""
    names: set[str] = set()
    for name, info in settings_cls.model_fields.items():
        variable = f"{PREFIX}{name.upper()}"
        names.add(variable)
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names.update(f"{variable}__{sub.upper()}" for sub in nested.model_fields)
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``VIGIE_*`` variables of ``environ`` that are neither settings nor owned elsewhere,
    each with the closest setting name when there is one."""
    known = setting_variables() | set(OWNED_ELSEWHERE)
    found = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(PREFIX) or upper in known:
            continue
        if upper in RENAMED:
            found.append(f"{variable} (renamed {RENAMED[upper]})")
        elif upper in REMOVED:
            found.append(f"{variable} (removed: {REMOVED[upper]})")
        else:
            close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
            found.append(f"{variable} (did you mean {close[0]}?)" if close else variable)
    return found


class _KnownVariablesOnly(PydanticBaseSettingsSource):
    """Contributes nothing; refuses unknown ``VIGIE_*`` environment variables, which pydantic
    would otherwise ignore (an operator setting a renamed setting must be told)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        unknown = unknown_variables(os.environ)
        if unknown:
            raise SettingsError(
                f"unknown Vigie setting(s) in the environment: {', '.join(unknown)}; "
                "the settings are listed in README.md (Configuration)")
        return {}


def describe_validation(error: ValidationError, what: str = "setting") -> str:
    """The problems of ``error`` on one line (``loc: reason; ...``), without the offending
    values: a refused Kafka block may hold a password. Shared by the national settings and the
    agent's configuration so that both read the same to an operator."""
    problems = []
    for item in error.errors(include_input=False):
        if item["type"] == "default_factory_not_called":
            continue  # a default derived from a field that is itself in error: said already
        where = ".".join(str(part) for part in item["loc"]) or what
        if item["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown {what}")
        else:
            problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the defaults, ``config`` (else ``VIGIE_CONFIG``, else
    ``<home>/vigie.yaml`` when it exists: :func:`default_config`), the environment, then
    the non-None ``overrides``. Reads the environment, never writes it.

    Raises :class:`SettingsError` naming the file when it does not exist (pydantic-settings
    would silently run on defaults), is not YAML, or holds an unknown key or a wrong value.
    """
    config_file = str(config) if config is not None else default_config()
    if config_file and not Path(config_file).is_file():
        raise SettingsError(
            "no such settings file" + ("" if config is not None else " (VIGIE_CONFIG)"),
            source=config_file)
    settings_cls: type[Settings] = Settings
    if config is not None:
        # The file goes in through the class's configuration: a subclass per file, so that
        # nothing global (the environment) has to carry it.
        settings_cls = type("Settings", (Settings,), {
            "model_config": SettingsConfigDict(**{**Settings.model_config,
                                                  "yaml_file": str(config)}),
            "__module__": __name__,
            "__doc__": Settings.__doc__,
        })
    source = config_file or "VIGIE_* environment"
    try:
        return settings_cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {describe_validation(exc)}",
                            source=source) from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"not valid YAML: {exc}", source=config_file) from None
