"""Faust wiring of Sigma correlation rules: ``vigie.correlation-inputs`` → windows → detections.

The processor's classification step publishes a *signal* (a ``Detection`` of a rule that
correlations count, published or not) on ``vigie.correlation-inputs``, keyed by establishment
and co-partitioned with ``detections``. This agent keeps one window state per
(establishment, correlation rule, group-by values) in a Faust table — changelogged to Kafka,
restored after a restart — and publishes each correlation match as a ``Detection`` on
``detections``, where the incident stage picks it up like any other.

Records are handled one at a time, so each table write goes to the changelog partition of the
record being processed; a match is acknowledged by the broker *before* the state that marks
its events as used is written. A crash therefore at worst re-publishes a match, under the
same deterministic id (an overwrite), and the restored state recognises replayed signals by
event id: a correlation fires once per set of evidence, restart or not.

What the stage does is ``SigmaCorrelationStage`` (``signals``), pure and tested without Faust;
this module only connects it to the topic, the table and the timer.

A timer sends ticks (through the same topic, so they land in the establishment's partition)
for states the wall clock has left behind: they close ``lt``/``lte``/``eq``/``neq`` windows and
delete states with nothing left to remember, which keeps the table bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import faust

from processors.detection.correlation.evaluate import DEFAULT_LATENESS_S
from processors.detection.correlation.model import CorrelationSet
from processors.detection.correlation.signals import SigmaCorrelationStage, WindowChanges
from processors.outputs import Output, document
from runtime import metrics
from schemas.topics import CORRELATION_INPUTS, DETECTIONS

log = logging.getLogger(__name__)

Deliver = Callable[[list[Output]], Awaitable[None]]


class _Wiring:
    """Per record: read it, let the stage evaluate it against the stored windows, deliver the
    detections, then write the windows back. No decision is taken here."""

    def __init__(self, app: faust.App, stage: SigmaCorrelationStage, deliver: Deliver) -> None:
        self.stage = stage
        self.deliver = deliver
        self.inputs = app.topic(CORRELATION_INPUTS.name, key_type=bytes, value_type=bytes)
        self.detections = app.topic(DETECTIONS.name, key_type=bytes, value_type=bytes)
        schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw",
                                            value_serializer="json")
        self.windows = app.Table("sigma-correlation-windows", default=None, schema=schema,
                                 partitions=CORRELATION_INPUTS.partitions)
        self.published = metrics.EVENTS_OUT.labels("processor", "detections.correlation")

    async def correlate_signals(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            org = (event.key or b"").decode()
            try:
                changes = self.stage.handle(org, self.stage.read(event.value), self.windows.get)
            except (ValueError, TypeError, KeyError) as exc:  # ValidationError is a ValueError
                metrics.ERRORS.labels("processor", "bad_signal").inc()
                log.error("unreadable correlation input at %s/%s: %s",
                          event.message.partition, event.message.offset, exc)
                continue
            await self.apply(org, changes)

    async def apply(self, org: str, changes: WindowChanges) -> None:
        self.published.inc(len(changes.detections))
        await self.deliver([document(self.detections, org.encode(), d)
                            for d in changes.detections])
        for key, state in changes.updates.items():  # after the matches are acknowledged
            if state is not None:
                self.windows[key] = state
            elif key in self.windows:
                del self.windows[key]

    async def close_windows(self) -> None:
        """Windows must close and old state go even when an establishment falls silent."""
        for org, tick in self.stage.ticks_due(list(self.windows.items()), time.time()).items():
            await self.inputs.send(key=org.encode(), value=tick.to_json_bytes())


def register(app: faust.App, correlations: CorrelationSet, deliver: Deliver,
             tick_seconds: float = 30.0,
             lateness_s: float = DEFAULT_LATENESS_S) -> faust.TopicT:
    """Add the correlation agent, its table and its timer to ``app``.

    Returns the topic the processor sends ``Verdict.signals`` to (key: establishment id).
    """
    wiring = _Wiring(app, SigmaCorrelationStage(correlations, lateness_s), deliver)
    app.agent(wiring.inputs, name="correlate_signals")(wiring.correlate_signals)
    app.timer(tick_seconds, name="close_windows")(wiring.close_windows)
    return wiring.inputs


__all__ = ["register"]
