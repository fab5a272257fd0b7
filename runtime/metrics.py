"""Prometheus metrics shared by the long-running processes.

One set of metric names with a ``stage`` label (simulator, agent, processor, sink) so that one
Grafana panel shows the whole flow and a gap between ``out`` of one stage and ``in`` of the
next is visible at a glance.

``/metrics`` tells whoever reads it which topics flow, how many records each establishment's
agent refuses and when the platform struggles: it is served on the loopback interface unless
an operator names another address (``metrics_host``), and over TLS, optionally requiring a
client certificate, when :class:`MetricsTls` is filled in. prometheus-client has no basic
auth for its server; a client certificate (``client_cafile``) is how a scraper proves who it is.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.errors import ConfigurationError

log = logging.getLogger(__name__)

#: Default bind address: the host itself only (a local Prometheus or an SSH tunnel scrapes it).
DEFAULT_HOST = "127.0.0.1"

#: Default metrics port per stage, so processes on one host do not collide.
DEFAULT_PORTS = {
    "simulator": 9401,
    "processor": 9402,
    "sink": 9403,
    "agent": 9404,
    "notifier": 9405,
}

EVENTS_IN = Counter("vigie_events_in_total", "Records read by a stage", ["stage", "topic"])
EVENTS_OUT = Counter("vigie_events_out_total", "Records written by a stage", ["stage", "topic"])
DEAD_LETTERS = Counter(
    "vigie_dead_letters_total", "Records refused, by reason", ["stage", "reason"]
)
ERRORS = Counter("vigie_errors_total", "Errors a stage recovered from", ["stage", "kind"])
BATCH_SECONDS = Histogram(
    "vigie_batch_seconds",
    "Time to process and acknowledge one batch",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

DEMO_MODE = Gauge("vigie_demo_mode", "1 when the processor trusts simulated agents (demo mode: "
                  "never in production)")
SIGNATURES_REQUIRED = Gauge("vigie_signatures_required",
                            "1 when the processor refuses records not signed by an enrolled "
                            "agent, 0 when verification is off (demo mode only)")
AGENTS = Gauge("vigie_agents", "Agents the processor trusts or knows revoked, by registry",
               ["registry", "status"])


class MetricsTls(BaseModel):
    """TLS for ``/metrics``: the server's certificate and key, and optionally the CA whose
    client certificates alone may scrape (mutual TLS). Empty: plain HTTP.

    YAML: ``metrics_tls: {certfile: metrics.pem, keyfile: metrics.key, client_cafile: ca.pem}``;
    national processes also read ``VIGIE_METRICS_TLS__<FIELD>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    certfile: Path | None = Field(None, description="Server certificate of /metrics (PEM)")
    keyfile: Path | None = Field(None, description="Its private key (PEM, unencrypted)")
    client_cafile: Path | None = Field(
        None, description="Only scrapers with a client certificate signed by this CA may read")

    @property
    def enabled(self) -> bool:
        return self.certfile is not None

    @model_validator(mode="after")
    def _consistent(self) -> MetricsTls:
        """Refuse a half-configured TLS that would silently leave /metrics in clear."""
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("metrics TLS needs both certfile and keyfile")
        if self.client_cafile is not None and self.certfile is None:
            raise ValueError("metrics client_cafile needs certfile and keyfile (TLS)")
        return self

    def rebased(self, base: Path) -> MetricsTls:
        """The same files with relative paths taken under ``base`` (the configuration's
        folder)."""
        updates = {name: base / path
                   for name in ("certfile", "keyfile", "client_cafile")
                   if (path := getattr(self, name)) is not None and not path.is_absolute()}
        return self.model_copy(update=updates) if updates else self

    def check(self) -> None:
        """Load the files once before serving, so that a wrong path or key stops the process
        with a configuration error instead of passing for a port already taken."""
        if not self.enabled:
            return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(str(self.certfile), str(self.keyfile))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load the metrics certificate and key: {exc}",
                                     source=str(self.certfile)) from None
        if self.client_cafile is not None:
            try:
                context.load_verify_locations(str(self.client_cafile))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(f"cannot load the metrics client CA: {exc}",
                                         source=str(self.client_cafile)) from None


def serve_metrics(stage: str, port: int = 0, *, host: str = DEFAULT_HOST,
                  tls: MetricsTls | None = None) -> int | None:
    """Expose /metrics on ``host``:``port`` (0: the stage's default). Returns the port, or
    None.

    A port already taken must not stop the pipeline: the process logs it and runs without
    metrics rather than losing events. A TLS configuration that does not load is an operator's
    mistake and raises :class:`~runtime.errors.ConfigurationError`.
    """
    chosen = port or DEFAULT_PORTS.get(stage, 9400)
    tls = tls or MetricsTls()
    tls.check()
    try:
        start_http_server(
            chosen, addr=host,
            certfile=str(tls.certfile) if tls.certfile else None,
            keyfile=str(tls.keyfile) if tls.keyfile else None,
            client_cafile=str(tls.client_cafile) if tls.client_cafile else None,
            client_auth_required=tls.client_cafile is not None,
            tls_min_version=ssl.TLSVersion.TLSv1_2)
    except OSError as exc:
        log.warning("metrics not exposed: %s:%s unavailable (%s)", host, chosen, exc)
        return None
    scheme = "https" if tls.enabled else "http"
    log.info("metrics on %s://%s:%s/metrics%s", scheme, host, chosen,
             " (client certificate required)" if tls.client_cafile else "")
    return chosen
