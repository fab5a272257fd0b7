"""Index templates: explicit ECS-compatible mappings for every index family.

Explicit rather than dynamic because what an operator can search depends on it: an IP must be
an ``ip`` (range and CIDR queries), a command line must be both searchable text and an exact
keyword, and free-form Windows fields go into one ``flattened`` field instead of exploding the
mapping with thousands of keys. Only features of the server core are used (no ingest
pipelines, scripts or data streams), so the same templates run on the local integ-test
distribution and on a full cluster.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import Elasticsearch

from schemas import indices
from schemas.indices import ALL_FAMILIES, IndexFamily
from schemas.organization import Region

log = logging.getLogger(__name__)

KW: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}
TEXT_KW: dict[str, Any] = {"type": "text", "fields": {"keyword": {"type": "keyword",
                                                                  "ignore_above": 8191}}}
KW_TEXT: dict[str, Any] = {"type": "keyword", "ignore_above": 8191,
                           "fields": {"text": {"type": "text"}}}
DATE: dict[str, Any] = {"type": "date"}
IP: dict[str, Any] = {"type": "ip"}
LONG: dict[str, Any] = {"type": "long"}
BOOL: dict[str, Any] = {"type": "boolean"}
FLAT: dict[str, Any] = {"type": "flattened", "ignore_above": 8191}


def obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"properties": props}


ORGANIZATION = obj(id=KW, name=KW_TEXT, type=KW, region=KW)
HASHES = obj(md5=KW, sha1=KW, sha256=KW)
USER = obj(name=KW, domain=KW, id=KW)
ENDPOINT = obj(ip=IP, port=LONG, domain=KW, user=USER)

EVENT_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "@timestamp": DATE,
        "event": obj(id=KW, kind=KW, category=KW, type=KW, action=KW, outcome=KW, code=KW,
                     provider=KW, module=KW, dataset=KW, severity=LONG, created=DATE,
                     ingested=DATE, original={"type": "text", "index": False}),
        "organization": ORGANIZATION,
        "agent": obj(id=KW, name=KW, type=KW, version=KW),
        "message": {"type": "text"},
        "host": obj(name=KW, hostname=KW, domain=KW, ip=IP, os=obj(family=KW, name=KW,
                                                                    version=KW)),
        "user": USER,
        "source": ENDPOINT,
        "destination": ENDPOINT,
        "process": obj(pid=LONG, name=KW, executable=KW_TEXT, command_line=KW_TEXT,
                       hash=HASHES, parent=obj(pid=LONG, name=KW, executable=KW_TEXT,
                                               command_line=KW_TEXT)),
        "file": obj(path=KW_TEXT, name=KW, extension=KW, hash=HASHES),
        "network": obj(protocol=KW, transport=KW, direction=KW),
        "observer": obj(name=KW, type=KW, vendor=KW, product=KW),
        "email": {"properties": {"from": obj(address=KW), "to": obj(address=KW),
                                 "subject": TEXT_KW, "message_id": KW}},
        "url": obj(domain=KW, full=KW_TEXT),
        "winlog": obj(channel=KW, event_id=KW, provider_name=KW, computer_name=KW,
                      record_id=LONG, task=KW, opcode=KW, level=KW, event_data=FLAT,
                      user_data=FLAT),
        "tags": KW,
        "vigie": obj(category=KW, detection_ids=KW, agent_event_id=KW),
    },
}

DETECTION_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "@timestamp": DATE,
        "id": KW,
        "rule": obj(id=KW, title=TEXT_KW, level=KW, status=KW, author=TEXT_KW, tags=KW),
        "threat": obj(tactics=KW, techniques=KW),
        "category": KW,
        "origin": KW,
        "event_id": KW,
        "organization": ORGANIZATION,
        "host_name": KW,
        "user_name": KW,
        "matched": FLAT,
    },
}

INCIDENT_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "id": KW, "scope": KW, "status": KW, "severity": KW, "category": KW, "origin": KW,
        "title": TEXT_KW,
        "organizations": ORGANIZATION,
        "impacts": obj(care_safety=BOOL, confidentiality=BOOL, integrity=BOOL,
                       availability=BOOL),
        "declarable": BOOL, "declarable_reasons": TEXT_KW,
        "techniques": KW, "first_seen": DATE, "last_seen": DATE,
        "counts": obj(detections=LONG, events=LONG, hosts=LONG),
        "detection_ids": KW, "linked_incident_ids": KW, "indicator": KW,
        "reported_via": KW, "version": LONG,
    },
}

ALERT_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "@timestamp": DATE, "id": KW, "rule": KW, "incident_id": KW, "status": KW,
        "severity": KW, "summary": {"type": "text"}, "labels": FLAT,
    },
}

DLQ_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "@timestamp": DATE, "id": KW, "stage": KW, "reason": KW, "detail": {"type": "text"},
        "origin": obj(topic=KW, partition=LONG, offset=LONG, key=KW, index=LONG),
        "establishment_id": KW,
        "original_b64": {"type": "binary"},
        "original_size": LONG,
    },
}

MAPPINGS: dict[IndexFamily, dict[str, Any]] = {
    indices.EVENTS: EVENT_MAPPING,
    indices.DETECTIONS: DETECTION_MAPPING,
    indices.INCIDENTS: INCIDENT_MAPPING,
    indices.ALERTS: ALERT_MAPPING,
    indices.DLQ: DLQ_MAPPING,
}

#: Families that regional teams see through region-filtered aliases, and the field to filter.
#: ``organizations`` is a plain object array, so the term filter matches an incident when any
#: of its establishments is in the region: a national campaign shows in every region it hits.
REGIONAL: dict[IndexFamily, str] = {
    indices.EVENTS: "organization.region",
    indices.INCIDENTS: "organizations.region",
}


def template_body(family: IndexFamily, replicas: int = 0) -> dict[str, Any]:
    """The composable index template for ``family`` (``PUT _index_template/<alias>``)."""
    aliases: dict[str, Any] = {family.alias: {}}
    field = REGIONAL.get(family)
    if field:
        for region in Region:
            aliases[f"{family.alias}-{region.value}"] = {"filter": {"term": {field: region.value}}}
    return {
        "index_patterns": [family.pattern],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": replicas,
                "refresh_interval": "1s",
                "mapping.total_fields.limit": 2000,
            },
            "mappings": MAPPINGS[family],
            "aliases": aliases,
        },
        "_meta": {"managed_by": "vigie", "schema_version": 1},
    }


def install_templates(es: Elasticsearch, replicas: int = 0) -> list[str]:
    """Create or update every index template (idempotent: a PUT replaces the template)."""
    names = []
    for family in ALL_FAMILIES:
        es.indices.put_index_template(name=family.alias, **template_body(family, replicas))
        # Fields added since an index was made (``vigie.agent_event_id``) become searchable
        # there too, not only from next month's index on: mappings only ever grow here.
        es.indices.put_mapping(index=family.pattern, allow_no_indices=True,
                               ignore_unavailable=True, **MAPPINGS[family])
        names.append(family.alias)
    log.info("index templates installed: %s", ", ".join(names))
    return names
