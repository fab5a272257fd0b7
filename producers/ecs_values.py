"""Typed ECS values that never break the wire schema, shared by every producer.

The wire model is strict (an IP field must hold an IP, a port 0-65535): a mapping that copies
a malformed value would have the whole event refused downstream. These helpers return ``None``
for a value that does not fit, so the event still goes out with that one field absent. They
live here, not in the agent, because the Windows → ECS mapping (:mod:`producers.windows.ecs`)
that uses them is shared by the agent and the simulator, which must not import each other.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any


def ip_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or value in ("", "-"):  # "-": Windows' "no address"
        return None
    if len(value) > 64:  # no address is this long; and the cache must not keep 64 KiB keys
        return None
    return _ip(value)


@lru_cache(maxsize=4096)
def _ip(value: str) -> str | None:
    """Cached: a log names the same few addresses again and again, and parsing one costs
    more than a dict lookup by far (a failed parse, an exception, even more)."""
    text = value.strip()
    if text.startswith("::ffff:") and "." in text:  # IPv4-mapped, as Windows writes them
        text = text[7:]
    try:
        return str(ipaddress.ip_address(text.split("%")[0]))
    except ValueError:
        return None


def port_or_none(value: Any) -> int | None:
    if value is None:  # the usual case: no such field, and no exception to raise and catch
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 0 <= port <= 65535 else None


def int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None
