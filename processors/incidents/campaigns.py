"""National campaigns: the same indicator in at least K establishments within T.

Each establishment incident contributes one indicator, chosen when it opens from the detection
that opened it: a file hash, a public source address, a domain, else the rule itself if it is
serious enough. One indicator per incident keeps a phishing wave that trips four rules per
mailbox from becoming four campaigns. Sightings are repartitioned by indicator (a Kafka topic
keyed by it), so one worker sees every establishment that reports the same indicator.
``CampaignStage`` is that worker's logic: one sighting in, the campaign incident out.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from processors.incidents.config import ScoringConfig
from processors.incidents.state import (
    CampaignState,
    OrganizationRecord,
    Sighting,
    organization_record,
)
from schemas.detection import Detection
from schemas.identity import stable_id
from schemas.incident import MAX_LINKS, Counts, Impacts, Incident, Scope, Status
from schemas.organization import Organization
from schemas.taxonomy import Category, Severity, origin_of

# Sigma field names (as rules match them) that carry each kind of indicator.
_FIELDS = {
    "file_hash": ("Hashes", "sha256", "md5", "sha1", "Imphash", "file.hash.sha256"),
    "source_ip": ("IpAddress", "SourceIp", "src_ip", "source.ip"),
    "domain": ("QueryName", "DestinationHostname", "url.domain", "cs-host"),
    "sender": ("sender", "email.from.address"),
}


def _public(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).is_global
    except ValueError:
        return False


def indicator_of(detection: Detection, config: ScoringConfig) -> str | None:
    """``kind:value`` for the detection that opened an incident, or None."""
    wanted = config.campaigns.indicators
    for kind, fields in _FIELDS.items():
        if kind not in wanted:
            continue
        for name in fields:
            value = detection.matched.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
            if not isinstance(value, str) or not value:
                continue
            if kind == "source_ip" and not _public(value):
                continue
            return f"{kind}:{value.lower()}"
    if "rule" in wanted and detection.rule.level.rank >= config.campaigns.rule_min_level.rank:
        return f"rule:{detection.rule.id}"
    return None


def sighting(indicator: str, incident: Incident) -> Sighting:
    """What the incident stage sends on the indicators topic, keyed by ``indicator``."""
    return {
        "indicator": indicator,
        "incident_id": incident.id,
        "organization": organization_record(incident.organizations[0]),
        "category": incident.category.value,
        "title": incident.title,
        "techniques": incident.techniques,
        "first_seen": incident.first_seen.isoformat(),
    }


def add_sighting(state: CampaignState | None, seen: Sighting,
                 config: ScoringConfig) -> tuple[CampaignState, bool] | None:
    """Record a sighting in a copy of ``state``; returns (new state, whether it makes a
    campaign), or None when the sighting is already known (a replay)."""
    state = copy.deepcopy(state) if state else CampaignState(
        indicator=seen["indicator"], sightings=[], version=0)
    if any(s["incident_id"] == seen["incident_id"] for s in state["sightings"]):
        return None
    window = timedelta(minutes=config.campaigns.window_minutes)
    newest = max([datetime.fromisoformat(seen["first_seen"])]
                 + [datetime.fromisoformat(s["first_seen"]) for s in state["sightings"]])
    kept = [s for s in state["sightings"]
            if newest - datetime.fromisoformat(s["first_seen"]) <= window]
    kept.append(seen)
    kept.sort(key=lambda s: (s["first_seen"], s["incident_id"]))
    state["sightings"] = kept[:MAX_LINKS]
    state["version"] += 1
    campaign = len(_establishments(state)) >= config.campaigns.min_establishments
    if campaign and "campaign_id" not in state:
        # Named once, when it becomes a campaign: sightings arrive in any order (incidents
        # open on different partitions), and one arriving later with an earlier first_seen
        # must extend this campaign, not start another one under a new id.
        first = state["sightings"][0]
        state["campaign_id"] = stable_id("campaign", state["indicator"], first["first_seen"],
                                         first["incident_id"])
    return state, campaign


def _establishments(state: CampaignState) -> dict[str, OrganizationRecord]:
    orgs: dict[str, OrganizationRecord] = {}
    for s in state["sightings"]:
        orgs.setdefault(s["organization"]["id"], s["organization"])
    return orgs


def campaign_incident(state: CampaignState) -> Incident:
    """The national campaign incident for an indicator's sightings."""
    sightings = state["sightings"]
    first = sightings[0]
    category = Category(first["category"])
    orgs = [Organization.model_validate(o) for o in _establishments(state).values()]
    techniques: list[str] = []
    for s in sightings:
        techniques += [t for t in s["techniques"] if t not in techniques]
    return Incident(
        id=state.get("campaign_id") or stable_id("campaign", state["indicator"],
                                                 first["first_seen"], first["incident_id"]),
        scope=Scope.NATIONAL_CAMPAIGN,
        status=Status.OPEN,
        severity=Severity.CRITICAL if len(orgs) >= 10 else Severity.HIGH,
        category=category,
        origin=origin_of(category),
        title=f"National campaign: {first['title']} in {len(orgs)} establishments",
        organizations=orgs,
        impacts=Impacts(),
        declarable=True,
        declarable_reasons=[f"the same indicator ({state['indicator']}) is seen in "
                            f"{len(orgs)} establishments: it spreads across structures"],
        techniques=techniques[:64],
        first_seen=datetime.fromisoformat(first["first_seen"]),
        last_seen=datetime.fromisoformat(sightings[-1]["first_seen"]),
        counts=Counts(detections=0, events=0, hosts=0),
        linked_incident_ids=[s["incident_id"] for s in sightings],
        indicator=state["indicator"][:1024],
        version=state["version"],
    )


@dataclass(frozen=True)
class CampaignChanges:
    """What one sighting did to its indicator's campaign."""

    #: The indicator's new table value; None when the sighting was already known (a replay).
    stored: CampaignState | None = None
    #: The national campaign incident to publish, once the sightings span K establishments.
    campaign: Incident | None = None


class CampaignStage:
    """Sightings of one indicator → a national campaign at K establishments within T.

    Below K establishments the sighting is only remembered; from K on, every new sighting
    publishes the campaign again (same id, higher version, one more establishment).
    """

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config

    def handle(self, stored: CampaignState | None, seen: Sighting) -> CampaignChanges:
        added = add_sighting(stored, seen, self.config)
        if added is None:
            return CampaignChanges()
        state, campaign = added
        return CampaignChanges(stored=state,
                               campaign=campaign_incident(state) if campaign else None)
