"""Faust agents of the correlation stage: detections → incidents → campaigns → alerts.

State lives in Faust tables (changelogged to Kafka, recovered after a restart). Records are
handled one at a time so that each table write goes to the changelog partition of the record
being processed, and each output is acknowledged by the broker before the record counts as
done. Replays are harmless: incident ids are deterministic and re-applied detections,
sightings and alert steps are recognised and change nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import faust
from pydantic import ValidationError

from processors.alerting.decide import decide
from processors.alerting.rules import load_alert_rules
from processors.incidents.campaigns import (
    add_sighting,
    campaign_incident,
    indicator_of,
    sighting,
)
from processors.incidents.config import ScoringConfig
from processors.incidents.lifecycle import correlate, prune, resolve_stale, to_incident
from runtime import metrics
from schemas.detection import Detection
from schemas.incident import Incident
from schemas.topics import ALERTS, DETECTIONS, INCIDENT_TICKS, INCIDENTS, INDICATORS

log = logging.getLogger(__name__)

Deliver = Callable[[list[tuple[faust.TopicT, bytes | None, bytes]]], Awaitable[None]]
KEEP_RESOLVED = timedelta(days=7)


def register(app: faust.App, scoring: ScoringConfig, deliver: Deliver,
             tick_seconds: float = 60.0) -> None:
    """Add the correlation agents, tables and the resolution timer to ``app``."""
    rules = load_alert_rules()
    detections = app.topic(DETECTIONS.name, INCIDENT_TICKS.name, key_type=bytes,
                           value_type=bytes)
    ticks = app.topic(INCIDENT_TICKS.name, key_type=bytes, value_type=bytes)
    incidents = app.topic(INCIDENTS.name, key_type=bytes, value_type=bytes)
    indicators = app.topic(INDICATORS.name, key_type=bytes, value_type=bytes)
    alerts = app.topic(ALERTS.name, key_type=bytes, value_type=bytes)

    # Keys are the UTF-8 strings of the source topics' keys, values JSON.
    schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    by_establishment = app.Table("incidents-by-establishment", default=list, schema=schema,
                                 partitions=DETECTIONS.partitions)
    sightings = app.Table("campaign-sightings", default=None, schema=schema,
                          partitions=INDICATORS.partitions)
    paged = app.Table("alert-memory", default=None, schema=schema,
                      partitions=INCIDENTS.partitions)
    published = metrics.EVENTS_OUT.labels("processor", INCIDENTS.name)

    def incident_output(incident: Incident) -> tuple[faust.TopicT, bytes, bytes]:
        published.inc()
        return (incidents, incident.id.encode(), incident.to_json_bytes())

    async def guarded(stage: str, handle: Callable[[faust.EventT], Awaitable[None]],
                      event: faust.EventT) -> None:
        """One record's failure must not crash-loop the agent: Faust would restart it and
        ack the record anyway. Log it loudly with its coordinates and count it."""
        try:
            await handle(event)
        except Exception:
            metrics.ERRORS.labels("processor", stage).inc()
            log.exception("%s failed on %s[%s]@%s", stage, event.message.topic,
                          event.message.partition, event.message.offset)

    @app.agent(detections)
    async def correlate_detections(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await guarded("correlate", correlate_one, event)

    async def correlate_one(event: faust.EventT) -> None:
        org = (event.key or b"").decode()
        states = list(by_establishment[org])
        outputs: list[tuple[faust.TopicT, bytes | None, bytes]] = []
        if event.message.topic == INCIDENT_TICKS.name:
            now = datetime.now(UTC)
            for state in resolve_stale(states, now, scoring):
                outputs.append(incident_output(to_incident(state, scoring)))
            kept = prune(states, now, KEEP_RESOLVED)
            if outputs or len(kept) != len(states):
                by_establishment[org] = kept
        else:
            try:
                detection = Detection.model_validate_json(event.value)
            except ValidationError as exc:
                metrics.ERRORS.labels("processor", "bad_detection").inc()
                log.error("unreadable detection at %s/%s: %s", event.message.partition,
                          event.message.offset, exc)
                return
            state = correlate(states, detection, scoring)
            if state is None:
                return
            by_establishment[org] = states
            incident = to_incident(state, scoring)
            outputs.append(incident_output(incident))
            opened = len(state["detection_ids"]) == 1
            indicator = indicator_of(detection, scoring) if opened else None
            if indicator:
                outputs.append((indicators, indicator.encode(),
                                json.dumps(sighting(indicator, incident)).encode()))
        await deliver(outputs)

    @app.agent(indicators)
    async def national_campaigns(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await guarded("campaigns", campaign_one, event)

    async def campaign_one(event: faust.EventT) -> None:
        seen = json.loads(event.value)
        added = add_sighting(sightings.get(seen["indicator"]), seen, scoring)
        if added is None:
            return  # a replayed sighting
        state, campaign = added
        sightings[seen["indicator"]] = state
        if campaign:
            await deliver([incident_output(campaign_incident(state))])

    @app.agent(incidents)
    async def alerting(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await guarded("alerting", alert_one, event)

    async def alert_one(event: faust.EventT) -> None:
        if not event.value:
            return  # compaction tombstone
        incident = Incident.model_validate_json(event.value)
        memory = paged.get(incident.id)
        if memory and incident.version <= memory.get("version", 0):
            return  # a state already handled, replayed
        out, memory = decide(incident, rules, memory)
        memory["version"] = incident.version
        paged[incident.id] = memory
        await deliver([(alerts, a.incident_id.encode(), a.to_json_bytes()) for a in out])

    @app.timer(tick_seconds)
    async def wake_up_establishments() -> None:
        """Resolution needs time to pass without events: tick each establishment that has
        open incidents, through a topic co-partitioned with detections."""
        for org, states in list(by_establishment.items()):
            if any(s["status"] == "open" for s in states):
                await ticks.send(key=org.encode(), value=b"{}")


__all__ = ["register"]
