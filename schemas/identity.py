"""Deterministic identifiers.

Every id in Vigie is derived from what it identifies, never drawn at random: a replay of the
same source, a restarted processor or a re-delivered Kafka record produce the same id, so the
Elasticsearch write is an overwrite and not a duplicate.

Two kinds of event id exist. The *agent's* id (:func:`event_id`) is what an agent puts in
``event.id`` on ``events.raw``: the agent chooses it, so nothing stops a hostile agent from
reusing another establishment's. The *national* id (:func:`national_event_id`) is what the
processor derives from the establishment it verified (registry and signature) and the agent's
id: it is the ``event.id`` of the classified event, its Elasticsearch ``_id``, and what
detections and incidents point to. No establishment can name a document of another one, since
its own id is part of every id derived from its records.
"""

from __future__ import annotations

import hashlib


def stable_id(*parts: str | int) -> str:
    """128-bit hex digest of the parts, separated so that ("ab", "c") != ("a", "bc")."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return digest.hexdigest()[:32]


def event_id(establishment_id: str, source: str, position: str | int) -> str:
    """The agent's id of the event read at ``position`` (record number, byte offset...) of
    ``source``: what agents and the simulator put in ``event.id`` on ``events.raw``."""
    return stable_id("event", establishment_id, source, position)


def national_event_id(establishment_id: str, agent_event_id: str) -> str:
    """The id the SOC sees (``event.id`` in ``vigie-events``, its ``_id``): bound to the
    establishment the processor verified, so that two establishments never share one."""
    return stable_id("national-event", establishment_id, agent_event_id)


def detection_id(establishment_id: str, rule_id: str, event_id_: str) -> str:
    """Id of the match of one rule on one (national) event of one establishment: a rule
    matches an event at most once."""
    return stable_id("detection", establishment_id, rule_id, event_id_)


def dead_letter_id(topic: str, partition: int, offset: int, index: int | None = None) -> str:
    """Id of a refused record: its Kafka coordinates (and, for one event of an envelope, its
    index in it), so re-processing overwrites it."""
    if index is None:
        return stable_id("dlq", topic, partition, offset)
    return stable_id("dlq", topic, partition, offset, "event", index)
