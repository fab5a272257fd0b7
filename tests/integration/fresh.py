"""A processor and a sink of their own, for tests that must not share consumer groups.

Tests that kill processes or count what one processor did use fresh group ids that start at
the current end of every topic (``runtime.topics.start_group_at_end``): they neither replay the
shared cluster's history nor take partitions away from another session's processor.

The groups are named under the prefixes that ``deploy/security/kafka-acls.yaml`` binds to each
principal (``vigie-processor*``, ``vigie-sink*``, ``vigie-notifier*``): the test processes run
as those principals, with exactly production's rights.
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


def processor_group(name: str) -> str:
    """The Faust app id (consumer group, changelog topics' prefix) of a fresh processor."""
    return f"vigie-processor-{name}"


def sink_group(name: str) -> str:
    return f"vigie-sink-{name}"


def notifier_group(name: str) -> str:
    return f"vigie-notifier-{name}"


def fresh_env(name: str) -> dict[str, str]:
    """The groups of a fresh pipeline ``name``, as the processes read them."""
    return {"VIGIE_PROCESSOR_APP_ID": processor_group(name),
            "VIGIE_SINK_GROUP": sink_group(name),
            "VIGIE_NOTIFIER_GROUP": notifier_group(name)}


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
        self.name = f"{name}-{int(time.time() * 1000)}"
        self.app_id = processor_group(self.name)
        self.generation = 0
        self.services: dict[str, Service] = {}

    def env(self) -> dict[str, str]:
        return {
            **fresh_env(self.name),
            "VIGIE_METRICS_PORT": str(_free_port()),
            "APP_DATADIR": str(self.log_dir / "faust-data"),  # not <cwd>/<app id>-data
        }

    def start(self) -> dict[str, Service]:
        start_group_at_end(self.settings.kafka, self.app_id)
        start_group_at_end(self.settings.kafka, sink_group(self.name))
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
        delete_leftovers(self.settings.kafka, self.name)


def delete_groups(kafka: KafkaConnection, groups: list[str]) -> None:
    """Consumer groups a test made (best effort)."""
    import contextlib

    admin = kafka.admin()
    for future in admin.delete_consumer_groups(groups, request_timeout=15).values():
        with contextlib.suppress(Exception):
            future.result()


def delete_leftovers(kafka: KafkaConnection, name: str) -> None:
    """The groups and Faust changelog topics of the fresh pipeline ``name`` (best effort)."""
    import contextlib

    admin = kafka.admin()
    app_id = processor_group(name)
    topics = [t for t in admin.list_topics(timeout=15).topics if t.startswith(app_id + "-")]
    futures = list(admin.delete_topics(topics).values()) if topics else []
    futures += admin.delete_consumer_groups(
        [app_id, sink_group(name), notifier_group(name)], request_timeout=15).values()
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
