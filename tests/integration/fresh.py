"""A processor and a sink of their own, for tests that must not share consumer groups.

Tests that kill processes or count what one processor did use fresh group ids that start at
the current end of every topic (``runtime.topics.start_group_at_end``): they neither replay the
shared cluster's history nor take partitions away from another session's processor.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.local.pipeline import PROCESSOR_READY, Service
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from runtime.topics import start_group_at_end


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FreshPipeline:
    """Processor and sink under fresh groups; ``restart(name)`` starts a new process of one
    of them under the same group (what a supervisor does after a crash)."""

    def __init__(self, settings: Settings, log_dir: Path, name: str) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.app_id = f"{name}-{int(time.time() * 1000)}"
        self.generation = 0
        self.services: dict[str, Service] = {}

    def env(self) -> dict[str, str]:
        return {
            "VIGIE_PROCESSOR_APP_ID": self.app_id,
            "VIGIE_SINK_GROUP": f"{self.app_id}-sink",
            "VIGIE_METRICS_PORT": str(_free_port()),
            "APP_DATADIR": str(self.log_dir / "faust-data"),  # not <cwd>/<app id>-data
        }

    def start(self) -> dict[str, Service]:
        start_group_at_end(self.settings.kafka, self.app_id)
        start_group_at_end(self.settings.kafka, f"{self.app_id}-sink")
        for name in ("processor", "sink"):
            self.restart(name)
        # See conftest.services: start runs on a ready processor (known Faust start-up issue).
        assert self.services["processor"].wait_for_log(PROCESSOR_READY), (
            self.services["processor"].tail(40))
        return self.services

    def restart(self, name: str) -> Service:
        # The processor in demo mode: the tests and drills sign with simulated agents.
        command = {"processor": ["process", "--demo"], "sink": ["sink"]}[name]
        self.generation += 1
        service = Service(name, command, self.log_dir / f"{self.generation:02d}-{name}",
                          self.env()).start()
        self.services[name] = service
        return service

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        shutil.rmtree(self.log_dir / "faust-data", ignore_errors=True)
        delete_leftovers(self.settings.kafka, self.app_id)


def delete_groups(kafka: KafkaConnection, groups: list[str]) -> None:
    """Consumer groups a test made (best effort)."""
    import contextlib

    admin = kafka.admin()
    for future in admin.delete_consumer_groups(groups, request_timeout=15).values():
        with contextlib.suppress(Exception):
            future.result()


def delete_leftovers(kafka: KafkaConnection, app_id: str) -> None:
    """The groups and Faust changelog topics of a fresh pipeline (best effort)."""
    import contextlib

    admin = kafka.admin()
    topics = [t for t in admin.list_topics(timeout=15).topics if t.startswith(app_id + "-")]
    futures = list(admin.delete_topics(topics).values()) if topics else []
    futures += admin.delete_consumer_groups([app_id, f"{app_id}-sink"],
                                            request_timeout=15).values()
    for future in futures:
        with contextlib.suppress(Exception):
            future.result()


@contextmanager
def fresh_pipeline(settings: Settings, log_dir: Path, name: str) -> Iterator[FreshPipeline]:
    pipeline = FreshPipeline(settings, log_dir, name)
    pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.stop()
