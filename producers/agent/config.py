"""The agent's configuration: one YAML file per hospital agent.

Example (all keys documented in ``docs/agent.md``)::

    establishment: {id: "750712184", name: "CHU Exemple", type: university_hospital,
                    region: ile-de-france}
    agent_id: chu-exemple-01
    key_path: /etc/vigie/agent.key
    kafka: {bootstrap: "vigie.example.org:9093", security_protocol: SSL,
            ssl_cafile: /etc/vigie/ca.pem, ssl_certfile: agent.pem, ssl_keyfile: agent.key}
    state_dir: /var/lib/vigie-agent
    eps: 2000
    pseudonymise: {key_path: /etc/vigie/pseudonym.key}
    spool: {max_bytes: 2000000000, full_policy: block}
    sources:
      - {type: evtx, name: dc-exports, paths: ["/srv/exports/*.evtx"]}
      - {type: syslog, name: net, protocol: udp, port: 5514}
      - {type: authlog, name: auth, path: /var/log/auth.log}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from producers.agent.clock import DEFAULT_TOLERANCE_S
from producers.agent.privacy.policy import Treatment
from producers.agent.quarantine import DEFAULT_HEAD_BYTES, DEFAULT_KEEP, DEFAULT_MAX_BYTES
from producers.agent.spool import FullPolicy
from runtime.errors import ConfigurationError
from runtime.kafka import KafkaConnection
from runtime.metrics import DEFAULT_HOST, MetricsTls
from runtime.settings import describe_validation
from schemas.enrolment import AgentId
from schemas.organization import Organization


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SourceBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                      description="Stable name: positions key and metric label")
    from_end: bool = Field(False, description="Followed files: start at the end the first time")


class _FollowedFileBase(_SourceBase):
    max_record_bytes: int = Field(
        64 * 1024, ge=1024, le=16 << 20,
        description="Longest line accepted; a longer one is refused as `oversized` "
                    "(counted, quarantined), never cut")


class _WindowsFilters(_Strict):
    """Filters at the source (:mod:`producers.agent.filters`): Windows channels and event
    ids to keep or drop before pseudonymisation and shipping."""

    channels: list[str] | None = Field(
        None, description="Channels to keep (shell patterns, any case); default: the "
        "security-relevant channels (filters.SECURITY_CHANNELS); [\"*\"]: every channel")
    include_event_ids: list[int] = Field(default_factory=list,
                                         description="Keep only these event ids (empty: all)")
    exclude_event_ids: list[int] = Field(default_factory=list,
                                         description="Drop these event ids")

    @property
    def effective_channels(self) -> list[str]:
        from producers.agent.filters import SECURITY_CHANNELS

        return list(SECURITY_CHANNELS) if self.channels is None else self.channels


class EvtxSource(_SourceBase, _WindowsFilters):
    type: Literal["evtx"]
    paths: list[str] = Field(min_length=1, description="Globs of .evtx files")


class JsonSource(_FollowedFileBase, _WindowsFilters):
    type: Literal["json"]
    paths: list[str] = Field(min_length=1,
                             description="Globs of .json exports, or one .jsonl file to follow")


class SyslogSourceConfig(_SourceBase):
    type: Literal["syslog"]
    protocol: Literal["udp", "tcp", "tls"] = "udp"
    host: str = Field("127.0.0.1", min_length=1,
                      description="Address to listen on: this host only by default; the "
                      "address of the interface senders reach, or 0.0.0.0 for every one")
    port: int = Field(5514, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = Field(
        None, description="CA bundle of the senders' client certificates (TLS): with it, a "
        "certificate a sender presents is verified")
    require_client_cert: bool = Field(
        False, description="TLS: refuse senders without a certificate signed by "
        "tls_client_ca")
    max_frame: int = Field(64 * 1024, ge=480)

    @model_validator(mode="after")
    def _tls_settings(self) -> SyslogSourceConfig:
        tls_only = [name for name in ("tls_cert", "tls_key", "tls_client_ca")
                    if getattr(self, name) is not None]
        if self.require_client_cert:
            tls_only.append("require_client_cert")
        if self.protocol != "tls" and tls_only:
            raise ValueError(f"{', '.join(tls_only)} set but protocol is {self.protocol}")
        if self.protocol == "tls" and self.tls_cert is None:
            raise ValueError("protocol tls needs tls_cert (and tls_key)")
        if self.require_client_cert and self.tls_client_ca is None:
            raise ValueError("require_client_cert needs tls_client_ca (the senders' CA)")
        return self


class AuthlogSource(_FollowedFileBase):
    type: Literal["authlog"]
    path: Path = Path("/var/log/auth.log")


class CefSource(_FollowedFileBase):
    type: Literal["cef"]
    path: Path


SourceConfig = Annotated[EvtxSource | JsonSource | SyslogSourceConfig | AuthlogSource | CefSource,
                         Field(discriminator="type")]


class QuarantineConfig(_Strict):
    """The local file of refused input (see :mod:`producers.agent.quarantine`)."""

    enabled: bool = True
    path: Path | None = Field(None, description="Default <state_dir>/quarantine.jsonl "
                              "(0600; holds raw, not pseudonymised, input: never shipped)")
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=4096, description="Rotated beyond this")
    keep: int = Field(DEFAULT_KEEP, ge=0, le=100, description="Rotated files kept")
    head_bytes: int = Field(DEFAULT_HEAD_BYTES, ge=0, le=64 * 1024,
                            description="First bytes of each refused record kept (base64)")


# --- privacy (helper a2: what leaves the hospital; see docs/privacy.md) ----------------------
class PseudonymiseConfig(_Strict):
    """The agent's privacy block (``pseudonymise:``): the key, and this hospital's
    adjustments to the policy table of :mod:`producers.agent.privacy.policy`."""

    enabled: bool = True
    key_path: Path | None = Field(None, description="Hex key file; default <state_dir>/"
                                  "pseudonym.key, created on first run")
    ip_scope: Literal["private", "all"] = "private"
    internal_domains: list[str] = Field(default_factory=list, description="DNS suffixes of "
                                        "the hospital's own machines (chu-exemple.local): "
                                        "names under them are pseudonymised")
    patient_roots: list[str] = Field(default_factory=list, description="Folders of patient "
                                     "documents: every name under them is pseudonymised")
    patient_params: list[str] | None = Field(None, description="URL parameters naming a "
                                             "patient; default: nom, prenom, patient, ipp...")
    unparsed_messages: Literal["drop", "scrub"] = Field(
        "drop", description="message of a syslog line the agent did not recognise")
    overrides: dict[str, Treatment] = Field(default_factory=dict, description="Field path → "
                                            "keep | user | domain | host | dns | ip | sid | "
                                            "scrub | hash | drop")
    # The first format's keys, still read: both add to ``overrides``.
    fields: dict[str, Treatment] | None = Field(None, description="Legacy: as overrides")
    extra_fields: dict[str, Treatment] = Field(default_factory=dict,
                                               description="Legacy: as overrides")

    def all_overrides(self) -> dict[str, Treatment]:
        return {**(self.fields or {}), **self.extra_fields, **self.overrides}
# --- end of the privacy block -----------------------------------------------------------------


class SpoolConfig(_Strict):
    max_bytes: int = Field(1 << 30, ge=1 << 16)
    full_policy: FullPolicy = FullPolicy.BLOCK
    segment_bytes: int = Field(16 << 20, ge=4096)
    fsync: bool = True


class LogConfig(_Strict):
    """How the agent logs (overridden by ``VIGIE_LOG_LEVEL`` / ``VIGIE_LOG_FORMAT``, then by
    ``--log-level`` / ``--log-format``)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = Field(
        "text", description="json: one ECS-style JSON object a line, for a log shipper")
    kafka_repeat_seconds: float = Field(
        60.0, ge=0, description="librdkafka: the same message at most once per this many "
        "seconds, then with a 'repeated K times' count")


