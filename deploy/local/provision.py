"""What ``vigie stack up`` does once both servers answer: users, rights, topics, templates,
and the clients' settings files. Every step is idempotent, so it runs at each ``up``.

1. Kafka SCRAM credentials for every principal of ``deploy/security/kafka-acls.yaml`` (the
   admin's was bootstrapped at format time) and the local agent's;
2. the ACLs of that file;
3. the pipeline's topics (``schemas/topics.py``), as the admin: no other principal may create
   topics;
4. the Elasticsearch index templates, as the setup user (``vigie_setup`` role): the sink does
   not install them and needs no template privilege;
5. ``<home>/vigie.yaml`` and ``<home>/clients/<role>.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from deploy.local.credentials import LOCAL_AGENT, LocalSecurity
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
    return security.write_client_files() if write_clients else []


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
