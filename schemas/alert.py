"""Alert: an incident that an alert rule decided is worth paging someone for."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from schemas._base import WireModel
from schemas.event import EventId
from schemas.limits import Keyword, Name, Text
from schemas.taxonomy import Severity


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(WireModel):
    """One alert per incident and severity step; Alertmanager deduplicates on ``id``."""

    id: EventId
    timestamp: AwareDatetime = Field(alias="@timestamp")
    rule: Name
    incident_id: EventId
    status: AlertStatus
    severity: Severity
    summary: Text
    labels: dict[Keyword, Keyword] = Field(default_factory=dict, max_length=32)
