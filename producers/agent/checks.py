"""``vigie agent test config|output``: what an administrator runs before starting the agent.

``config`` reads the configuration and every file it names without connecting anywhere: the
agent key and the pseudonymisation key (owner-only, not a link, not weak), the state
directory, the Kafka certificates, each source's files or listening address; and it says what
the agent would do. ``output`` then walks the path to the national Kafka one step at a time,
so that a failure names the step that failed: the address, the TLS handshake (and whose
certificate came back), SASL and the metadata of ``events.raw``, an idempotent producer's
initialisation (the ``IdempotentWrite`` right), and the agent's own position on
``vigie.agent-progress``. Neither sends an event, and neither uses the agent's transactional
id: a running agent is never fenced by a test.

Each step gives one line ``PASS|WARN|FAIL|SKIP  <step>: <detail>``; the command's exit code is
the family (:mod:`runtime.errors`) of the first failure: 78 configuration, 77 permission
refused by Kafka, 69 Kafka unreachable, 0 when nothing failed.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from producers.agent.config import (
    AgentConfig,
    AuthlogSource,
    CefSource,
    EvtxSource,
    JsonSource,
    SyslogSourceConfig,
    load_config,
)
from producers.agent.pseudonymise import load_pseudonym_key
from producers.agent.ship import agent_progress_group
from producers.signing import load_key, public_key_b64
from runtime.errors import (
    ConfigurationError,
    PermissionDenied,
    ServiceUnavailable,
    VigieError,
)
from schemas.topics import AGENT_PROGRESS, EVENTS_RAW

#: Seconds each network step may take.
STEP_TIMEOUT = 10.0


@dataclass
class Check:
    """One step's outcome; ``family`` is the exit code's family when it failed."""

    status: str  # PASS, WARN, FAIL, SKIP
    step: str
    detail: str
    family: type[VigieError] | None = None

    def line(self) -> str:
        return f"{self.status:<5} {self.step}: {self.detail}"


def passed(step: str, detail: str) -> Check:
    return Check("PASS", step, detail)


def warned(step: str, detail: str) -> Check:
    return Check("WARN", step, detail)


def failed(step: str, detail: str | VigieError,
           family: type[VigieError] = ConfigurationError) -> Check:
    if isinstance(detail, VigieError):
        return Check("FAIL", step, str(detail), type(detail))
    return Check("FAIL", step, detail, family)


def exit_code(checks: list[Check]) -> int:
    """The exit code of the first failure's family, 0 when none failed."""
    failure = next((c for c in checks if c.status == "FAIL"), None)
    if failure is None:
        return 0
    return (failure.family or ConfigurationError).exit_code


# --- test config -----------------------------------------------------------------------------
def check_config(path: Path) -> tuple[AgentConfig | None, list[Check]]:
    """Every local check of the configuration at ``path`` (no network)."""
    try:
        config = load_config(path)
    except VigieError as exc:
        return None, [failed("configuration", exc)]
    checks = [passed("configuration", f"{path}: agent {config.agent_id} of establishment "
                     f"{config.establishment.id} ({config.establishment.name})")]
    checks.append(_config_file_mode(path, config))
    checks.append(_agent_key(config))
    checks.append(_pseudonym_key(config))
    checks.append(_state_dir(config))
    checks.extend(_kafka_files(config))
    for source in config.sources:
        checks.extend(_source(source))
    if not config.sources:
        checks.append(warned("sources", "none configured: `run` would only ship what is "
                             "left in the spool"))
    port = config.metrics_port or 9404
    checks.append(passed("metrics", f"/metrics on {config.metrics_host}:{port}"
                         + (" (TLS)" if config.metrics_tls.certfile else "")))
    checks.append(passed("logs", f"level {config.log.level}, format {config.log.format} "
                         "(VIGIE_LOG_LEVEL / VIGIE_LOG_FORMAT and --log-level / --log-format "
                         "override)"))
    return config, checks


