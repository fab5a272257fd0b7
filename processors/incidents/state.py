"""What the incident and campaign stages keep in their Faust tables, with its shape declared.

Faust stores each table value as JSON in a compacted changelog topic, and a restarted worker
reads back whatever an earlier version wrote. These TypedDicts describe that JSON key for key
(they are plain dicts at run time, serialised exactly as before): a field added here must be
``NotRequired`` and a field renamed needs a migration of the changelog, never a silent change.

- ``incidents-by-establishment``: establishment id → ``list[IncidentState]`` (its incidents,
  open ones and resolved ones kept a week);
- ``campaign-sightings``: indicator (``kind:value``) → ``CampaignState``;
- ``vigie.indicators`` (a topic, not a table): one ``Sighting`` per incident opened with an
  indicator, keyed by the indicator.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from schemas.organization import Organization


class OrganizationRecord(TypedDict):
    """An establishment as stored: ``Organization.model_dump(mode="json")``."""

    id: str
    name: str
    type: str
    region: str


def organization_record(org: Organization) -> OrganizationRecord:
    """What ``org.model_dump(mode="json")`` gives, typed (a unit test checks they agree)."""
    return {"id": org.id, "name": org.name, "type": org.type.value, "region": org.region.value}


class IncidentState(TypedDict):
    """One incident of an establishment, as the incident stage updates it."""

    id: str
    organization: OrganizationRecord
    category: str  # a ``Category`` value
    status: str  # a ``Status`` value: open or resolved
    severity: str  # a ``Severity`` value; it only ever rises
    first_seen: str  # ISO 8601, earliest evidence
    last_seen: str  # ISO 8601, latest evidence
    hosts: list[str]
    users: list[str]
    detection_ids: list[str]  # every detection attached (de-duplication), bounded
    event_ids: list[str]
    levels: dict[str, int]  # rule level → detections at that level
    rules: dict[str, int]  # rule id → detections of that rule
    techniques: list[str]
    title: str  # the title of the rule that opened it
    version: int  # +1 per change: the sink and the alert stage keep only the newest


#: The value of ``incidents-by-establishment``: every incident the establishment still has.
EstablishmentIncidents = list[IncidentState]


class Sighting(TypedDict):
    """An establishment incident seen with an indicator: what ``vigie.indicators`` carries."""

    indicator: str  # ``kind:value``, e.g. ``file_hash:…``, ``rule:<id>``
    incident_id: str
    organization: OrganizationRecord
    category: str
    title: str
    techniques: list[str]
    first_seen: str  # ISO 8601, when the establishment's incident began


class CampaignState(TypedDict):
    """The value of ``campaign-sightings``: recent sightings of one indicator."""

    indicator: str
    sightings: list[Sighting]  # within the campaign window, sorted by (first_seen, incident)
    version: int
    #: Set once, when the sightings first span K establishments: the campaign's stable id.
    campaign_id: NotRequired[str]


__all__ = ["CampaignState", "EstablishmentIncidents", "IncidentState", "OrganizationRecord",
           "Sighting", "organization_record"]
