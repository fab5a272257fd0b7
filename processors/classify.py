"""The classification step between validation and output.

Today it only stamps the event as seen by the processor; the Sigma detection engine
(``processors.detection``) plugs in here as another ``Classifier`` and returns the detections
to publish. Keeping it an interface lets the processor's delivery guarantees stay in one place
(``processors.app``) whatever the classification does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from schemas.detection import Detection
from schemas.event import Classification, SecurityEvent


@dataclass
class Verdict:
    event: SecurityEvent
    detections: list[Detection] = field(default_factory=list)


class Classifier(Protocol):
    def classify(self, event: SecurityEvent) -> Verdict: ...


class PassThrough:
    """No detection yet: stamp the ingestion time and an empty classification."""

    def classify(self, event: SecurityEvent) -> Verdict:
        stamped = event.model_copy(
            update={
                "event": event.event.model_copy(update={"ingested": datetime.now(UTC)}),
                "vigie": Classification(),
            }
        )
        return Verdict(stamped)