def _config_file_mode(path: Path, config: AgentConfig) -> Check:
    """A configuration holding the SASL password must be owner-only, like a key."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if config.kafka.sasl_password is None and config.kafka.ssl_key_password is None:
        return passed("configuration file", f"mode {mode:04o} (holds no password)")
    if mode & 0o077:
        return failed("configuration file", f"mode {mode:04o} but it holds the Kafka "
                      f"password: run `chmod 600 {path}`")
    return passed("configuration file", f"mode {mode:04o}, holds the Kafka password")


def _agent_key(config: AgentConfig) -> Check:
    try:
        key = load_key(config.key_path)
    except VigieError as exc:
        return failed("agent key", exc)
    return passed("agent key", f"{config.key_path}: Ed25519, owner-only; public key "
                  f"{public_key_b64(key)}")


def _pseudonym_key(config: AgentConfig) -> Check:
    if not config.pseudonymise.enabled:
        return warned("pseudonymisation", "OFF: identities would leave the hospital in clear")
    path = config.pseudonym_key_path
    if not path.exists() and not path.is_symlink():
        return passed("pseudonymisation", f"key {path} will be created (random, 0600) at the "
                      "first run")
    try:
        load_pseudonym_key(path)
    except VigieError as exc:
        return failed("pseudonymisation key", exc)
    return passed("pseudonymisation", f"key {path}: owner-only, random")


def _state_dir(config: AgentConfig) -> Check:
    state = config.state_dir
    # The state directory itself may be a link (systemd's DynamicUser makes
    # /var/lib/vigie-agent one); the spool inside it may not.
    if config.spool_dir.is_symlink():
        return failed("state directory", f"{config.spool_dir} is a symbolic link")
    if not state.exists():
        parent = next((p for p in state.parents if p.exists()), Path("/"))
        if not os.access(parent, os.W_OK):
            return failed("state directory", f"{state} does not exist and {parent} is not "
                          "writable", PermissionDenied)
        return passed("state directory", f"{state} will be created")
    if not os.access(state, os.W_OK | os.X_OK):
        return failed("state directory", f"{state} is not writable", PermissionDenied)
    return passed("state directory", f"{state} (spool {config.spool_dir}, at most "
                  f"{config.spool.max_bytes} bytes, when full: {config.spool.full_policy})")


def _readable(step: str, path: Path | None, what: str) -> Check | None:
    if path is None:
        return None
    if not path.is_file():
        return failed(step, f"{what} {path} does not exist")
    if not os.access(path, os.R_OK):
        return failed(step, f"{what} {path} is not readable", PermissionDenied)
    return None


def _kafka_files(config: AgentConfig) -> Iterator[Check]:
    kafka = config.kafka
    problems = [c for c in (_readable("Kafka TLS", kafka.ssl_cafile, "CA bundle"),
                            _readable("Kafka TLS", kafka.ssl_certfile, "client certificate"),
                            _readable("Kafka TLS", kafka.ssl_keyfile, "client key"))
                if c is not None]
    yield from problems
    summary = f"{kafka.bootstrap} over {kafka.security_protocol}"
    if kafka.uses_sasl:
        summary += f" as {kafka.sasl_username} ({kafka.sasl_mechanism})"
    if not kafka.uses_tls:
        yield warned("Kafka", summary + ": NOT encrypted; use SSL or SASL_SSL outside a lab")
    elif not problems:
        yield passed("Kafka", summary + (f", CA {kafka.ssl_cafile}" if kafka.ssl_cafile
                                         else ", the system's CAs"))


def _source(source: Any) -> Iterator[Check]:
    step = f"source {source.name}"
    if isinstance(source, EvtxSource | JsonSource):
        matched = sorted({m for pattern in source.paths for m in glob.glob(pattern)})
        channels = ", ".join(source.effective_channels)
        ids = ""
        if source.include_event_ids:
            ids += f"; only event ids {source.include_event_ids}"
        if source.exclude_event_ids:
            ids += f"; not event ids {source.exclude_event_ids}"
        detail = (f"{source.type} files {source.paths} ({len(matched)} match now); "
                  f"channels: {channels}{ids}")
        yield (passed if matched else warned)(step, detail)
    elif isinstance(source, AuthlogSource | CefSource):
        if not source.path.exists():
            yield warned(step, f"{source.path} does not exist yet: followed once it appears")
            return
        problem = _readable(step, source.path, "file")
        yield problem or passed(step, f"follows {source.path} ({source.type})"
                                + (" from its end" if source.from_end else ""))
    elif isinstance(source, SyslogSourceConfig):
        yield from _listener(step, source)


def _listener(step: str, source: SyslogSourceConfig) -> Iterator[Check]:
    detail = f"listens for syslog over {source.protocol.upper()} on {source.host}:{source.port}"
    for name, what in (("tls_cert", "certificate"), ("tls_key", "key"),
                       ("tls_client_ca", "client CA")):
        problem = _readable(step, getattr(source, name), f"TLS {what}")
        if problem is not None:
            yield problem
            return
    if source.protocol == "tls":
        detail += ("; client certificate required" if source.require_client_cert
                   else "; client certificates verified when presented"
                   if source.tls_client_ca else "; no client certificate asked")
    if source.host in ("0.0.0.0", "::"):
        yield warned(step, detail + ": every interface; prefer the address senders reach")
    else:
        yield passed(step, detail)
    if 0 < source.port < 1024:
        yield warned(step, f"port {source.port} < 1024 needs CAP_NET_BIND_SERVICE (systemd: "
                     "the drop-in deploy/agent/low-port.conf, see docs/agent.md)")


# --- test output -----------------------------------------------------------------------------
def check_output(config: AgentConfig, *, timeout: float = STEP_TIMEOUT) -> list[Check]:
    """Each step towards Kafka, stopping (SKIP) after the first that fails."""
    steps: list[tuple[str, Callable[[], Check]]] = [
        ("address", lambda: _tcp(config, timeout)),
        ("TLS handshake", lambda: _tls(config, timeout)),
        ("SASL and metadata", lambda: _metadata(config, timeout)),
        ("idempotent producer", lambda: _idempotent(config, timeout)),
        ("agent position", lambda: _position(config, timeout)),
    ]
    checks: list[Check] = []
    for name, step in steps:
        if any(c.status == "FAIL" for c in checks):
            checks.append(Check("SKIP", name, "an earlier step failed"))
            continue
        checks.append(step())
    return checks


def _servers(config: AgentConfig) -> list[tuple[str, int]]:
    out = []
    for server in config.kafka.bootstrap_servers():
        host, _, port = server.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def _tcp(config: AgentConfig, timeout: float) -> Check:
    reached, errors = [], []
    for host, port in _servers(config):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                reached.append(f"{host}:{port}")
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    if not reached:
        return failed("address", "no bootstrap server answers: " + "; ".join(errors),
                      ServiceUnavailable)
    if errors:
        return warned("address", f"{', '.join(reached)} answer; " + "; ".join(errors))
    return passed("address", f"{', '.join(reached)} accept TCP connections")


def _tls(config: AgentConfig, timeout: float) -> Check:
    kafka = config.kafka
    if not kafka.uses_tls:
        return warned("TLS handshake", f"{kafka.security_protocol}: no TLS, events would "
                      "travel in clear")
    context = kafka.ssl_context()
    assert context is not None
    host, port = _servers(config)[0]
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert() or {}
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return failed("TLS handshake", f"{host}:{port}: the broker's certificate is not "
                      f"trusted ({exc.verify_message}); check ssl_cafile and the broker name")
    except (ssl.SSLError, OSError) as exc:
        return failed("TLS handshake", f"{host}:{port}: {exc}", ServiceUnavailable)
    common_name = "?"
    for rdn in cert.get("subject", ()):
        for attribute in rdn:
            if attribute[0] == "commonName":
                common_name = str(attribute[1])
    not_after = cert.get("notAfter")
    days = ""
    if isinstance(not_after, str):
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
        days = f", expires in {(expires - datetime.now(UTC)).days} days"
    return passed("TLS handshake", f"{host}:{port}: {version}, broker certificate "
                  f"CN={common_name} trusted{days}")


class _Errors:
    """librdkafka's error callback, kept: authentication failures arrive there."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []

    def __call__(self, error: KafkaError) -> None:
        self.errors.append(error)

    def authentication(self) -> KafkaError | None:
        return next((e for e in self.errors if e.code() in (
            KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)), None)

    def fatal(self) -> KafkaError | None:
        return next((e for e in self.errors if e.fatal()), None)


