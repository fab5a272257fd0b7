"""Elasticsearch API keys: the setting (where it comes from, what wins), the client it builds,
the error an operator sees when it is refused, and how keys are made from the declared roles
(against a stand-in for Elasticsearch's security API; the real stack is
tests/integration/test_es_api_keys.py)."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import AuthenticationException, AuthorizationException, BadRequestError

import runtime.elasticsearch
from deploy.local import provision
from deploy.local.credentials import LocalSecurity
from deploy.local.settings import StackSettings
from deploy.security import elasticsearch_roles
from deploy.security.elasticsearch_api_keys import (
    ApiKeysUnsupported,
    create_api_key,
    rotate_api_keys,
)
from runtime.elasticsearch import make_client
from runtime.errors import PermissionDenied, UsageError, explain
from runtime.settings import load_settings
from tests.unit.test_cli_errors import error_line, run

KEY = base64.b64encode(b"key-id:key-secret-never-printed").decode()
ROLES = elasticsearch_roles.load_declaration()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("VIGIE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(runtime.elasticsearch, "_both_credentials_said", [])


def _yaml(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "vigie.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- the setting ----------------------------------------------------------------------------
def test_the_api_key_comes_from_the_file_then_the_environment_then_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _yaml(tmp_path, {"es_api_key": "from-file"})
    assert load_settings(config).es_api_key.get_secret_value() == "from-file"  # type: ignore[union-attr]
    monkeypatch.setenv("VIGIE_ES_API_KEY", "from-env")
    assert load_settings(config).es_api_key.get_secret_value() == "from-env"  # type: ignore[union-attr]
    overridden = load_settings(config, es_api_key="from-option")
    assert overridden.es_api_key is not None
    assert overridden.es_api_key.get_secret_value() == "from-option"
    assert "from-option" not in repr(overridden) and "from-option" not in str(overridden)


def test_an_api_key_is_sent_as_such_and_no_password_with_it(
        caplog: pytest.LogCaptureFixture) -> None:
    only_key = make_client(load_settings(es_url="https://es:9200", es_api_key=KEY))
    assert only_key._headers["authorization"] == f"ApiKey {KEY}"

    caplog.set_level(logging.DEBUG, logger="runtime.elasticsearch")
    for _ in range(2):
        both = make_client(load_settings(es_url="https://es:9200", es_api_key=KEY,
                                         es_username="vigie-admin", es_password="pw"))
        assert both._headers["authorization"] == f"ApiKey {KEY}"
    said = [r for r in caplog.records if "using the API key" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.DEBUG
    assert KEY not in caplog.text

    user = make_client(load_settings(es_url="https://es:9200", es_username="u",
                                     es_password="p"))
    assert user._headers["authorization"].startswith("Basic ")


# --- a refused credential or right ----------------------------------------------------------
def _api_error(kind: type[Any], status: int, reason: str) -> Any:
    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(),
                           duration=0.0, node=NodeConfig("https", "es", 9200))
    body = {"error": {"type": "security_exception", "reason": reason}, "status": status}
    return kind("security_exception", meta, body)


def test_a_refused_key_is_one_line_and_the_permission_exit_code() -> None:
    make_client(load_settings(es_url="https://es:9200", es_api_key=KEY))
    refused = explain(_api_error(AuthenticationException, 401, "unable to authenticate"))
    assert isinstance(refused, PermissionDenied) and refused.exit_code == 77
    assert str(refused).startswith("https://es:9200: Elasticsearch refused the credentials")
    assert "VIGIE_ES_API_KEY" in str(refused) and "\n" not in str(refused)

    forbidden = explain(_api_error(AuthorizationException, 403,
                                   "action [indices:data/write/bulk] is unauthorized"))
    assert isinstance(forbidden, PermissionDenied)
    assert "indices:data/write/bulk" in str(forbidden)


def test_the_report_passes_its_es_options_to_the_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--es-api-key` and `--es-ca` reach the client; a refusal is the one-line error."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not read: the client is a stand-in")
    seen: list[Any] = []

    def refusing_client(settings: Any, request_timeout: float = 30.0) -> Any:
        seen.append(settings)
        raise _api_error(AuthenticationException, 401, "unable to authenticate")

    monkeypatch.setattr(runtime.elasticsearch, "make_client", refusing_client)
    code, out, err = run(capsys, "report", "--from", "2001-01-01", "--to", "2001-02-01",
                         "--es-api-key", KEY, "--es-ca", str(ca))
    assert code == 77 and out == ""
    assert "Elasticsearch refused the credentials (401)" in error_line(err)
    assert KEY not in err
    assert seen[0].es_api_key.get_secret_value() == KEY and seen[0].es_ca_certs == ca

    monkeypatch.setenv("VIGIE_ES_API_KEY", "from-env")
    run(capsys, "incidents", "list")
    assert seen[1].es_api_key.get_secret_value() == "from-env"


# --- making keys from the declared roles ----------------------------------------------------
class FakeSecurity:
    """Elasticsearch's API-key endpoints, in memory: which keys exist, which are active."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        self.unsupported = False

    def create_api_key(self, *, name: str, role_descriptors: dict[str, Any],
                       expiration: str | None, metadata: dict[str, Any]) -> Any:
        if self.unsupported:
            raise _bad_request("Unknown filter type [pattern_capture] for [email]")
        key_id = f"id-{len(self.keys)}"
        self.keys[key_id] = {"id": key_id, "name": name, "roles": role_descriptors,
                             "expiration": expiration, "metadata": metadata, "active": True}
        encoded = base64.b64encode(f"{key_id}:secret".encode()).decode()
        return _Body({"id": key_id, "name": name, "api_key": "secret", "encoded": encoded})

    def get_api_key(self, *, name: str, active_only: bool) -> dict[str, Any]:
        return {"api_keys": [k for k in self.keys.values()
                             if k["name"] == name and (k["active"] or not active_only)]}

    def invalidate_api_key(self, *, ids: list[str]) -> dict[str, Any]:
        for key_id in ids:
            self.keys[key_id]["active"] = False
        return {"invalidated_api_keys": ids}


