"""``vigie agent run``: the long-running agent loop, and ``ingest`` for one-shot imports.

One thread does the work, in a fixed order that makes restarts safe::

    poll sources → finish (pseudonymise, validate) → spool.append (fsync, numbered)
    → save positions → shipper.pump (sign with the number, Kafka) → status file every 2 s

Positions are saved only after the records are in the spool; the spool is acknowledged only
after Kafka committed the transaction that carried them (:mod:`.ship`). SIGTERM/SIGINT stop
the polling, spool what was read, give Kafka up to ``--drain`` seconds to commit, abort what
is still open, save everything and exit 0; what Kafka did not commit stays in the spool for
the next start.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.agent.clock import FutureCheck, resolve_timezone
from producers.agent.config import (
    AgentConfig,
    AuthlogSource,
    CefSource,
    EvtxSource,
    JsonSource,
    SyslogSourceConfig,
)
from producers.agent.filters import filtered
from producers.agent.pipeline import Finisher
from producers.agent.positions import PositionStore
from producers.agent.privacy.configured import pseudonymiser_for
from producers.agent.pseudonymise import Pseudonymiser
from producers.agent.quarantine import Quarantine
from producers.agent.ship import Shipper
from producers.agent.sources.authlog import authlog_source
from producers.agent.sources.base import Context, Source
from producers.agent.sources.cef import cef_source
from producers.agent.sources.evtx import WindowsFileSource
from producers.agent.sources.jsonfile import json_source
from producers.agent.sources.syslog import SyslogServer, SyslogSource
from producers.agent.spool import Spool
from producers.signing import Signer, load_key
from runtime import metrics
from schemas.topics import EVENTS_RAW

log = logging.getLogger(__name__)

BATCH = 2000


def make_pseudonymiser(config: AgentConfig) -> Pseudonymiser | None:
    return pseudonymiser_for(config)  # the privacy policy's own factory (producers.agent.privacy)


def build_sources(config: AgentConfig, ctx: Context, positions: PositionStore) -> list[Source]:
    sources: list[Source] = []
    for sc in config.sources:
        pos = positions.get(sc.name)
        if isinstance(sc, EvtxSource):
            sources.append(WindowsFileSource(sc.name, sc.paths, ctx, pos))
        elif isinstance(sc, JsonSource):
            sources.append(json_source(sc.name, sc.paths, ctx, pos, from_end=sc.from_end,
                                       max_record_bytes=sc.max_record_bytes))
        elif isinstance(sc, AuthlogSource):
            sources.append(authlog_source(sc.name, sc.path, ctx, pos, from_end=sc.from_end,
                                          max_record_bytes=sc.max_record_bytes))
        elif isinstance(sc, CefSource):
            sources.append(cef_source(sc.name, sc.path, ctx, pos, from_end=sc.from_end,
                                      max_record_bytes=sc.max_record_bytes))
        elif isinstance(sc, SyslogSourceConfig):
            sources.append(SyslogSource(SyslogServer(
                sc.name, sc.protocol, sc.host, sc.port, ctx, certfile=sc.tls_cert,
                keyfile=sc.tls_key, max_frame=sc.max_frame, client_ca=sc.tls_client_ca,
                require_client_cert=sc.require_client_cert)))
    return [filtered(s, sc) for s, sc in zip(sources, config.sources, strict=True)]


def agent_context(config: AgentConfig | None, establishment_id: str,
                  agent_id: str) -> Context:
    """The context sources run in: the configured zone (default: the host's) for times that
    carry none, and the quarantine file in the state directory for what they refuse.
    Without a configuration (a dry run), the host's zone and no quarantine file (refused
    records are still counted and summarised)."""
    if config is None:
        return Context(establishment_id, agent_id, resolve_timezone(None))
    quarantine = None
    if config.quarantine.enabled:
        settings = config.quarantine
        quarantine = Quarantine(config.quarantine_path, max_bytes=settings.max_bytes,
                                keep=settings.keep, head_bytes=settings.head_bytes)
    return Context(establishment_id, agent_id, resolve_timezone(config.timezone),
                   quarantine=quarantine)


def malformed_summary(ctx: Context) -> str:
    """One line: how many records were refused, why, and where they are kept."""
    total = sum(ctx.malformed.values())
    reasons = ", ".join(f"{source}/{reason}={count}"
                        for (source, reason), count in sorted(ctx.malformed.items()))
    where = (f"; quarantined in {ctx.quarantine.path}" if ctx.quarantine is not None
             else "; no quarantine file (no --config)")
    return f"{total} malformed records" + (f" ({reasons}){where}" if total else "")


class Agent:
    """Everything one running agent holds; ``run()`` until ``stop()``."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.ctx = agent_context(config, config.establishment.id, config.agent_id)
        log.info("timestamps without a zone are read in %s", self.ctx.tz)
        signer = Signer(config.agent_id, load_key(config.key_path))
        self.finisher = Finisher(config.establishment, signer, make_pseudonymiser(config),
                                 future=FutureCheck(config.future_tolerance_s))
        self.positions = PositionStore(config.positions_path)
        self.spool = Spool(config.spool_dir, max_bytes=config.spool.max_bytes,
                           policy=config.spool.full_policy,
                           segment_bytes=config.spool.segment_bytes, fsync=config.spool.fsync,
                           first_seq=time.time_ns() // 1000)
        self.shipper = Shipper(self.spool, kafka=config.kafka,
                               topic=EVENTS_RAW.name, signer=signer, eps=config.eps,
                               max_in_flight=config.max_in_flight)
        self.sources = build_sources(config, self.ctx, self.positions)
        self.read = 0
        self.keep_positions = True
        self._stop = threading.Event()
        self._rate: list[tuple[float, int]] = []
        self._status_at = 0.0
        self.started = datetime.now(UTC)

    def stop(self, *_: Any) -> None:
        if not self._stop.is_set():
            log.info("stop requested: finishing the current batch, then draining to Kafka")
        self._stop.set()

    def step(self) -> int:
        """One round: read sources into the spool, ship. Returns the records moved."""
        moved = 0
        if not (self.spool.full and self.spool.policy == "block"):
            for source in self.sources:
                docs = source.poll(BATCH)
                if docs:
                    metrics.EVENTS_IN.labels("agent", source.name).inc(len(docs))
                    self.read += len(docs)
                    self.spool.append([self.finisher.record(d, source.name) for d in docs])
                    moved += len(docs)
                position = source.position() if self.keep_positions else None
                if position is not None:
                    self.positions.update(source.name, position)
            if moved and self.keep_positions:
                self.positions.save()
        moved += self.shipper.pump()
        now = time.monotonic()
        if now - self._status_at >= 2:
            self._status_at = now
            self.write_status()
        return moved

    def run(self, drain: float = 30.0, until_idle: bool = False) -> int:
        """Loop until stopped (or, with ``until_idle``, until sources and spool are empty).
        Returns the number of records still unacknowledged at exit."""
        for source in self.sources:
            source.start()
        log.info("agent %s for establishment %s: %d source(s), spool %s (%d records waiting)",
                 self.config.agent_id, self.config.establishment.id, len(self.sources),
                 self.config.spool_dir, self.spool.depth)
        try:
            while not self._stop.is_set():
                moved = self.step()
                if until_idle and moved == 0 and self.spool.depth == 0 \
                        and not self.shipper.in_flight:
                    break
                if moved == 0:
                    self._stop.wait(0.05 if self.shipper.in_flight else 0.2)
        finally:
            for source in self.sources:
                source.close()
            # Whatever the sources handed over is spooled already; give Kafka its chance.
            if self.keep_positions:
                self.positions.save()
            left = self._drain(drain)
            self.shipper.close()
            self.write_status()
            self.spool.close()
            if self.ctx.quarantine is not None:
                self.ctx.quarantine.close()
        if left:
            log.warning("%d records not yet acknowledged by Kafka stay in the spool for the "
                        "next start", left)
        log.info("agent stopped: %d read, %d delivered, spool depth %d", self.read,
                 self.shipper.delivered, self.spool.depth)
        return left

    def _drain(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.spool.depth or self.shipper.in_flight):
            if self.shipper.pump() == 0:
                self.shipper.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        return self.shipper.flush(0) + max(0, self.spool.depth - len(self.shipper.in_flight))

    def write_status(self) -> None:
        now = time.monotonic()
        self._rate.append((now, self.shipper.delivered))
        self._rate = [(t, n) for t, n in self._rate if now - t <= 60]
        t0, n0 = self._rate[0]
        rate = (self.shipper.delivered - n0) / (now - t0) if now > t0 else 0.0
        status = {
            "updated_at": datetime.now(UTC).isoformat(),
            "started_at": self.started.isoformat(),
            "agent_id": self.config.agent_id,
            "establishment_id": self.config.establishment.id,
            "read": self.read,
            "delivered": self.shipper.delivered,
            "send_rate_eps": round(rate, 1),
            "in_flight": len(self.shipper.in_flight),
            "spool_depth": self.spool.depth,
            "spool_bytes": self.spool.bytes,
            "spool_dropped": self.spool.dropped,
            "invalid": self.finisher.invalid,
            "malformed": {f"{s}/{r}": n for (s, r), n in self.ctx.malformed.items()},
            "quarantine": (str(self.ctx.quarantine.path) if self.ctx.quarantine is not None
                           else None),
            "future_timestamps": self.finisher.future.count,
            "last_error": self.shipper.last_error,
        }
        tmp = self.config.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1))
        tmp.replace(self.config.status_path)


