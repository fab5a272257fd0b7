"""Incident: what an operator follows, and what an establishment may have to declare."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from schemas._base import WireModel
from schemas.event import EventId
from schemas.limits import Keyword, Text
from schemas.organization import Organization
from schemas.taxonomy import Category, Origin, Severity

MAX_LINKS = 500


class Status(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Scope(StrEnum):
    """An establishment's incident, or a national campaign linking several of them."""

    ESTABLISHMENT = "establishment"
    NATIONAL_CAMPAIGN = "national_campaign"


class ReportedVia(StrEnum):
    """How Vigie learnt of the incident: its sensors, or a structure's own declaration."""

    SENSOR = "sensor"
    DECLARATION = "declaration"


class Impacts(WireModel):
    """The four consequences that make a report mandatory (public health code L.1111-8-2)."""

    care_safety: bool = False
    confidentiality: bool = False
    integrity: bool = False
    availability: bool = False


class Counts(WireModel):
    detections: int = Field(default=0, ge=0)
    events: int = Field(default=0, ge=0)
    hosts: int = Field(default=0, ge=0)


class Incident(WireModel):
    """Latest state of an incident; published on the compacted ``incidents`` topic."""

    id: EventId
    scope: Scope = Scope.ESTABLISHMENT
    status: Status = Status.OPEN
    severity: Severity
    category: Category
    origin: Origin
    title: Text
    organizations: list[Organization] = Field(min_length=1, max_length=MAX_LINKS)
    impacts: Impacts = Field(default_factory=Impacts)
    declarable: bool = False
    declarable_reasons: list[Text] = Field(default_factory=list, max_length=16)
    techniques: list[Keyword] = Field(default_factory=list, max_length=64)
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    counts: Counts = Field(default_factory=Counts)
    detection_ids: list[EventId] = Field(default_factory=list, max_length=MAX_LINKS)
    linked_incident_ids: list[EventId] = Field(default_factory=list, max_length=MAX_LINKS)
    indicator: Keyword | None = None
    reported_via: ReportedVia = ReportedVia.SENSOR
    version: int = Field(default=1, ge=1)
    """Bumped on every change: consumers keep the highest version they saw."""
