"""What ``vigie stack up`` does once both servers answer: users, rights, topics, templates,
and the clients' settings files. Every step is idempotent, so it runs at each ``up``.

1. Kafka SCRAM credentials for every principal of ``deploy/security/kafka-acls.yaml`` (the
   admin's was bootstrapped at format time) and the local agent's;
2. the ACLs of that file;
3. the pipeline's topics (``schemas/topics.py``), as the admin: no other principal may create
   topics;
4. the Elasticsearch index templates, as the setup user (``vigie_setup`` role): the sink does
   not install them and needs no template privilege;
5. ``<home>/vigie.yaml`` and ``<home>/clients/<role>.yaml``;
6. the Elasticsearch API keys of ``api_keys:`` in elasticsearch-roles.yaml, as the admin,
   each replacing (invalidating) the previous key of its name, into
   ``<home>/clients/api-keys.yaml``. An Elasticsearch that cannot store keys (a node started
   before the ``vigie-analysis`` plugin existed: the integ-test distribution lacks the analysis
   module its ``.security`` index needs) gets a warning, not a failed start: every process
   here authenticates as a file-realm user.
"""

from __future__ import annotations

import logging
from pathlib import Path

from deploy.local.credentials import ADMIN_ES_USER, LOCAL_AGENT, LocalSecurity
from deploy.security.elasticsearch_roles import write_file_realm
from deploy.security.kafka_acls import apply_acls, upsert_scram_users
from runtime.topics import ensure_topics


def provision(security: LocalSecurity, es_config: Path | None = None, *,
              write_clients: bool = True) -> list[Path]:
    """Apply users, ACLs, topics and templates; returns the settings files written.
    ``es_config``: the running node's configuration folder, whose file realm is rewritten
    (Elasticsearch reloads it by itself) so that a changed role file applies without restart."""
    passwords = security.passwords()
    if es_config is not None and es_config.is_dir():
        write_file_realm(es_config, passwords["elasticsearch"])
    admin_connection = security.kafka("admin")
    admin = admin_connection.admin()
    upsert_scram_users(admin, passwords["kafka"])
    apply_acls(admin, agent_ids=[LOCAL_AGENT])
    ensure_topics(admin_connection)
    install_index_templates(security)
    if not write_clients:
        return []
    return [*security.write_client_files(), *create_api_keys(security)]


def install_index_templates(security: LocalSecurity) -> list[str]:
    """The index templates, installed by the ``vigie-setup`` user (templates only)."""
    from elasticsearch import Elasticsearch

    from sinks.elasticsearch.templates import install_templates

    es = Elasticsearch(security.es_url, basic_auth=security.es_auth("vigie-setup"),
                       ca_certs=str(security.pki.ca_cert), request_timeout=30)
    try:
        return install_templates(es)
    finally:
        es.close()


def create_api_keys(security: LocalSecurity) -> list[Path]:
    """The declared API keys, rotated, written to ``clients/api-keys.yaml``; nothing (and a
    warning) when this Elasticsearch cannot store keys."""
    from elasticsearch import Elasticsearch

    from deploy.security.elasticsearch_api_keys import ApiKeysUnsupported, rotate_api_keys

    es = Elasticsearch(security.es_url, basic_auth=security.es_auth(ADMIN_ES_USER),
                       ca_certs=str(security.pki.ca_cert), request_timeout=30)
    try:
        keys = rotate_api_keys(es)
    except ApiKeysUnsupported as unsupported:
        logging.getLogger(__name__).warning("no Elasticsearch API keys: %s", unsupported)
        security.api_keys_file.unlink(missing_ok=True)
        return []
    finally:
        es.close()
    return [security.write_api_keys(keys)]
