"""A Faust worker with only the Sigma correlation agent, for the integration tests.

It runs ``processors.detection.correlation.stages.register`` on the real broker exactly as
the processor does, without the rest of the processor (the test feeds
``vigie.correlation-inputs`` itself, which lets it kill the worker between two chosen
signals). Usage: ``python -m tests.integration.correlation_worker APP_ID``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import faust

from processors.brokers import broker_credentials, broker_urls
from processors.detection.correlation.model import CorrelationSet
from processors.detection.correlation.stages import register
from processors.detection.engine import Engine
from processors.detection.loader import VIGIE_RULES
from processors.outputs import Output
from runtime.settings import load_settings


def main(app_id: str) -> None:
    settings = load_settings()
    app = faust.App(app_id, broker=broker_urls(settings.kafka),
                    broker_credentials=broker_credentials(settings.kafka),
                    value_serializer="raw", key_serializer="raw", web_enabled=False,
                    topic_disable_leader=True, producer_acks=-1,
                    consumer_auto_offset_reset="latest", broker_commit_interval=1.0)

    async def deliver(outputs: Sequence[Output]) -> None:
        for out in outputs:
            assert not isinstance(out.topic, str)  # the stages hand Faust topic objects here
            await (await out.topic.send(key=out.key, value=out.value, headers=out.headers))

    register(app, CorrelationSet.from_engine(Engine.from_paths([VIGIE_RULES])), deliver,
             tick_seconds=5.0)
    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1])