class AgentConfig(_Strict):
    # Errors must not echo what was given: the Kafka block may hold a password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    establishment: Organization
    agent_id: AgentId
    key_path: Path
    kafka: KafkaConnection = Field(default_factory=KafkaConnection,
                                   description="Brokers and TLS/SASL, for every Kafka client")
    kafka_file: Path | None = Field(
        None, description="A 0600 YAML file with a kafka: section (what `vigie agent enroll "
        "--token` writes): its keys replace those of kafka:, so the password stays out of "
        "this file")
    state_dir: Path = Path("/var/lib/vigie-agent")
    eps: float = Field(0, ge=0, description="Events per second cap; 0: unlimited")
    max_in_flight: int = Field(50_000, ge=100)
    metrics_port: int = Field(0, description="Prometheus /metrics port; 0: 9404")
    metrics_host: str = Field(DEFAULT_HOST, description="Address /metrics listens on "
                              "(0.0.0.0: every interface)")
    metrics_tls: MetricsTls = Field(default_factory=MetricsTls,
                                    description="TLS (and client certificates) for /metrics")
    # --- hostile input and time (issue 13, items 1 and 3) ---------------------------------
    timezone: str | None = Field(None, description="Zone of RFC 3164 / auth.log timestamps "
                                 "(e.g. Europe/Paris); default: the host's zone")
    future_tolerance_s: float = Field(DEFAULT_TOLERANCE_S, ge=0, description=(
        "Events dated further ahead than this are counted and logged (wrong timezone?)"))
    quarantine: QuarantineConfig = Field(default_factory=QuarantineConfig)
    # ---------------------------------------------------------------------------------------
    pseudonymise: PseudonymiseConfig = Field(default_factory=PseudonymiseConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    sources: list[SourceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> AgentConfig:
        names = [s.name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError(f"source names must be unique: {names}")
        return self

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "spool"

    @property
    def positions_path(self) -> Path:
        return self.state_dir / "positions.json"

    @property
    def status_path(self) -> Path:
        return self.state_dir / "status.json"

    @property
    def quarantine_path(self) -> Path:
        return self.quarantine.path or self.state_dir / "quarantine.jsonl"

    @property
    def pseudonym_key_path(self) -> Path:
        return self.pseudonymise.key_path or self.state_dir / "pseudonym.key"


class ConfigError(ConfigurationError):
    pass


def _rebased_source(source: SourceConfig, base: Path) -> SourceConfig:
    """A syslog source's certificate paths taken under ``base`` when relative."""
    if not isinstance(source, SyslogSourceConfig):
        return source
    updates = {name: base / path for name in ("tls_cert", "tls_key", "tls_client_ca")
               if (path := getattr(source, name)) is not None and not path.is_absolute()}
    return source.model_copy(update=updates) if updates else source


def _with_kafka_file(inline: KafkaConnection, given: dict[str, Any], base: Path,
                     kafka_file: Path) -> KafkaConnection:
    """The connection of ``kafka:`` (``given``, paths under ``base``) with the keys of the
    ``kafka:`` section of ``kafka_file`` on top (paths under that file's folder). The file
    holds a password: refused if others may read it or if it is a symbolic link."""
    from producers.keyfiles import read_private_file

    try:
        loaded = yaml.safe_load(read_private_file(kafka_file)) or {}
    except FileNotFoundError:
        raise ConfigError("kafka_file not found (`vigie agent enroll --token` writes it)",
                          source=str(kafka_file)) from None
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), source=str(kafka_file)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=str(kafka_file)) from None
    section = loaded.get("kafka") if isinstance(loaded, dict) else None
    if not isinstance(section, dict):
        raise ConfigError("no kafka: section", source=str(kafka_file))
    paths = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    merged: dict[str, Any] = {k: v for k, v in given.items() if k not in paths}
    merged.update({k: str(getattr(inline, k)) for k in paths if getattr(inline, k) is not None
                   and k in given})
    merged.update({k: (v if k not in paths or Path(v).is_absolute()
                       else str(kafka_file.parent / v)) for k, v in section.items()})
    try:
        return KafkaConnection.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"invalid kafka section: {describe_validation(exc, 'key')}",
                          source=str(kafka_file)) from None


