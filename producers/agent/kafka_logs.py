"""librdkafka's own log lines, through Python logging, each repeated line at most once a
minute.

Without a ``logger``, librdkafka writes to stderr directly, bypassing the agent's level and
format, and while the link to the national platform is down it writes several lines a second
(``Connect to ipv4#... failed``, ``1/1 brokers are down``) for as long as the outage lasts:
that buried everything else in the journal of a hospital server. So the agent's Kafka clients
get the ``librdkafka`` logger (confluent-kafka's ``logger`` setting: lines arrive on
``poll()``), and :class:`RepeatLimit` lets one line through per ``interval`` seconds for
each distinct message (numbers ignored: the reconnect delay changes every time), then the
next one says how many were held back: ``... (repeated 57 times in 60 s)``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable

#: The logger librdkafka's lines go to (level and format: the agent's, see ``log:``).
LOGGER = "librdkafka"

_NUMBERS = re.compile(r"\d+")


class RepeatLimit(logging.Filter):
    """Passes a given message at most once per ``interval`` seconds, counting the rest."""

    def __init__(self, interval: float = 60.0, *, max_keys: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.max_keys = max_keys
        self.clock = clock
        # message shape -> (when last let through, how many held back since)
        self._seen: OrderedDict[tuple[int, str], tuple[float, int]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.interval <= 0:
            return True
        message = record.getMessage()
        key = (record.levelno, _NUMBERS.sub("#", message))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{message} (repeated {last[1]} times in {now - last[0]:.0f} s)"
            record.args = None
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return True


def kafka_logger(interval: float | None = None) -> logging.Logger:
    """The logger to give librdkafka clients, its repeat limit installed once (``interval``
    seconds; None keeps the current one, 60 s at first)."""
    logger = logging.getLogger(LOGGER)
    limit = next((f for f in logger.filters if isinstance(f, RepeatLimit)), None)
    if limit is None:
        limit = RepeatLimit(60.0 if interval is None else interval)
        logger.addFilter(limit)
    elif interval is not None:
        limit.interval = interval
    return logger
