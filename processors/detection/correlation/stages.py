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

A timer sends ticks (through the same topic, so they land in the establishment's partition)
for states the wall clock has left behind: they close ``lt``/``lte``/``eq``/``neq`` windows and
delete states with nothing left to remember, which keeps the table bounded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

import faust
from pydantic import ValidationError

from processors.detection.correlation.evaluate import DEFAULT_LATENESS_S, Correlator, Outcome
from processors.detection.correlation.model import CorrelationSet
from processors.detection.correlation.signals import as_signal, to_detection
from runtime import metrics
from schemas.detection import Detection
from schemas.topics import CORRELATION_INPUTS, DETECTIONS

log = logging.getLogger(__name__)

Deliver = Callable[[list[tuple[faust.TopicT, bytes | None, bytes]]], Awaitable[None]]
#: Keys named in one tick record (the rest wait for the next tick).
MAX_KEYS_PER_TICK = 500


def register(app: faust.App, correlations: CorrelationSet, deliver: Deliver,
             tick_seconds: float = 30.0,
             lateness_s: float = DEFAULT_LATENESS_S) -> faust.TopicT:
    """Add the correlation agent, its table and its timer to ``app``.

    Returns the topic the processor sends ``Verdict.signals`` to (key: establishment id).
    """
    inputs = app.topic(CORRELATION_INPUTS.name, key_type=bytes, value_type=bytes)
    detections = app.topic(DETECTIONS.name, key_type=bytes, value_type=bytes)
    schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    windows = app.Table("sigma-correlation-windows", default=None, schema=schema,
                        partitions=CORRELATION_INPUTS.partitions)
    correlator = Correlator(correlations, lateness_s)
    published = metrics.EVENTS_OUT.labels("processor", "detections.correlation")

    def outputs_of(org: str, outcome: Outcome) -> list[tuple[faust.TopicT, bytes | None, bytes]]:
        out: list[tuple[faust.TopicT, bytes | None, bytes]] = []
        for match in outcome.matches:
            if not match.correlation.published:
                continue  # a step of a chain: it fed the next correlation, in-process
            try:
                record = to_detection(match).to_json_bytes()
            except (ValidationError, KeyError, ValueError) as exc:
                metrics.ERRORS.labels("processor", "correlation_output").inc()
                log.error("correlation %s: match %s not publishable: %s",
                          match.correlation.info.id, match.id, exc)
                continue
            published.inc()
            out.append((detections, org.encode(), record))
        return out

    @app.agent(inputs)
    async def correlate_signals(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            org = (event.key or b"").decode()
            try:
                # Ticks are tiny JSON objects; signals are Detections (strict: parsed from JSON).
                body = json.loads(event.value) if event.value.startswith(b'{"tick"') else None
                if body is not None:
                    outcome = Outcome()
                    for key in body.get("keys", []):
                        state = outcome.updates.get(key, windows.get(key))
                        if state is None or not key.startswith(f"{org}|"):
                            continue
                        step = correlator.expire(key, state, float(body["tick"]), windows.get)
                        outcome.updates.update(step.updates)
                        outcome.matches.extend(step.matches)
                else:
                    signal = as_signal(Detection.model_validate_json(event.value))
                    outcome = correlator.feed(org, signal, windows.get)
            except (ValueError, ValidationError, TypeError, KeyError) as exc:
                metrics.ERRORS.labels("processor", "bad_signal").inc()
                log.error("unreadable correlation input at %s/%s: %s",
                          event.message.partition, event.message.offset, exc)
                continue
            await deliver(outputs_of(org, outcome))
            for key, state in outcome.updates.items():  # after the matches are acknowledged
                if state is not None:
                    windows[key] = state
                elif key in windows:
                    del windows[key]

    @app.timer(tick_seconds)
    async def close_windows() -> None:
        """Windows must close and old state go even when an establishment falls silent."""
        now = time.time()
        due: dict[str, list[str]] = {}
        for key, state in list(windows.items()):
            if state is not None and correlator.due(key, state, now):
                due.setdefault(key.split("|", 1)[0], []).append(key)
        for org, keys in due.items():
            tick = {"tick": now, "keys": keys[:MAX_KEYS_PER_TICK]}
            await inputs.send(key=org.encode(), value=json.dumps(tick).encode())

    return inputs


__all__ = ["register"]
