"""The Elasticsearch options and client of every command that talks to Elasticsearch
(incidents, report, retention, evaluate, es api-key).

Apart from :mod:`vigie.cli.common` because that module is part of ``vigie agent``, which must
import nothing of Elasticsearch (the import contracts of pyproject.toml), not even lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigie.cli.common import settings

if TYPE_CHECKING:  # imported for real inside elasticsearch()
    from elasticsearch import Elasticsearch

# They override the settings file; their variables are the settings' own, so the precedence
# is the same either way. Prefer the variable for the key: a command line shows in `ps` and
# in shell history.
EsApiKeyOpt = Annotated[str | None, typer.Option(
    "--es-api-key", envvar="VIGIE_ES_API_KEY", show_default=False,
    help="Elasticsearch API key (the `encoded` value); used instead of the settings' user "
         "and password")]
EsCaOpt = Annotated[Path | None, typer.Option(
    "--es-ca", envvar="VIGIE_ES_CA_CERTS", exists=True, dir_okay=False,
    help="CA bundle that signed Elasticsearch's certificate")]


def elasticsearch(config: Path | None, api_key: str | None = None, ca: Path | None = None
                  ) -> Elasticsearch:
    """``config``'s settings with ``--es-api-key`` and ``--es-ca`` on top, as a client."""
    from runtime.elasticsearch import make_client

    return make_client(settings(config, es_api_key=api_key, es_ca_certs=ca))