class _Body(dict[str, Any]):
    @property
    def body(self) -> dict[str, Any]:
        return dict(self)


class FakeElasticsearch:
    def __init__(self) -> None:
        self.security = FakeSecurity()

    def close(self) -> None:
        pass


def _bad_request(reason: str) -> BadRequestError:
    meta = ApiResponseMeta(status=400, http_version="1.1", headers=HttpHeaders(),
                           duration=0.0, node=NodeConfig("https", "es", 9200))
    return BadRequestError("illegal_argument_exception", meta,
                           {"error": {"type": "illegal_argument_exception", "reason": reason}})


def test_a_key_carries_exactly_its_declared_role() -> None:
    es = FakeElasticsearch()
    key = create_api_key(es, "ars-bretagne-script",  # type: ignore[arg-type]
                         "vigie_regional_operator_bretagne", expiration="30d")
    stored = es.security.keys[key.id]
    assert stored["roles"] == {"vigie_regional_operator_bretagne":
                               ROLES.roles["vigie_regional_operator_bretagne"]}
    assert stored["expiration"] == "30d"
    assert base64.b64decode(key.encoded.get_secret_value()) == f"{key.id}:secret".encode()
    assert "secret" not in repr(key)


def test_an_undeclared_role_or_a_bad_expiration_is_refused_before_asking() -> None:
    es = FakeElasticsearch()
    with pytest.raises(UsageError, match=r"no role 'superuser'.*vigie_sink"):
        create_api_key(es, "k", "superuser")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--expiration"):
        create_api_key(es, "k", "vigie_sink", expiration="2 weeks")  # type: ignore[arg-type]
    assert es.security.keys == {}


def test_rotation_leaves_one_active_key_per_name() -> None:
    es = FakeElasticsearch()
    first = rotate_api_keys(es)  # type: ignore[arg-type]
    second = rotate_api_keys(es)  # type: ignore[arg-type]
    assert {k.name: k.role for k in second} == ROLES.api_keys
    active = [k for k in es.security.keys.values() if k["active"]]
    assert sorted(k["id"] for k in active) == sorted(k.id for k in second)
    assert not {k.id for k in first} & {k["id"] for k in active}


def test_the_declared_keys_are_the_unattended_roles() -> None:
    assert ROLES.api_keys["vigie-sink"] == "vigie_sink"
    assert ROLES.api_keys["vigie-national"] == "vigie_national_operator"
    assert ROLES.api_keys["vigie-ars-bretagne"] == "vigie_regional_operator_bretagne"


def test_an_api_key_naming_an_undeclared_role_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(elasticsearch_roles.DECLARATION.read_text())
    data["api_keys"] = {"vigie-sink": "vigie_sinkk"}
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="vigie_sinkk"):
        elasticsearch_roles.load_declaration(path)


# --- the setup step -------------------------------------------------------------------------
def _security(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              es: FakeElasticsearch) -> LocalSecurity:
    monkeypatch.setattr("elasticsearch.Elasticsearch", lambda *a, **k: es)
    security = LocalSecurity(tmp_path, StackSettings())
    monkeypatch.setattr(LocalSecurity, "es_auth", lambda self, user="x": (user, "pw"))
    return security


def test_the_setup_step_writes_the_keys_owner_only(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    es = FakeElasticsearch()
    security = _security(tmp_path, monkeypatch, es)
    assert provision.create_api_keys(security) == [security.api_keys_file]
    assert stat.S_IMODE(security.api_keys_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(security.api_keys_file.parent.stat().st_mode) == 0o700
    written = yaml.safe_load(security.api_keys_file.read_text())
    assert set(written["keys"]) == set(ROLES.api_keys)
    assert written["es_ca_certs"] == str(security.pki.ca_cert)
    sink_id = written["keys"]["vigie-sink"]["id"]
    assert security.api_key("vigie-sink") == base64.b64encode(
        f"{sink_id}:secret".encode()).decode()


def test_an_elasticsearch_that_cannot_store_keys_warns_and_writes_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    es = FakeElasticsearch()
    es.security.unsupported = True
    security = _security(tmp_path, monkeypatch, es)
    security.api_keys_file.parent.mkdir(parents=True)
    security.api_keys_file.write_text("keys of an older cluster")
    assert provision.create_api_keys(security) == []
    assert not security.api_keys_file.exists()
    assert "cannot store API keys" in caplog.text and "pattern_capture" in caplog.text
    with pytest.raises(ApiKeysUnsupported):
        create_api_key(es, "k", "vigie_sink")  # type: ignore[arg-type]
