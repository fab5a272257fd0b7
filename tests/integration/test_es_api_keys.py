"""Elasticsearch API keys on the real, secured local stack: a key does what its one declared
role allows and nothing more, and the CLI runs on a key and a CA alone.

Keys are made here, as the admin, with names of this run (``it-<hex>-…``), an hour's lifetime
and invalidated afterwards: the shared stack's own keys (``clients/api-keys.yaml``) are left
alone. The local stack's Elasticsearch stores keys thanks to the ``vigie-analysis`` plugin
(``deploy/local/es_analysis.py``); a node started before that plugin existed cannot, and skips
the tests that need a valid key with the reason and the commands that restart it. A node that
has the plugin and still cannot store keys fails them. The refusal of an invalid key runs
everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from elasticsearch import AuthorizationException, Elasticsearch

from deploy.local.es_analysis import restart_reason
from deploy.security.elasticsearch_api_keys import (
    ApiKey,
    ApiKeysUnsupported,
    create_api_key,
    invalidate_api_keys,
)
from runtime.settings import Settings
from schemas import indices
from schemas.organization import Region

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
#: A month long past: the stack is shared, these documents must not show in anyone's range.
PAST = datetime(2001, 3, 1, tzinfo=UTC)

ROLES = {"sink": "vigie_sink", "national": "vigie_national_operator",
         "report": "vigie_report", "bretagne": "vigie_regional_operator_bretagne"}


@pytest.fixture(scope="module")
def keys(es: Elasticsearch) -> Iterator[dict[str, ApiKey]]:
    """One key per role of ``ROLES``, made for this run and invalidated after it."""
    run = f"it-{uuid.uuid4().hex[:12]}"
    made: dict[str, ApiKey] = {}
    try:
        for short, role in ROLES.items():
            made[short] = create_api_key(es, f"{run}-{short}", role, expiration="1h")
    except ApiKeysUnsupported as unsupported:
        node = next(iter(es.nodes.info(node_id="_local", metric="plugins")["nodes"].values()))
        stale = restart_reason(node.get("plugins", []))
        if stale is None:
            raise  # the plugin is loaded: keys must work
        pytest.skip(f"{unsupported}; this node {stale}: `vigie stack down` then `vigie stack up`")
    yield made
    for key in made.values():
        invalidate_api_keys(es, key.name)


def _as(stack: Settings, key: ApiKey | str) -> Elasticsearch:
    encoded = key if isinstance(key, str) else key.encoded.get_secret_value()
    return Elasticsearch(stack.es_url, api_key=encoded, ca_certs=str(stack.es_ca_certs),
                         request_timeout=30)


def _vigie(stack: Settings, api_key: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``vigie args`` with no settings file and no user: only the URL, the key and the CA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_CONFIG="", VIGIE_ES_URL=stack.es_url, VIGIE_ES_API_KEY=api_key,
               VIGIE_ES_CA_CERTS=str(stack.es_ca_certs))
    return subprocess.run([sys.executable, "-m", "vigie.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=REPO, env=env)


# --- an invalid key ---------------------------------------------------------------------------
def test_an_invalid_key_is_one_line_and_the_permission_exit_code(stack: Settings) -> None:
    done = _vigie(stack, "aW52YWxpZDprZXk=", "report", "--from", "2001-01-01",
                  "--to", "2001-02-01", "--format", "json")
    assert done.returncode == 77, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("vigie: error:")]
    assert errors == [f"vigie: error: {stack.es_url}: Elasticsearch refused the credentials "
                      "(401): check the API key (VIGIE_ES_API_KEY, --es-api-key: the `encoded` "
                      "value, not expired nor invalidated) or VIGIE_ES_USERNAME/"
                      "VIGIE_ES_PASSWORD"], done.stderr


# --- each key, its role ---------------------------------------------------------------------
def test_the_sink_key_writes_vigie_indices_and_nothing_else(
        stack: Settings, es: Elasticsearch, keys: dict[str, ApiKey]) -> None:
    sink = _as(stack, keys["sink"])
    index = indices.EVENTS.index_for(PAST)
    doc_id = f"it-api-key-{uuid.uuid4().hex}"
    written = sink.bulk(operations=[
        {"index": {"_index": index, "_id": doc_id}},
        {"@timestamp": PAST.isoformat(), "event": {"id": doc_id},
         "organization": {"id": "350000001", "name": "test", "region": "bretagne"}}])
    try:
        assert not written["errors"], written
        assert es.get(index=index, id=doc_id)["found"]
    finally:
        es.delete(index=index, id=doc_id, refresh=True)
    elsewhere = sink.bulk(operations=[{"index": {"_index": "other-index", "_id": "x"}}, {}])
    assert elsewhere["items"][0]["index"]["status"] == 403, elsewhere
    with pytest.raises(AuthorizationException) as refused:
        sink.search(index=".security", size=1)
    assert refused.value.meta.status == 403


def test_the_national_key_reads_everything_and_writes_nothing(
        stack: Settings, keys: dict[str, ApiKey]) -> None:
    national = _as(stack, keys["national"])
    assert national.search(index="vigie-*", size=0)["hits"]["total"] is not None
    with pytest.raises(AuthorizationException) as refused:
        national.index(index=indices.EVENTS.index_for(PAST), document={"x": 1})
    assert refused.value.meta.status == 403


def test_the_bretagne_key_sees_only_bretagne(stack: Settings, keys: dict[str, ApiKey],
                                            two_regions: str) -> None:
    bretagne = _as(stack, keys["bretagne"])
    query = {"term": {"tags": two_regions}}
    hits = bretagne.search(index="vigie-*", query=query)["hits"]["hits"]
    assert [h["_source"]["organization"]["region"] for h in hits] == ["bretagne"]
    for national in (indices.EVENTS.alias, f"{indices.EVENTS.alias}-{Region.CORSE.value}"):
        with pytest.raises(AuthorizationException) as refused:
            bretagne.search(index=national, query=query)
        assert refused.value.meta.status == 403


def test_vigie_report_runs_on_a_key_and_a_ca_alone(stack: Settings,
                                                  keys: dict[str, ApiKey]) -> None:
    done = _vigie(stack, keys["report"].encoded.get_secret_value(), "report",
                  "--from", "2001-01-01", "--to", "2001-02-01", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert '"incidents": 0' in done.stdout
