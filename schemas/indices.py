"""Elasticsearch index and alias names.

Operators, Kibana data views and alert rules read the aliases; the sink writes concrete,
time-based indices behind them, so retention deletes whole indices instead of documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import topics


@dataclass(frozen=True)
class IndexFamily:
    """An alias and how concrete indices behind it are named.

    ``monthly`` families write ``<alias>-YYYY.MM`` chosen from the document's own timestamp,
    never from the wall clock, so that a replay lands on the same index and the same ``_id``
    overwrites instead of duplicating.
    """

    alias: str
    monthly: bool

    def index_for(self, when: datetime) -> str:
        """Concrete index a document dated ``when`` belongs to."""
        if not self.monthly:
            return f"{self.alias}-000001"
        return f"{self.alias}-{when.year:04d}.{when.month:02d}"

    @property
    def pattern(self) -> str:
        """Pattern matching every concrete index of the family (for templates)."""
        return f"{self.alias}-*"


EVENTS = IndexFamily("vigie-events", monthly=True)
DETECTIONS = IndexFamily("vigie-detections", monthly=True)
INCIDENTS = IndexFamily("vigie-incidents", monthly=False)
ALERTS = IndexFamily("vigie-alerts", monthly=True)
DLQ = IndexFamily("vigie-dlq", monthly=False)

ALL_FAMILIES: tuple[IndexFamily, ...] = (EVENTS, DETECTIONS, INCIDENTS, ALERTS, DLQ)

#: Which topic feeds which index family (the sink's routing table).
TOPIC_TO_INDEX: dict[str, IndexFamily] = {
    topics.EVENTS_CLASSIFIED.name: EVENTS,
    topics.DETECTIONS.name: DETECTIONS,
    topics.INCIDENTS.name: INCIDENTS,
    topics.ALERTS.name: ALERTS,
    topics.EVENTS_DLQ.name: DLQ,
}
