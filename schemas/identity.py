"""Deterministic identifiers.

Every id in Vigie is derived from what it identifies, never drawn at random: a replay of the
same source, a restarted processor or a re-delivered Kafka record produce the same id, so the
Elasticsearch write is an overwrite and not a duplicate.
"""

from __future__ import annotations

import hashlib


def stable_id(*parts: str | int) -> str:
    """128-bit hex digest of the parts, separated so that ("ab", "c") != ("a", "bc")."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return digest.hexdigest()[:32]


def event_id(establishment_id: str, source: str, position: str | int) -> str:
    """Id of the event read at ``position`` (record number, byte offset...) of ``source``."""
    return stable_id("event", establishment_id, source, position)


def detection_id(rule_id: str, event_id_: str) -> str:
    """Id of the match of one rule on one event: a rule matches an event at most once."""
    return stable_id("detection", rule_id, event_id_)


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """Id of a refused record: its Kafka coordinates, so re-processing overwrites it."""
    return stable_id("dlq", topic, partition, offset)
