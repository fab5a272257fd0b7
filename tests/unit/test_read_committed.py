"""Every consumer of Vigie's topics reads committed records only: agents write events.raw in
transactions, and what a crashed agent's aborted transaction wrote is sent again after its
restart (read uncommitted, it would be processed twice)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

import runtime.kafka
from processors.app import faust_app
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from sinks.consumer import Sink, SinkConfig


def test_the_processor_consumes_with_read_committed(tmp_path: Path) -> None:
    async def isolation() -> str:
        app = faust_app(Settings(home=tmp_path))
        thread = app.consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return str(consumer._isolation_level)
        finally:
            await consumer.stop()

    assert asyncio.run(isolation()) == "read_committed"
    # aiokafka builds its fetcher from that attribute when the consumer starts.
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)


def test_the_sink_consumes_with_read_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(runtime.kafka, "Consumer", lambda config: built.append(config))
    config = SinkConfig(kafka=KafkaConnection(), group="g", topics=["events.classified"],
                        max_docs=10, max_bytes=1000, max_wait_s=1.0)
    Sink(config, es=None)  # type: ignore[arg-type]  # never reached: nothing runs
    assert built[0]["isolation.level"] == "read_committed"
