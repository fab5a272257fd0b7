"""``vigie agent enroll --token``: enrol this agent with the national enrolment service.

The hospital's admin receives a one-time token from the national team (by phone, a ticket:
it is only good once, for one agent id, for a day). The agent makes its key here, posts the
public half with the token over HTTPS verified against the CA it was given, and writes what
comes back: the Kafka client block (SASL user and password) to a file of its own, 0600, that
the agent's configuration names with ``kafka_file:``, and the brokers' CA next to it. The
password is never printed.

Standard library only (``urllib.request`` + ``ssl``): the agent imports nothing national.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from producers.keyfiles import write_private_file
from runtime.errors import CannotWrite, ConfigurationError, DataError, ServiceUnavailable
from schemas.enrolment_api import ENROL_PATH, EnrolRequest, EnrolResponse

#: Default names, next to the agent's configuration.
KAFKA_FILE = "kafka.yaml"
CA_FILE = "kafka-ca.pem"


class EnrolmentRefused(DataError):
    """The national service refused the enrolment (its reason says why: a token unknown,
    expired or used; a key enrolled already)."""


def _endpoint(server: str) -> str:
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigurationError("the enrolment server must be an https:// URL (the answer "
                                 "holds the agent's Kafka password)", source=server)
    return f"https://{parts.netloc}{parts.path.rstrip('/')}{ENROL_PATH}"


def request_enrolment(server: str, token: str, public_key: str, ca: Path | None, *,
                      agent_version: str, timeout: float = 30.0) -> EnrolResponse:
    """Post the token and the public key; the service's certificate is verified against
    ``ca`` (None: the system's trust store), its name included."""
    try:
        body = EnrolRequest(token=token.strip(), public_key=public_key,
                            agent_version=agent_version).model_dump_json().encode("utf-8")
    except ValidationError:
        raise DataError("the token is not one the national team issues (letters, digits, - "
                        "and _, as `vigie agents issue-token` printed it)") from None
    url = _endpoint(server)
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the CA: {exc}",
                                 source=str(ca) if ca else None) from None
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            data = answer.read(1 << 20)
    except urllib.error.HTTPError as refused:
        reason = _reason(refused.read(4096)) or refused.reason
        raise EnrolmentRefused(f"refused ({refused.code}): {reason}", source=url) from None
    except urllib.error.URLError as exc:
        raise ServiceUnavailable(f"cannot reach the enrolment service: {exc.reason}",
                                 source=url) from None
    except (OSError, ssl.SSLError) as exc:
        raise ServiceUnavailable(f"cannot reach the enrolment service: {exc}",
                                 source=url) from None
    try:
        return EnrolResponse.model_validate_json(data)
    except ValidationError:
        raise ServiceUnavailable("the enrolment service answered something that is not an "
                                 "enrolment", source=url) from None


def _reason(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return str(reason) if reason else None


@dataclass(frozen=True)
class WrittenEnrolment:
    """Where the enrolment's files went (nothing secret in here)."""

    kafka_file: Path
    ca_file: Path | None
    config_updated: bool
    sasl_username: str


def kafka_section(response: EnrolResponse, ca_file: Path | None) -> dict[str, Any]:
    """The ``kafka:`` section as :class:`runtime.kafka.KafkaConnection` reads it."""
    block = response.kafka
    section: dict[str, Any] = {"bootstrap": block.bootstrap,
                               "security_protocol": block.security_protocol}
    if ca_file is not None:
        section["ssl_cafile"] = ca_file.name  # relative: next to the kafka file
    if not block.ssl_check_hostname:
        section["ssl_check_hostname"] = False
    section.update(sasl_mechanism=block.sasl_mechanism, sasl_username=block.sasl_username,
                   sasl_password=block.sasl_password)
    return section


def write_enrolment(response: EnrolResponse, kafka_file: Path,
                    config: Path | None) -> WrittenEnrolment:
    """Write the CA and the Kafka block (both 0600, never over a file, never through a
    link), then name the block in ``config`` with ``kafka_file:`` if it does not already
    (a line appended: the admin's comments stay)."""
    ca_file: Path | None = None
    if response.kafka.ca_pem is not None:
        ca_file = kafka_file.with_name(CA_FILE)
        _write_new(ca_file, response.kafka.ca_pem.encode("ascii"))
    header = (f"# Kafka credential of agent {response.agent_id} ({response.establishment_id}),"
              " received from the national enrolment service.\n# Secret: keep it 0600. "
              "Named by the agent configuration's kafka_file.\n")
    text = header + yaml.safe_dump({"kafka": kafka_section(response, ca_file)},
                                   sort_keys=False)
    try:
        _write_new(kafka_file, text.encode("utf-8"))
    except BaseException:
        if ca_file is not None:
            ca_file.unlink(missing_ok=True)
        raise
    updated = False
    if config is not None and config.exists():
        current = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if not isinstance(current, dict) or "kafka_file" not in current:
            reference = (kafka_file.name if kafka_file.parent.resolve() == config.parent.resolve()
                         else str(kafka_file.resolve()))
            with config.open("a", encoding="utf-8") as out:
                out.write(f"\n# written by `vigie agent enroll --token`\nkafka_file: "
                          f"{reference}\n")
            updated = True
    return WrittenEnrolment(kafka_file, ca_file, updated, response.kafka.sasl_username)


def _write_new(path: Path, data: bytes) -> None:
    try:
        write_private_file(path, data)
    except FileExistsError:
        raise CannotWrite("exists already: an enrolment never overwrites a file (move it "
                          "away, or choose another --kafka-out)", source=str(path)) from None
    except OSError as exc:
        raise CannotWrite(exc.strerror or str(exc), source=str(path)) from None
