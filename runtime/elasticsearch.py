"""The Elasticsearch client, built from the settings in one place (URL, credentials, CA).

Credentials are an API key (``es_api_key``: what an unattended process or an operator's
script should hold, scoped to one role and revocable on its own) or a user and password. The
only place either secret is read in clear (``get_secret_value``). A refused credential or a
refused right becomes one line and the "permission" exit code (77), not a traceback.
"""

from __future__ import annotations

import logging
import re

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elastic_transport.client_utils import DEFAULT
from elasticsearch import AuthenticationException, AuthorizationException, Elasticsearch
from elasticsearch.serializer import NdjsonSerializer

from runtime.errors import PermissionDenied, ServiceUnavailable, VigieError, register_translation
from runtime.settings import Settings

#: The URL of the client built last, so that a refused connection can name it (the
#: transport's exception does not). A command builds one client; a long-lived process that
#: built several (tests) names the latest rather than a list of every URL it ever used.
_last_url: list[str] = []

#: Whether "API key and user both set" was logged already: once per process is enough.
_both_credentials_said: list[bool] = []

log = logging.getLogger(__name__)


class ElasticsearchUnavailable(ServiceUnavailable):
    """Elasticsearch refused the connection or did not answer in time."""


class ElasticsearchRefused(PermissionDenied):
    """Elasticsearch refused the credentials (401) or the right to do what was asked (403)."""


def _credentials(settings: Settings) -> tuple[str | None, tuple[str, str] | None]:
    """``(api_key, basic_auth)``: the API key when one is set (it wins over a user, said once
    at debug), else the user and password when both are, else neither (an open cluster)."""
    user = (settings.es_username, settings.es_password.get_secret_value()) if (
        settings.es_username and settings.es_password) else None
    if settings.es_api_key is None:
        return None, user
    if user is not None and not _both_credentials_said:
        _both_credentials_said.append(True)
        log.debug("both es_api_key and es_username/es_password are set: using the API key")
    return settings.es_api_key.get_secret_value(), None


class _NdjsonBytes(NdjsonSerializer):
    """NDJSON as the client's own serializer writes it, except that a body already encoded
    (bytes ending in a newline: the sink's bulk requests) is sent as it is. The client's
    serializer copies such a body twice (into a ``bytearray``, then back to ``bytes``):
    0.2 µs of the sink's CPU per document for nothing."""

    def dumps(self, data: object) -> bytes:
        if isinstance(data, bytes) and data.endswith(b"\n"):
            return data
        return super().dumps(data)


def make_client(settings: Settings, request_timeout: float = 30.0) -> Elasticsearch:
    """The client of ``settings``: its URL, its CA, its API key or user (see
    :func:`_credentials`), and no retry of its own."""
    api_key, basic_auth = _credentials(settings)
    _last_url[:] = [settings.es_url]
    return Elasticsearch(
        settings.es_url,
        api_key=api_key,
        basic_auth=basic_auth,
        # No CA file: the client's own default, as if the argument were left out.
        ca_certs=str(settings.es_ca_certs) if settings.es_ca_certs else DEFAULT,
        request_timeout=request_timeout,
        # Retries are ours (backoff with jitter, pause consumption): no hidden client retries.
        max_retries=0,
        retry_on_timeout=False,
        # Also used for the compatibility mimetype the client sends bulk bodies with.
        serializers={_NdjsonBytes.mimetype: _NdjsonBytes()},
    )


def _unavailable(error: BaseException) -> VigieError | None:
    """A connection failure of the client, as the error an operator can act on."""
    if not isinstance(error, TransportConnectionError | ConnectionTimeout):
        return None
    cause = " ".join([str(error.message), *map(str, error.errors)])
    reason = re.search(r"\[Errno -?\d+\] [^)\]>'\"]+|timed out", cause)
    what = reason.group(0).strip() if reason else type(error).__name__
    return ElasticsearchUnavailable(
        f"Elasticsearch does not answer ({what}); is it running? "
        "(`vigie stack status`, or VIGIE_ES_URL)", source=_last_url[0] if _last_url else None)


def _refused(error: BaseException) -> VigieError | None:
    """A 401 (who are you?) or 403 (not allowed) of Elasticsearch, as one line naming what to
    check: the credential, or the role behind it."""
    source = _last_url[0] if _last_url else None
    if isinstance(error, AuthenticationException):
        return ElasticsearchRefused(
            "Elasticsearch refused the credentials (401): check the API key (VIGIE_ES_API_KEY, "
            "--es-api-key: the `encoded` value, not expired nor invalidated) or "
            "VIGIE_ES_USERNAME/VIGIE_ES_PASSWORD", source=source)
    if isinstance(error, AuthorizationException):
        reason = str(getattr(error, "message", "") or "").strip()
        if isinstance(error.body, dict):
            reason = str(error.body.get("error", {}).get("reason", reason))
        return ElasticsearchRefused(
            f"Elasticsearch refused this request to these credentials (403): {reason}",
            source=source)
    return None


register_translation(_unavailable)
register_translation(_refused)
