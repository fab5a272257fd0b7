"""Generated passwords of the local stack and the settings files that carry them to clients.

Passwords are made once (``secrets.token_urlsafe``) and kept in ``<home>/pki/passwords.json``
(0600, in the 0700 PKI folder), so a second ``vigie stack up`` changes nothing. Each client
principal gets a Vigie settings file holding its own Kafka and Elasticsearch credentials:

* ``<home>/vigie.yaml``: the operator/admin one, which every Vigie process of this home reads
  by default (``runtime.settings``), so ``vigie`` commands, the demo and the tests connect
  with no extra step;
* ``<home>/clients/<role>.yaml``: the processor's, the sink's and the notifier's, which the
  harness (:mod:`deploy.local.pipeline`) hands to each child process;
* ``<home>/clients/api-keys.yaml``: the Elasticsearch API keys of the roles that run
  unattended (``api_keys:`` of elasticsearch-roles.yaml), rotated at each provisioning. They
  sit in a file of their own rather than as ``es_api_key`` in the client files: those files
  are what the local processes run with (user and password of the file realm, which need no
  ``.security`` index), and a key is for handing to one process or script elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from deploy.local.pki import Pki
from deploy.local.settings import StackSettings
from deploy.security import elasticsearch_roles, kafka_acls
from runtime.kafka import KafkaConnection

if TYPE_CHECKING:  # the Elasticsearch client is imported only where keys are made
    from deploy.security.elasticsearch_api_keys import ApiKey

#: The enrolled agent the local stack creates a Kafka credential for (tests, demo).
LOCAL_AGENT = "local-agent"

#: Client settings files: role -> (Kafka role in kafka-acls.yaml, Elasticsearch user or None).
CLIENTS: dict[str, tuple[str, str | None]] = {
    "processor": ("processor", None),
    "sink": ("sink", "vigie-sink"),
    "notifier": ("notifier", "vigie-notifier"),
}
ADMIN_KAFKA_ROLE = "admin"
ADMIN_ES_USER = "vigie-admin"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


@dataclass(frozen=True)
class LocalSecurity:
    """Everything a client of the local stack needs: addresses, CA and passwords."""

    home: Path
    ports: StackSettings

    @property
    def pki(self) -> Pki:
        return Pki(self.home / "pki")

    @property
    def passwords_file(self) -> Path:
        return self.pki.root / "passwords.json"

    @property
    def settings_file(self) -> Path:
        """The default settings file of this home (``runtime.settings.default_config``)."""
        return self.home / "vigie.yaml"

    def client_file(self, role: str) -> Path:
        return self.home / "clients" / f"{role}.yaml"

    @property
    def api_keys_file(self) -> Path:
        return self.home / "clients" / "api-keys.yaml"

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.ports.stack_kafka_port}"

    @property
    def es_url(self) -> str:
        return f"https://localhost:{self.ports.stack_es_port}"

    # --- passwords ----------------------------------------------------------------------
    def kafka_users(self) -> list[str]:
        declaration = kafka_acls.load_declaration()
        return [p.user for p in declaration.principals.values()] + [
            declaration.agent(LOCAL_AGENT).user]

    def es_users(self) -> list[str]:
        return list(elasticsearch_roles.load_declaration().users)

    def passwords(self) -> dict[str, dict[str, str]]:
        """``{"kafka": {user: password}, "elasticsearch": {...}}``, generated for users
        that have none yet (idempotent)."""
        self.pki.ensure()
        stored: dict[str, dict[str, str]] = {"kafka": {}, "elasticsearch": {}}
        if self.passwords_file.is_file():
            stored.update(json.loads(self.passwords_file.read_text()))
        changed = False
        for system, users in (("kafka", self.kafka_users()),
                              ("elasticsearch", self.es_users())):
            for user in users:
                if user not in stored[system]:
                    stored[system][user] = secrets.token_urlsafe(24)
                    changed = True
        if changed or not self.passwords_file.is_file():
            _write_private(self.passwords_file, json.dumps(stored, indent=2, sort_keys=True))
        return stored

    # --- connections --------------------------------------------------------------------
    def kafka_user(self, role: str) -> str:
        declaration = kafka_acls.load_declaration()
        if role == "agent":
            return declaration.agent(LOCAL_AGENT).user
        return declaration.principals[role].user

    def kafka(self, role: str = ADMIN_KAFKA_ROLE) -> KafkaConnection:
        """The SASL_SSL connection of a principal of kafka-acls.yaml (``agent``: the local
        agent's)."""
        user = self.kafka_user(role)
        return KafkaConnection.model_validate(self._kafka_block(user))

    def _kafka_block(self, user: str) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap, "security_protocol": "SASL_SSL",
                "ssl_cafile": str(self.pki.ca_cert), "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": user, "sasl_password": self.passwords()["kafka"][user]}

    def es_auth(self, user: str = ADMIN_ES_USER) -> tuple[str, str]:
        return user, self.passwords()["elasticsearch"][user]

    def settings_for(self, kafka_user: str, es_user: str | None) -> dict[str, Any]:
        """A Vigie settings file's content (``runtime.settings.Settings`` keys)."""
        data: dict[str, Any] = {"kafka": self._kafka_block(kafka_user), "es_url": self.es_url,
                                "es_ca_certs": str(self.pki.ca_cert)}
        if es_user is not None:
            data["es_username"], data["es_password"] = self.es_auth(es_user)
        return data

    def write_client_files(self) -> list[Path]:
        """``vigie.yaml`` (admin) and ``clients/<role>.yaml``; rewritten each time, 0600."""
        header = ("# Written by `vigie stack up` (deploy/local/credentials.py): the local "
                  "stack's address, CA and\n# this principal's generated credentials. "
                  "Regenerated at each start; do not edit.\n")
        written = []
        files: dict[Path, tuple[str, str | None]] = {
            self.settings_file: (self.kafka_user(ADMIN_KAFKA_ROLE), ADMIN_ES_USER)}
        for role, (kafka_role, es_user) in CLIENTS.items():
            files[self.client_file(role)] = (self.kafka_user(kafka_role), es_user)
        for path, (kafka_user, es_user) in files.items():
            _write_private(path, header + yaml.safe_dump(self.settings_for(kafka_user, es_user),
                                                         sort_keys=False))
            written.append(path)
        (self.home / "clients").chmod(0o700)
        return written

    def write_api_keys(self, keys: list[ApiKey]) -> Path:
        """``clients/api-keys.yaml`` (0600): the address, the CA and, per key name, its role,
        id and the ``es_api_key`` value a client sets (VIGIE_ES_API_KEY)."""
        header = ("# Written by `vigie stack up` (deploy/local/provision.py): "
                  "Elasticsearch API keys, one role each\n# "
                  "(deploy/security/elasticsearch-roles.yaml, api_keys). Rotated at "
                  "each provisioning; do not edit.\n")
        data = {"es_url": self.es_url, "es_ca_certs": str(self.pki.ca_cert), "keys": {
            key.name: {"role": key.role, "id": key.id,
                       "es_api_key": key.encoded.get_secret_value()} for key in keys}}
        _write_private(self.api_keys_file, header + yaml.safe_dump(data, sort_keys=False))
        (self.home / "clients").chmod(0o700)
        return self.api_keys_file

    def api_key(self, name: str) -> str:
        """The encoded key ``name`` of ``clients/api-keys.yaml`` (KeyError: none written)."""
        data = yaml.safe_load(self.api_keys_file.read_text())
        return str(data["keys"][name]["es_api_key"])


def local_security(home: Path) -> LocalSecurity:
    return LocalSecurity(home, StackSettings())
