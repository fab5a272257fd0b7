"""``vigie notify``: the ``alerts`` topic → Prometheus Alertmanager's API v2.

Alertmanager does routing (by region and severity labels), grouping, silences and the paging
integrations; Vigie only posts alerts and their resolves. Offsets are committed once
Alertmanager answered 2xx, so an unreachable Alertmanager delays pages but loses none.

Alertmanager may sit behind TLS (its ``--web.config.file``), verified with a CA of our own,
and ask for a client certificate, a basic auth password or a bearer token
(:class:`AlertmanagerEndpoint`). A refusal of those credentials, or a certificate we do not
trust, is not an outage: retrying cannot fix it, so the notifier stops with a configuration
error (checked once at start, and again on every post) instead of retrying forever while
pages wait.
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from confluent_kafka import Consumer, KafkaException, Message
from pydantic import SecretStr

from runtime import metrics
from runtime.backoff import Backoff
from runtime.errors import ConfigurationError
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from schemas.alert import Alert, AlertStatus
from schemas.topics import ALERTS

log = logging.getLogger(__name__)
STAGE = "notifier"


class PostableAlert(TypedDict):
    """The fields of an Alertmanager v2 ``postableAlert`` that Vigie sets."""

    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str


def to_alertmanager(alert: Alert, now: datetime | None = None) -> PostableAlert:
    """One Alertmanager v2 ``postableAlert``."""
    if alert.status == AlertStatus.RESOLVED:
        ends_at = now or datetime.now(UTC)
    else:
        # Firing alerts stay active until resolved; re-posted by a replay they just refresh.
        ends_at = alert.timestamp + timedelta(days=7)
    return {
        "labels": dict(alert.labels) or {"alertname": alert.rule},
        "annotations": {"summary": alert.summary, "incident_id": alert.incident_id},
        "startsAt": alert.timestamp.isoformat(),
        "endsAt": ends_at.isoformat(),
    }


class AlertmanagerRefused(ConfigurationError):
    """Alertmanager refused our credentials (401/403, a client certificate it does not accept)
    or presented a certificate we do not trust: fix the configuration, retrying cannot help."""


#: TLS failures that a restart or a flaky network produce; the others are configuration.
_TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


@dataclass(frozen=True)
class AlertmanagerEndpoint:
    """Where Alertmanager is and how to prove who we are to it, and it to us.

    ``ca`` verifies Alertmanager's certificate (default: the system's CAs); ``certfile`` and
    ``keyfile`` are our client certificate (mutual TLS); ``username``/``password`` (basic auth)
    or ``token`` (bearer) go in the ``Authorization`` header. Secrets stay ``SecretStr``
    (masked in ``repr``) and are read only when a request is built.
    """

    url: str = "http://localhost:9093"
    ca: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False,
                                            compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertmanagerEndpoint:
        """The ``alertmanager_*`` settings (``vigie notify --alertmanager`` overrides the
        URL)."""
        return cls(settings.alertmanager_url, ca=settings.alertmanager_ca,
                   certfile=settings.alertmanager_certfile,
                   keyfile=settings.alertmanager_keyfile,
                   username=settings.alertmanager_username,
                   password=settings.alertmanager_password, token=settings.alertmanager_token)

    def __post_init__(self) -> None:
        """Refuse what would be silently ignored or sent in clear, then load the TLS files
        once (a wrong path stops the notifier at start, not at its first page)."""
        parts = urlsplit(self.url)
        # The URL is an error's source: never with a password in it.
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        problems = []
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("alertmanager_url must be http(s)://host[:port]")
        if parts.username or parts.password:
            problems.append("credentials go in alertmanager_username/password, not the URL")
        if (self.certfile is None) != (self.keyfile is None):
            problems.append("a client certificate needs both alertmanager_certfile and "
                            "alertmanager_keyfile")
        if (self.username is None) != (self.password is None):
            problems.append("basic auth needs both alertmanager_username and "
                            "alertmanager_password")
        if self.token is not None and self.username is not None:
            problems.append("set alertmanager_token or basic auth, not both")
        if parts.scheme == "http":
            in_clear = [name for name, value in (
                ("alertmanager_ca", self.ca), ("alertmanager_certfile", self.certfile),
                ("alertmanager_password", self.password), ("alertmanager_token", self.token))
                if value is not None]
            if in_clear:
                problems.append(f"{', '.join(in_clear)} set but the URL is http: use https "
                                "(credentials would travel in clear)")
        if problems:
            raise ConfigurationError("; ".join(problems), source=shown)
        if parts.scheme == "https":
            object.__setattr__(self, "_context", self._load_tls(shown))

    def _load_tls(self, shown: str) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(
                cafile=str(self.ca) if self.ca is not None else None)
            if self.certfile is not None:
                context.load_cert_chain(str(self.certfile), str(self.keyfile))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load the Alertmanager TLS files: {exc}",
                                     source=shown) from None
        return context

    def _request(self, path: str, body: bytes | None = None) -> urllib.request.Request:
        """The request with its ``Authorization`` header: built per call, never stored."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        elif self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password.get_secret_value()}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return urllib.request.Request(self.url.rstrip("/") + path, data=body, headers=headers,
                                      method="POST" if body is not None else "GET")

    def call(self, path: str, body: bytes | None = None) -> bytes:
        """One request (POST ``body``, else GET); the answer's body. Raises
        :class:`AlertmanagerRefused` for what retrying cannot fix, and ``OSError``
        (``URLError`` among them) for what it may."""
        request = self._request(path, body)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._context) as response:
                if response.status >= 300:
                    raise urllib.error.HTTPError(request.full_url, response.status, "refused",
                                                 response.headers, None)
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise AlertmanagerRefused(
                    f"Alertmanager refused the credentials (HTTP {exc.code}): check "
                    "alertmanager_username/password or alertmanager_token",
                    source=request.full_url) from None
            raise
        except (urllib.error.URLError, ssl.SSLError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise AlertmanagerRefused(
                    f"Alertmanager's certificate is not trusted ({reason.verify_message}): "
                    "set alertmanager_ca to the CA that signed it",
                    source=request.full_url) from None
            # Without a client certificate, a server that requires one may close the
            # connection before its TLS 1.3 alert is read: an EOF then, not a flaky network.
            if isinstance(reason, ssl.SSLError) and (
                    not isinstance(reason, _TRANSIENT_TLS)
                    or (self.certfile is None and isinstance(reason, ssl.SSLEOFError))):
                raise AlertmanagerRefused(
                    f"TLS with Alertmanager failed ({reason.reason or reason}): check "
                    "alertmanager_certfile/keyfile and that the URL's scheme is right",
                    source=request.full_url) from None
            raise

    def check(self) -> bool:
        """Whether Alertmanager answers (``/api/v2/status``) with these credentials; raises
        :class:`AlertmanagerRefused` when it refuses them. Unreachable is only ``False``: the
        notifier starts anyway and retries, as for any outage."""
        try:
            self.call("/api/v2/status")
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:  # answered, but not as Alertmanager's API would
                raise AlertmanagerRefused(
                    f"HTTP {exc.code} for Alertmanager's status: check alertmanager_url "
                    "(http or https, route prefix)", source=exc.url) from None
            log.warning("Alertmanager is not ready at %s (HTTP %s)", self.url, exc.code)
            return False
        except OSError as exc:
            log.warning("Alertmanager does not answer yet at %s (%s)", self.url, exc)
            return False
        return True

    def post(self, alerts: list[PostableAlert]) -> None:
        self.call("/api/v2/alerts", json.dumps(alerts).encode())


@dataclass
class Notifier:
    kafka: KafkaConnection
    alertmanager: AlertmanagerEndpoint
    group: str = "vigie-notifier"
    batch: int = 100
    stats_posted: int = 0
    _stopping: bool = False

    def stop(self, *_: object) -> None:
        self._stopping = True

    def post(self, alerts: list[PostableAlert]) -> None:
        self.alertmanager.post(alerts)

    def run(self, idle_exit_s: float | None = None) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.alertmanager.check()  # wrong credentials stop here, before any alert is read
        consumer = self.kafka.consumer(self.group, **{"auto.offset.reset": "earliest"})
        consumer.subscribe([ALERTS.name])
        last = time.monotonic()
        try:
            while not self._stopping:
                messages = [m for m in consumer.consume(self.batch, timeout=1.0)
                            if not m.error()]
                if not messages:
                    if idle_exit_s is not None and time.monotonic() - last > idle_exit_s:
                        break
                    continue
                last = time.monotonic()
                self._deliver(consumer, messages)
        finally:
            consumer.close()
        return self.stats_posted

    def _deliver(self, consumer: Consumer, messages: list[Message]) -> None:
        bodies: list[PostableAlert] = []
        for message in messages:
            try:
                # A tombstone (no value) is as unreadable as an empty record.
                alert = Alert.model_validate_json(message.value() or b"")
                bodies.append(to_alertmanager(alert))
            except ValueError as exc:
                metrics.ERRORS.labels(STAGE, "bad_alert").inc()
                log.error("unreadable alert at %s/%s: %s", message.partition(),
                          message.offset(), exc)
        backoff = Backoff(base=0.5, cap=30)
        delivered = not bodies
        while not delivered and not self._stopping:
            try:
                self.post(bodies)
                delivered = True
            except (urllib.error.URLError, OSError) as exc:
                metrics.ERRORS.labels(STAGE, "alertmanager").inc()
                delay = backoff.next_delay()
                log.warning("Alertmanager unreachable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
        if not delivered:
            return  # stopping before delivery: no commit, the alerts will be re-read
        self.stats_posted += len(bodies)
        metrics.EVENTS_OUT.labels(STAGE, "alertmanager").inc(len(bodies))
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed (%s): alerts will be re-posted (Alertmanager dedups)",
                        exc)
