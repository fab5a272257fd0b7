"""National campaigns: one indicator in K establishments is one campaign, whatever the order
in which the establishments' incidents arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from processors.incidents.campaigns import add_sighting, campaign_incident
from processors.incidents.config import load_scoring

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _seen(n: int, minutes: int) -> dict[str, Any]:
    return {
        "indicator": "sender:lure@example.org",
        "incident_id": f"{n:032x}",
        "organization": {"id": f"75000000{n}", "name": f"CH {n}", "type": "hospital",
                         "region": "ile-de-france"},
        "category": "fraud",
        "title": "Phishing link opened",
        "techniques": ["T1566"],
        "first_seen": (START + timedelta(minutes=minutes)).isoformat(),
    }


def _run(order: list[int]) -> list[tuple[str, int]]:
    """Feed sightings (establishment n first seen at minute 10 n) in ``order``; the
    (campaign id, establishments) of every campaign published on the way."""
    config = load_scoring()
    state = None
    published = []
    for n in order:
        added = add_sighting(state, _seen(n, 10 * n), config)
        assert added is not None
        state, campaign = added
        if campaign:
            incident = campaign_incident(state)
            published.append((incident.id, len(incident.organizations)))
    return published


def test_a_late_sighting_with_an_earlier_first_seen_extends_the_same_campaign() -> None:
    # Establishments 3, 4, 5 make the campaign (K = 3); 1 and 2 arrive afterwards although
    # their incidents were first seen earlier: same campaign, five establishments.
    published = _run([3, 4, 5, 1, 2])
    assert [count for _, count in published] == [3, 4, 5]
    assert len({campaign_id for campaign_id, _ in published}) == 1


def test_a_replayed_sighting_is_ignored() -> None:
    config = load_scoring()
    state, _ = add_sighting(None, _seen(1, 0), config)
    assert add_sighting(state, _seen(1, 0), config) is None


def test_below_k_establishments_there_is_no_campaign() -> None:
    assert _run([1, 2]) == []
