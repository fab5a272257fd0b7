"""Elasticsearch client set-up and template installation."""

from __future__ import annotations

import logging

from elasticsearch import Elasticsearch

from runtime.settings import Settings
from schemas.indices import ALL_FAMILIES
from sinks.elasticsearch.templates import template_body

log = logging.getLogger(__name__)


def make_client(settings: Settings, request_timeout: float = 30.0) -> Elasticsearch:
    auth = None
    if settings.es_username and settings.es_password:
        auth = (settings.es_username, settings.es_password)
    return Elasticsearch(
        settings.es_url,
        basic_auth=auth,
        ca_certs=str(settings.es_ca_certs) if settings.es_ca_certs else None,
        request_timeout=request_timeout,
        # Retries are ours (backoff with jitter, pause consumption): no hidden client retries.
        max_retries=0,
        retry_on_timeout=False,
    )


def install_templates(es: Elasticsearch, replicas: int = 0) -> list[str]:
    """Create or update every index template (idempotent: a PUT replaces the template)."""
    names = []
    for family in ALL_FAMILIES:
        es.indices.put_index_template(name=family.alias, **template_body(family, replicas))
        names.append(family.alias)
    log.info("index templates installed: %s", ", ".join(names))
    return names
