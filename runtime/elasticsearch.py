"""The Elasticsearch client, built from the settings in one place (URL, user, CA).

The only place the password is read in clear (``get_secret_value``).
"""

from __future__ import annotations

import re

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elastic_transport.client_utils import DEFAULT
from elasticsearch import Elasticsearch

from runtime.errors import ServiceUnavailable, VigieError, register_translation
from runtime.settings import Settings

#: The URL of the client built last, so that a refused connection can name it (the
#: transport's exception does not). A command builds one client; a long-lived process that
#: built several (tests) names the latest rather than a list of every URL it ever used.
_last_url: list[str] = []


class ElasticsearchUnavailable(ServiceUnavailable):
    """Elasticsearch refused the connection or did not answer in time."""


def make_client(settings: Settings, request_timeout: float = 30.0) -> Elasticsearch:
    auth = None
    if settings.es_username and settings.es_password:
        auth = (settings.es_username, settings.es_password.get_secret_value())
    _last_url[:] = [settings.es_url]
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


register_translation(_unavailable)
