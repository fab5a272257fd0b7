"""``vigie notify``: the ``alerts`` topic → Prometheus Alertmanager's API v2.

Alertmanager does routing (by region and severity labels), grouping, silences and the paging
integrations; Vigie only posts alerts and their resolves. Offsets are committed once
Alertmanager answered 2xx, so an unreachable Alertmanager delays pages but loses none.
"""

from __future__ import annotations

import json
import logging
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from confluent_kafka import Consumer, KafkaException, Message

from runtime import metrics
from runtime.backoff import Backoff
from runtime.kafka import KafkaConnection
from schemas.alert import Alert, AlertStatus
from schemas.topics import ALERTS

log = logging.getLogger(__name__)
STAGE = "notifier"


class PostableAlert(TypedDict):
    """The fields of an Alertmanager v2 ``postableAlert`` that Vigie sets."""

    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str


def to_alertmanager(alert: Alert, now: datetime | None = None) -> PostableAlert:
    """One Alertmanager v2 ``postableAlert``."""
    if alert.status == AlertStatus.RESOLVED:
        ends_at = now or datetime.now(UTC)
    else:
        # Firing alerts stay active until resolved; re-posted by a replay they just refresh.
        ends_at = alert.timestamp + timedelta(days=7)
    return {
        "labels": dict(alert.labels) or {"alertname": alert.rule},
        "annotations": {"summary": alert.summary, "incident_id": alert.incident_id},
        "startsAt": alert.timestamp.isoformat(),
        "endsAt": ends_at.isoformat(),
    }


@dataclass
class Notifier:
    kafka: KafkaConnection
    alertmanager_url: str
    group: str = "vigie-notifier"
    batch: int = 100
    stats_posted: int = 0
    _stopping: bool = False

    def stop(self, *_: object) -> None:
        self._stopping = True

    def post(self, alerts: list[PostableAlert]) -> None:
        request = urllib.request.Request(
            self.alertmanager_url.rstrip("/") + "/api/v2/alerts",
            data=json.dumps(alerts).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status >= 300:
                raise urllib.error.HTTPError(request.full_url, response.status, "refused",
                                             response.headers, None)

    def run(self, idle_exit_s: float | None = None) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        consumer = self.kafka.consumer(self.group, **{"auto.offset.reset": "earliest"})
        consumer.subscribe([ALERTS.name])
        last = time.monotonic()
        try:
            while not self._stopping:
                messages = [m for m in consumer.consume(self.batch, timeout=1.0)
                            if not m.error()]
                if not messages:
                    if idle_exit_s is not None and time.monotonic() - last > idle_exit_s:
                        break
                    continue
                last = time.monotonic()
                self._deliver(consumer, messages)
        finally:
            consumer.close()
        return self.stats_posted

    def _deliver(self, consumer: Consumer, messages: list[Message]) -> None:
        bodies: list[PostableAlert] = []
        for message in messages:
            try:
                # A tombstone (no value) is as unreadable as an empty record.
                alert = Alert.model_validate_json(message.value() or b"")
                bodies.append(to_alertmanager(alert))
            except ValueError as exc:
                metrics.ERRORS.labels(STAGE, "bad_alert").inc()
                log.error("unreadable alert at %s/%s: %s", message.partition(),
                          message.offset(), exc)
        backoff = Backoff(base=0.5, cap=30)
        delivered = not bodies
        while not delivered and not self._stopping:
            try:
                self.post(bodies)
                delivered = True
            except (urllib.error.URLError, OSError) as exc:
                metrics.ERRORS.labels(STAGE, "alertmanager").inc()
                delay = backoff.next_delay()
                log.warning("Alertmanager unreachable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
        if not delivered:
            return  # stopping before delivery: no commit, the alerts will be re-read
        self.stats_posted += len(bodies)
        metrics.EVENTS_OUT.labels(STAGE, "alertmanager").inc(len(bodies))
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed (%s): alerts will be re-posted (Alertmanager dedups)",
                        exc)
