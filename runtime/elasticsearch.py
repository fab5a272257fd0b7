"""The Elasticsearch client, built from the settings in one place (URL, user, CA).

The only place the password is read in clear (``get_secret_value``).
"""

from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch

from runtime.settings import Settings


def make_client(settings: Settings, request_timeout: float = 30.0) -> Elasticsearch:
    auth = None
    if settings.es_username and settings.es_password:
        auth = (settings.es_username, settings.es_password.get_secret_value())
    tls: dict[str, Any] = {}
    if settings.es_ca_certs:
        tls["ca_certs"] = str(settings.es_ca_certs)
    return Elasticsearch(
        settings.es_url,
        basic_auth=auth,
        **tls,
        request_timeout=request_timeout,
        # Retries are ours (backoff with jitter, pause consumption): no hidden client retries.
        max_retries=0,
        retry_on_timeout=False,
    )
