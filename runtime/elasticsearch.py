"""The Elasticsearch client, built from the settings in one place (URL, user, CA)."""

from __future__ import annotations

from elastic_transport.client_utils import DEFAULT
from elasticsearch import Elasticsearch

from runtime.settings import Settings


def make_client(settings: Settings, request_timeout: float = 30.0) -> Elasticsearch:
    auth = None
    if settings.es_username and settings.es_password:
        auth = (settings.es_username, settings.es_password)
    return Elasticsearch(
        settings.es_url,
        basic_auth=auth,
        # No CA file: the client's own default, as if the argument were left out.
        ca_certs=str(settings.es_ca_certs) if settings.es_ca_certs else DEFAULT,
        request_timeout=request_timeout,
        # Retries are ours (backoff with jitter, pause consumption): no hidden client retries.
        max_retries=0,
        retry_on_timeout=False,
    )
