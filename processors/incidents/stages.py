"""Faust wiring of the correlation stage: detections → incidents → campaigns → alerts.

What each stage does is in its own class, pure and tested without Faust:
``IncidentStage`` (``lifecycle``), ``CampaignStage`` (``campaigns``), ``AlertStage``
(``processors.alerting.decide``). This module only connects them to topics and tables.

State lives in Faust tables (changelogged to Kafka, recovered after a restart; value shapes in
``processors.incidents.state`` and ``AlertMemory``). Records are handled one at a time so that
each table write goes to the changelog partition of the record being processed, and each output
is acknowledged by the broker before the record counts as done. Replays are harmless: incident
ids are deterministic and re-applied detections, sightings and alert steps are recognised and
change nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import cast

import faust
from faust.types import TableT
from pydantic import ValidationError

from processors.alerting.decide import AlertMemory, AlertStage
from processors.alerting.rules import load_alert_rules
from processors.incidents.campaigns import CampaignStage
from processors.incidents.config import ScoringConfig
from processors.incidents.lifecycle import IncidentStage, Tick
from processors.incidents.state import CampaignState, EstablishmentIncidents, Sighting
from processors.outputs import Output, document
from runtime import metrics
from schemas.detection import Detection
from schemas.incident import Incident
from schemas.topics import ALERTS, DETECTIONS, INCIDENT_TICKS, INCIDENTS, INDICATORS

log = logging.getLogger(__name__)

Deliver = Callable[[list[Output]], Awaitable[None]]
Handler = Callable[[faust.EventT[bytes]], Awaitable[None]]


def _table(app: faust.App, name: str, partitions: int, default: type | None) -> TableT:
    """A table keyed by the UTF-8 string of its source topic's key, JSON values."""
    schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw",
                                        value_serializer="json")
    return app.Table(name, default=default, schema=schema, partitions=partitions)


def _guarded(stage: str, handle: Handler) -> Callable[[faust.StreamT[bytes]], Awaitable[None]]:
    """The agent body: one record's failure must not crash-loop the agent (Faust would restart
    it and ack the record anyway). Log it loudly with its coordinates and count it."""

    async def agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                await handle(event)
            except Exception:
                metrics.ERRORS.labels("processor", stage).inc()
                log.exception("%s failed on %s[%s]@%s", stage, event.message.topic,
                              event.message.partition, event.message.offset)

    return agent


def _read_detection(event: faust.EventT[bytes]) -> Detection | Tick | None:
    """A tick, a detection, or None for an unreadable detection (logged and counted)."""
    if event.message.topic == INCIDENT_TICKS.name:
        return Tick(datetime.now(UTC))
    try:
        return Detection.model_validate_json(event.value)
    except ValidationError as exc:
        metrics.ERRORS.labels("processor", "bad_detection").inc()
        log.error("unreadable detection at %s/%s: %s", event.message.partition,
                  event.message.offset, exc)
        return None


class _Wiring:
    """Per record: read it, give it to its stage with the stored state, write back what the
    stage returns, deliver its outputs. No decision is taken here."""

    def __init__(self, app: faust.App, scoring: ScoringConfig, deliver: Deliver) -> None:
        self.deliver = deliver
        self.detections = app.topic(DETECTIONS.name, INCIDENT_TICKS.name, key_type=bytes,
                                    value_type=bytes)
        self.ticks = app.topic(INCIDENT_TICKS.name, key_type=bytes, value_type=bytes)
        self.incidents = app.topic(INCIDENTS.name, key_type=bytes, value_type=bytes)
        self.indicators = app.topic(INDICATORS.name, key_type=bytes, value_type=bytes)
        self.alerts = app.topic(ALERTS.name, key_type=bytes, value_type=bytes)
        self.by_establishment = _table(app, "incidents-by-establishment",
                                       DETECTIONS.partitions, list)
        self.sightings = _table(app, "campaign-sightings", INDICATORS.partitions, None)
        self.paged = _table(app, "alert-memory", INCIDENTS.partitions, None)
        self.incident_stage = IncidentStage(scoring)
        self.campaign_stage = CampaignStage(scoring)
        self.alert_stage = AlertStage(load_alert_rules())
        self.published = metrics.EVENTS_OUT.labels("processor", INCIDENTS.name)

    def incident_outputs(self, changed: list[Incident]) -> list[Output]:
        self.published.inc(len(changed))
        return [document(self.incidents, i.id.encode(), i) for i in changed]

    async def correlate_one(self, event: faust.EventT[bytes]) -> None:
        received = _read_detection(event)
        if received is None:
            return
        org = (event.key or b"").decode()
        stored = cast(EstablishmentIncidents, self.by_establishment[org])
        changes = self.incident_stage.handle(stored, received)
        if changes.stored is not None:
            self.by_establishment[org] = changes.stored
        await self.deliver(self.incident_outputs(changes.incidents) + [
            Output(self.indicators, s["indicator"].encode(), json.dumps(s).encode())
            for s in changes.sightings])

    async def campaign_one(self, event: faust.EventT[bytes]) -> None:
        seen = cast(Sighting, json.loads(event.value))
        stored = cast(CampaignState | None, self.sightings.get(seen["indicator"]))
        changes = self.campaign_stage.handle(stored, seen)
        if changes.stored is not None:
            self.sightings[seen["indicator"]] = changes.stored
        if changes.campaign is not None:
            await self.deliver(self.incident_outputs([changes.campaign]))

    async def alert_one(self, event: faust.EventT[bytes]) -> None:
        if not event.value:
            return  # compaction tombstone
        incident = Incident.model_validate_json(event.value)
        stored = cast(AlertMemory | None, self.paged.get(incident.id))
        changes = self.alert_stage.handle(stored, incident)
        if changes.stored is None:
            return  # a state already handled, replayed
        self.paged[incident.id] = changes.stored
        await self.deliver([document(self.alerts, a.incident_id.encode(), a)
                            for a in changes.alerts])

    async def wake_up_establishments(self) -> None:
        """Resolution needs time to pass without events: tick each establishment that has
        open incidents, through a topic co-partitioned with detections."""
        for org, stored in list(self.by_establishment.items()):
            if IncidentStage.needs_tick(stored):
                await self.ticks.send(key=org.encode(), value=b"{}")


def register(app: faust.App, scoring: ScoringConfig, deliver: Deliver,
             tick_seconds: float = 60.0) -> None:
    """Add the correlation agents, tables and the resolution timer to ``app``."""
    wiring = _Wiring(app, scoring, deliver)
    app.agent(wiring.detections, name="correlate_detections")(
        _guarded("correlate", wiring.correlate_one))
    app.agent(wiring.indicators, name="national_campaigns")(
        _guarded("campaigns", wiring.campaign_one))
    app.agent(wiring.incidents, name="alerting")(_guarded("alerting", wiring.alert_one))
    app.timer(tick_seconds, name="wake_up_establishments")(wiring.wake_up_establishments)


__all__ = ["register"]