def _client(config: AgentConfig, errors: _Errors, **extra: Any) -> Producer:
    from producers.agent.kafka_logs import kafka_logger

    return Producer(config.kafka.librdkafka(**{
        "error_cb": errors, "logger": kafka_logger(), "socket.timeout.ms": 10_000,
        "enable.idempotence": False, **extra}))


def _metadata(config: AgentConfig, timeout: float) -> Check:
    errors = _Errors()
    producer = _client(config, errors)
    try:
        metadata = producer.list_topics(EVENTS_RAW.name, timeout=timeout)
    except KafkaException as exc:
        producer.poll(0.5)  # serves the error callback, where the reason is
        auth = errors.authentication()
        if auth is not None:
            return failed("SASL and metadata", f"authentication refused ({auth.str()}): "
                          "check sasl_username / sasl_password (or the client certificate)")
        return failed("SASL and metadata", f"no metadata: {exc}", ServiceUnavailable)
    finally:
        producer.flush(0)
    topic = metadata.topics.get(EVENTS_RAW.name)
    if topic is None or topic.error is not None:
        error = topic.error if topic is not None else None
        if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            return failed("SASL and metadata", f"{EVENTS_RAW.name}: not authorised for this "
                          "agent's principal (national team: `vigie agents add`)",
                          PermissionDenied)
        return failed("SASL and metadata", f"{EVENTS_RAW.name}: "
                      f"{error.str() if error else 'absent'}", ServiceUnavailable)
    who = f" as {config.kafka.sasl_username}" if config.kafka.uses_sasl else ""
    return passed("SASL and metadata", f"authenticated{who}; {EVENTS_RAW.name}: "
                  f"{len(topic.partitions)} partitions on {len(metadata.brokers)} brokers")


