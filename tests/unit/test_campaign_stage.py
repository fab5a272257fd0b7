"""The campaign stage without Faust: the same indicator in K establishments is one national
campaign, published again (same id) as more establishments report it."""

from __future__ import annotations

import json

import pytest

from processors.incidents.campaigns import CampaignStage
from processors.incidents.config import ScoringConfig, load_scoring
from processors.incidents.lifecycle import IncidentStage
from processors.incidents.state import CampaignState, Sighting
from schemas.incident import Scope
from tests.unit.incident_support import detection, organization

HASH = {"Hashes": "SHA256=0BADC0DE"}


@pytest.fixture(scope="module")
def scoring() -> ScoringConfig:
    return load_scoring()


def sighting_from(scoring: ScoringConfig, n: int, incident_no: int = 1) -> Sighting:
    """What the incident stage of establishment ``n`` reports when the hash first shows up
    there, after a trip through JSON (the ``vigie.indicators`` topic)."""
    found = detection(incident_no, minute=n, org=organization(n), matched=HASH)
    [seen] = IncidentStage(scoring).handle([], found).sightings
    decoded: Sighting = json.loads(json.dumps(seen))
    return decoded


def test_a_campaign_opens_at_k_establishments_and_grows(scoring: ScoringConfig) -> None:
    stage = CampaignStage(scoring)
    k = scoring.campaigns.min_establishments
    stored: CampaignState | None = None
    published = []
    for n in range(1, k + 2):
        changes = stage.handle(stored, sighting_from(scoring, n))
        assert changes.stored is not None
        stored = json.loads(json.dumps(changes.stored))  # the table's changelog round trip
        if n < k:
            assert changes.campaign is None, "below K establishments: no campaign yet"
        else:
            assert changes.campaign is not None
            published.append(changes.campaign)
    first, grown = published
    assert first.scope == Scope.NATIONAL_CAMPAIGN and len(first.organizations) == k
    assert first.indicator == "file_hash:sha256=0badc0de" and first.declarable
    assert grown.id == first.id and len(grown.organizations) == k + 1
    assert grown.version > first.version


def test_a_replayed_sighting_changes_nothing(scoring: ScoringConfig) -> None:
    stage = CampaignStage(scoring)
    seen = sighting_from(scoring, 1)
    stored = stage.handle(None, seen).stored
    again = stage.handle(stored, seen)
    assert again.stored is None and again.campaign is None


def test_one_establishment_reporting_twice_is_not_a_campaign(scoring: ScoringConfig) -> None:
    stage = CampaignStage(scoring)
    stored: CampaignState | None = None
    for incident_no in range(1, scoring.campaigns.min_establishments + 2):
        changes = stage.handle(stored, sighting_from(scoring, 1, incident_no))
        assert changes.campaign is None
        stored = changes.stored
    assert stored is not None and len(stored["sightings"]) > 1