def load_config(path: Path) -> AgentConfig:
    """Read and check the YAML file; relative paths are relative to the file's folder."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), source=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=str(path)) from exc
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid agent configuration: {describe_validation(exc, 'key')}",
                          source=str(path)) from None
    base = path.resolve().parent

    def rebase(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    updates: dict[str, Any] = {}
    for attr in ("key_path", "state_dir"):
        new = rebase(getattr(config, attr))
        if new is not None:
            updates[attr] = new
    kafka = config.kafka.rebased(base)
    if config.kafka_file is not None:
        kafka_file = (config.kafka_file if config.kafka_file.is_absolute()
                      else base / config.kafka_file)
        updates["kafka_file"] = kafka_file
        kafka = _with_kafka_file(kafka, data.get("kafka") or {}, base, kafka_file)
    if kafka is not config.kafka:
        updates["kafka"] = kafka
    metrics_tls = config.metrics_tls.rebased(base)
    if metrics_tls is not config.metrics_tls:
        updates["metrics_tls"] = metrics_tls
    sources = [_rebased_source(source, base) for source in config.sources]
    if any(new is not old for new, old in zip(sources, config.sources, strict=True)):
        updates["sources"] = sources
    if updates:
        config = config.model_copy(update=updates)
    if config.quarantine.path is not None and not config.quarantine.path.is_absolute():
        config.quarantine.path = base / config.quarantine.path
    if config.pseudonymise.key_path is not None and not config.pseudonymise.key_path.is_absolute():
        config.pseudonymise.key_path = base / config.pseudonymise.key_path
    return config