def _idempotent(config: AgentConfig, timeout: float) -> Check:
    """An idempotent producer obtains a producer id at start (``InitProducerId``, which
    needs the ``IdempotentWrite`` right): its statistics say when it has one."""
    errors = _Errors()
    stats: dict[str, Any] = {}

    def on_stats(raw: str) -> None:
        stats.update(json.loads(raw).get("eos") or {})

    producer = _client(config, errors, **{"enable.idempotence": True,
                                          "statistics.interval.ms": 200,
                                          "stats_cb": on_stats})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            producer.poll(0.1)
            fatal = errors.fatal()
            if fatal is not None:
                family = (PermissionDenied
                          if fatal.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
                          else ServiceUnavailable)
                return failed("idempotent producer", f"refused: {fatal.str()}", family)
            if stats.get("idemp_state") == "Assigned":
                return passed("idempotent producer", f"producer id {stats.get('producer_id')} "
                              "assigned (acks=all, idempotent writes authorised)")
    finally:
        producer.flush(0)
    return failed("idempotent producer", f"no producer id after {timeout:.0f} s (state "
                  f"{stats.get('idemp_state', 'unknown')})", ServiceUnavailable)


def _position(config: AgentConfig, timeout: float) -> Check:
    """What the agent reads at each start (its committed spool position): READ on its
    group and on ``vigie.agent-progress``."""
    group = agent_progress_group(config.agent_id)
    consumer = config.kafka.consumer(group, **{"log_level": 2})
    try:
        committed = consumer.committed([TopicPartition(AGENT_PROGRESS.name, 0)], timeout)[0]
        if committed.error is not None:
            raise KafkaException(committed.error)
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        code = error.code() if error is not None else None
        if code in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                    KafkaError.TOPIC_AUTHORIZATION_FAILED):
            return failed("agent position", f"group {group} on {AGENT_PROGRESS.name}: "
                          f"{error.str() if error else exc}", PermissionDenied)
        return failed("agent position", f"group {group}: {exc}", ServiceUnavailable)
    finally:
        consumer.close()
    where = (f"spool record {committed.offset} committed" if committed.offset >= 0
             else "nothing committed yet (first run)")
    return passed("agent position", f"group {group} readable: {where}")