def run_agent(config: AgentConfig, *, drain: float = 30.0) -> int:
    """Run until SIGTERM/SIGINT; exit code 0 on a clean stop."""
    metrics.serve_metrics("agent", config.metrics_port, host=config.metrics_host,
                          tls=config.metrics_tls)
    agent = Agent(config)
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
    agent.run(drain=drain)
    return 0


def dry_run_docs(paths: Iterable[Path], finisher: Finisher, ctx: Context,
                 fmt: str = "auto") -> Iterable[bytes]:
    """Parsed, pseudonymised event values of ``paths`` (for ``ingest --dry-run``)."""
    for source in file_sources(paths, ctx, fmt):
        while True:
            docs = source.poll(BATCH)
            if not docs:
                break
            for doc in docs:
                yield finisher.value(doc, source.name)[1]
        source.close()
    if ctx.quarantine is not None:
        ctx.quarantine.close()
    log.log(logging.WARNING if ctx.malformed else logging.INFO, "%s",
            malformed_summary(ctx))


def file_sources(paths: Iterable[Path], ctx: Context, fmt: str = "auto") -> list[Source]:
    """One source per path for a one-shot import, chosen by ``fmt`` or the file suffix."""
    out: list[Source] = []
    for index, path in enumerate(paths):
        kind = fmt
        if kind == "auto":
            suffix = path.suffix.lower()
            if suffix == ".evtx":
                kind = "evtx"
            elif suffix in (".json", ".jsonl", ".ndjson"):
                kind = "json"
            else:
                with path.open("rb") as fh:
                    head = fh.read(4096)
                kind = "cef" if b"CEF:" in head else "authlog"
        name = f"ingest{index}-{path.name}"[:64].replace(" ", "_")
        if kind == "evtx":
            out.append(WindowsFileSource(name, [str(path)], ctx))
        elif kind == "json":
            out.append(json_source(name, [str(path)], ctx))
        elif kind == "cef":
            out.append(cef_source(name, path, ctx))
        else:
            out.append(authlog_source(name, path, ctx))
    return out


def ingest(config: AgentConfig, paths: list[Path], fmt: str = "auto",
           drain: float = 300.0) -> tuple[int, int]:
    """Send every record of ``paths`` through the spool to Kafka; wait for the acks.
    Returns (records read, records still unacknowledged)."""
    agent = Agent(config.model_copy(update={"sources": []}))
    agent.sources = file_sources(paths, agent.ctx, fmt)
    agent.keep_positions = False  # a one-shot import is not a followed source
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
    left = agent.run(drain=drain, until_idle=True)
    return agent.read, left

