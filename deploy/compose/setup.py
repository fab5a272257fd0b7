"""The one-shot security setup of ``deploy/compose``: the same PKI, passwords, ACLs, roles and
per-principal settings files as the local stack (``deploy/local``), for containers.

``python -m deploy.compose.setup init /etc/vigie`` (the ``setup`` service, before anything
starts) writes into the ``vigie-secrets`` volume, once (idempotent):

* ``pki/``: CA and certificates for ``kafka``, ``elasticsearch`` and ``kibana`` (and
  ``localhost``, for the published ports), ``passwords.json``;
* ``kafka/``: ``server.properties``, the PEM key store, the CA, the cluster id and the
  ``--add-scram`` argument that formats the storage with the admin's credential;
* ``elasticsearch/``: ``certs/``, the file realm (``users``, ``users_roles``, ``roles.yml``);
* ``kibana/``: ``kibana.yml`` (HTTPS on 5601, the ``vigie-kibana`` user) and its certificate;
* ``clients/``: ``admin.yaml``, ``processor.yaml``, ``sink.yaml``, ``notifier.yaml``, ``ca.pem``.

``python -m deploy.compose.setup provision /etc/vigie`` (the ``provision`` service, once Kafka
and Elasticsearch answer) sets the SCRAM users, applies the ACLs, creates the topics and
installs the index templates, exactly as ``vigie stack up`` does.
"""

from __future__ import annotations

import base64
import os
import pwd
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import yaml

from deploy.local.credentials import CLIENTS, LocalSecurity
from deploy.local.pki import Pki
from deploy.local.provision import provision
from deploy.local.settings import StackSettings
from deploy.security import elasticsearch_roles, kafka_acls

HERE = Path(__file__).parent
#: uid of the official Kafka, Elasticsearch and Kibana images' users.
IMAGE_UID = 1000
KIBANA_USER = "vigie-kibana"


@dataclass(frozen=True)
class ComposeSecurity(LocalSecurity):
    """:class:`LocalSecurity` with the containers' host names and a Kibana user."""

    @property
    def pki(self) -> Pki:
        return Pki(self.home / "pki", servers=("kafka", "elasticsearch", "kibana"),
                   service_names=True)

    @property
    def bootstrap(self) -> str:
        return "kafka:19092"

    @property
    def es_url(self) -> str:
        return "https://elasticsearch:9200"

    @property
    def settings_file(self) -> Path:
        return self.client_file("admin")

    def es_users(self) -> list[str]:
        return [*super().es_users(), KIBANA_USER]

    def settings_for(self, kafka_user: str, es_user: str | None) -> dict[str, Any]:
        data = super().settings_for(kafka_user, es_user)
        ca = str(self.home / "clients" / "ca.pem")
        data["kafka"]["ssl_cafile"] = ca
        data["es_ca_certs"] = ca
        return data


def _private(path: Path, data: bytes, uid: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    if uid is not None:
        os.chown(path, uid, uid)
        os.chown(path.parent, uid, uid)


def _vigie_uid() -> int | None:
    try:
        return pwd.getpwnam("vigie").pw_uid
    except KeyError:  # outside the image (tests): leave ownership alone
        return None


def init(root: Path, *, chown: bool = True) -> ComposeSecurity:
    """Everything the containers need before they start (kept if already there)."""
    security = ComposeSecurity(root, StackSettings())
    pki = security.pki.ensure()
    passwords = security.passwords()
    image_uid = IMAGE_UID if chown else None
    vigie_uid = _vigie_uid() if chown else None
    ca = pki.ca_cert.read_bytes()

    kafka = pki.server("kafka")
    admin = security.kafka_user("admin")
    values = {"admin_user": admin, "admin_password": passwords["kafka"][admin],
              "super_users": ";".join([*kafka_acls.load_declaration().super_users,
                                       f"User:{kafka.common_name}"])}
    rendered = Template((HERE / "kafka-server.properties").read_text()).substitute(values)
    _private(root / "kafka" / "server.properties", rendered.encode(), image_uid)
    _private(root / "kafka" / "keystore.pem", kafka.key.read_bytes() + kafka.cert.read_bytes(),
             image_uid)
    _private(root / "kafka" / "ca.pem", ca, image_uid)
    cluster_id = root / "kafka" / "cluster-id"
    if not cluster_id.is_file():
        _private(cluster_id, base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=")
                 .replace(b"-", b"A"), image_uid)
    _private(root / "kafka" / "scram",
             f"SCRAM-SHA-512=[name={admin},password={passwords['kafka'][admin]}]".encode(),
             image_uid)

    es = pki.server("elasticsearch")
    for source, name in ((es.cert, "node.pem"), (es.key, "node.key")):
        _private(root / "elasticsearch" / "certs" / name, source.read_bytes(), image_uid)
    _private(root / "elasticsearch" / "certs" / "ca.pem", ca, image_uid)
    declaration = elasticsearch_roles.load_declaration()
    declaration.users[KIBANA_USER] = ["kibana_system"]
    elasticsearch_roles.write_file_realm(root / "elasticsearch", passwords["elasticsearch"],
                                         declaration)
    if image_uid is not None:
        for name in ("users", "users_roles", "roles.yml"):
            os.chown(root / "elasticsearch" / name, image_uid, image_uid)

    kibana = pki.server("kibana")
    _private(root / "kibana" / "kibana.pem", kibana.cert.read_bytes(), image_uid)
    _private(root / "kibana" / "kibana.key", kibana.key.read_bytes(), image_uid)
    _private(root / "kibana" / "ca.pem", ca, image_uid)
    _private(root / "kibana" / "kibana.yml", yaml.safe_dump(kibana_settings(
        passwords["elasticsearch"][KIBANA_USER])).encode(), image_uid)

    _private(root / "clients" / "ca.pem", ca, vigie_uid)
    files = {"admin": ("admin", "vigie-admin"), **CLIENTS}
    for role, (kafka_role, es_user) in files.items():
        data = security.settings_for(security.kafka_user(kafka_role), es_user)
        _private(security.client_file(role), yaml.safe_dump(data, sort_keys=False).encode(),
                 vigie_uid)
    return security


def kibana_settings(password: str) -> dict[str, Any]:
    """``kibana.yml``: HTTPS on the published port, TLS and a least-privilege user to ES."""
    return {
        "server.host": "0.0.0.0",
        "server.ssl.enabled": True,
        "server.ssl.certificate": "/etc/vigie/kibana/kibana.pem",
        "server.ssl.key": "/etc/vigie/kibana/kibana.key",
        "elasticsearch.hosts": ["https://elasticsearch:9200"],
        "elasticsearch.username": KIBANA_USER,
        "elasticsearch.password": password,
        "elasticsearch.ssl.certificateAuthorities": ["/etc/vigie/kibana/ca.pem"],
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("init", "provision"):
        print("usage: python -m deploy.compose.setup init|provision DIR", file=sys.stderr)
        return 64
    root = Path(argv[1])
    if argv[0] == "init":
        init(root)
    else:
        # The settings files were written by `init`, owned by the image's user: keep them.
        provision(ComposeSecurity(root, StackSettings()), write_clients=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
