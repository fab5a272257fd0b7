"""How ``vigie notify`` reaches Alertmanager: over HTTPS with our CA, a client certificate,
basic auth or a bearer token, from the settings; refusals that retrying cannot fix stop it.

The server here is a small HTTPS server of the test's own (the real Alertmanager with a web
configuration file is in tests/integration/test_alertmanager_tls.py)."""

from __future__ import annotations

import base64
import json
import os
import ssl
import threading
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from runtime.errors import ConfigurationError
from runtime.kafka import KafkaConnection
from runtime.settings import load_settings
from schemas.alert import Alert
from sinks.alertmanager import AlertmanagerEndpoint, AlertmanagerRefused, Notifier
from tests.https_files import HttpsFiles, write_https_files

SECRET = "am-s3cret-never-printed"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("VIGIE_"):
            monkeypatch.delenv(name)


@pytest.fixture()
def pki(tmp_path: Path) -> HttpsFiles:
    return write_https_files(tmp_path)


@dataclass
class FakeAlertmanager:
    """Answers ``status`` (HTTP code) to everything and notes each request's path and
    ``Authorization`` header."""

    url: str
    status: int = 200
    seen: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture()
def fake(pki: HttpsFiles) -> Iterator[FakeAlertmanager]:
    state = FakeAlertmanager(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            state.seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = _answer

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"https://localhost:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


ALERT = {"labels": {"alertname": "VigieTest"}, "annotations": {"summary": "s"},
         "startsAt": "2026-01-01T00:00:00+00:00", "endsAt": "2026-01-08T00:00:00+00:00"}


def test_basic_auth_over_https_verified_with_our_ca(fake: FakeAlertmanager,
                                                    pki: HttpsFiles) -> None:
    endpoint = AlertmanagerEndpoint(fake.url, ca=pki.ca, username="vigie",
                                    password=SecretStr(SECRET))
    assert endpoint.check()
    endpoint.post([ALERT])  # type: ignore[list-item]
    expected = "Basic " + base64.b64encode(f"vigie:{SECRET}".encode()).decode()
    assert fake.seen == [("/api/v2/status", expected), ("/api/v2/alerts", expected)]


def test_a_bearer_token_goes_in_the_authorization_header(fake: FakeAlertmanager,
                                                         pki: HttpsFiles) -> None:
    AlertmanagerEndpoint(fake.url, ca=pki.ca, token=SecretStr(SECRET)).post([])
    assert fake.seen == [("/api/v2/alerts", f"Bearer {SECRET}")]


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_a_configuration_error_not_an_outage(
        fake: FakeAlertmanager, pki: HttpsFiles, status: int) -> None:
    fake.status = status
    endpoint = AlertmanagerEndpoint(fake.url, ca=pki.ca, username="vigie",
                                    password=SecretStr(SECRET))
    for attempt in (endpoint.check, lambda: endpoint.post([])):
        with pytest.raises(AlertmanagerRefused, match="refused the credentials") as refused:
            attempt()
        assert isinstance(refused.value, ConfigurationError)
        assert SECRET not in str(refused.value)


def test_a_certificate_we_do_not_trust_is_a_configuration_error(fake: FakeAlertmanager,
                                                                pki: HttpsFiles) -> None:
    for endpoint in (AlertmanagerEndpoint(fake.url),  # the system's CAs
                     AlertmanagerEndpoint(fake.url, ca=pki.other_ca)):
        with pytest.raises(AlertmanagerRefused, match="set alertmanager_ca"):
            endpoint.post([])
    assert fake.seen == [], "nothing may be sent to an Alertmanager we cannot authenticate"


def test_an_outage_stays_retryable(fake: FakeAlertmanager, pki: HttpsFiles) -> None:
    fake.status = 503
    endpoint = AlertmanagerEndpoint(fake.url, ca=pki.ca)
    with pytest.raises(urllib.error.HTTPError):
        endpoint.post([])
    assert endpoint.check() is False  # the notifier starts anyway and retries
    nobody = AlertmanagerEndpoint("http://127.0.0.1:9")  # discard port: refused
    assert nobody.check() is False
    with pytest.raises(OSError):
        nobody.post([])


def test_a_wrong_path_at_start_is_a_configuration_error(fake: FakeAlertmanager,
                                                        pki: HttpsFiles) -> None:
    fake.status = 404
    with pytest.raises(AlertmanagerRefused, match="check alertmanager_url"):
        AlertmanagerEndpoint(fake.url + "/not-alertmanager", ca=pki.ca).check()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"url": "https://h:9093", "certfile": Path("c.pem")}, "both alertmanager_certfile"),
    ({"url": "https://h:9093", "username": "vigie"}, "both alertmanager_username"),
    ({"url": "https://h:9093", "password": SecretStr(SECRET)}, "both alertmanager_username"),
    ({"url": "https://h:9093", "username": "u", "password": SecretStr(SECRET),
      "token": SecretStr(SECRET)}, "not both"),
    ({"url": "http://h:9093", "username": "u", "password": SecretStr(SECRET)},
     "alertmanager_password set but the URL is http"),
    ({"url": "http://h:9093", "token": SecretStr(SECRET)}, "alertmanager_token set"),
    ({"url": "http://h:9093", "ca": Path("ca.pem")}, "alertmanager_ca set"),
    ({"url": f"https://vigie:{SECRET}@h:9093"}, "not the URL"),
    ({"url": "h:9093"}, "must be http"),
])
def test_inconsistent_settings_are_refused_without_echoing_secrets(
        kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        AlertmanagerEndpoint(**kwargs)
    assert SECRET not in str(refused.value)


def test_tls_files_that_do_not_load_stop_the_notifier_at_start(tmp_path: Path,
                                                               pki: HttpsFiles) -> None:
    with pytest.raises(ConfigurationError, match="Alertmanager TLS files"):
        AlertmanagerEndpoint("https://h:9093", ca=tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="Alertmanager TLS files"):
        AlertmanagerEndpoint("https://h:9093", ca=pki.ca, certfile=pki.client_cert,
                             keyfile=pki.server_key)  # not this certificate's key


def test_from_settings_keeps_secrets_out_of_reprs(monkeypatch: pytest.MonkeyPatch,
                                                  pki: HttpsFiles) -> None:
    monkeypatch.setenv("VIGIE_ALERTMANAGER_URL", "https://am.vigie.example:9093")
    monkeypatch.setenv("VIGIE_ALERTMANAGER_CA", str(pki.ca))
    monkeypatch.setenv("VIGIE_ALERTMANAGER_CERTFILE", str(pki.client_cert))
    monkeypatch.setenv("VIGIE_ALERTMANAGER_KEYFILE", str(pki.client_key))
    monkeypatch.setenv("VIGIE_ALERTMANAGER_USERNAME", "vigie")
    monkeypatch.setenv("VIGIE_ALERTMANAGER_PASSWORD", SECRET)
    settings = load_settings()
    endpoint = AlertmanagerEndpoint.from_settings(settings)
    assert endpoint.url == "https://am.vigie.example:9093"
    assert endpoint.certfile == pki.client_cert and endpoint.username == "vigie"
    assert endpoint.password is not None and endpoint.password.get_secret_value() == SECRET
    for shown in (repr(settings), repr(endpoint), repr(Notifier(KafkaConnection(), endpoint))):
        assert SECRET not in shown
    # `vigie notify --alertmanager URL` is an override of the setting.
    assert load_settings(alertmanager_url="https://other:9093").alertmanager_url == (
        "https://other:9093")


class _Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


class _Consumer:
    committed = 0

    def commit(self, asynchronous: bool = True) -> None:
        self.committed += 1


def test_the_notifier_stops_on_refused_credentials_without_committing(
        fake: FakeAlertmanager, pki: HttpsFiles) -> None:
    fake.status = 401
    notifier = Notifier(KafkaConnection(), AlertmanagerEndpoint(
        fake.url, ca=pki.ca, token=SecretStr(SECRET)))
    alert = json.dumps({
        "id": "a" * 32, "@timestamp": datetime.now(UTC).isoformat(), "rule": "VigieTest",
        "incident_id": "b" * 32, "status": "firing", "severity": "high", "summary": "s",
        "labels": {"alertname": "VigieTest"}}).encode()
    assert Alert.model_validate_json(alert)  # a valid alert: only Alertmanager refuses
    consumer = _Consumer()
    with pytest.raises(AlertmanagerRefused):
        notifier._deliver(consumer, [_Message(alert)])  # type: ignore[arg-type,list-item]
    assert consumer.committed == 0, "the alerts must be re-read once the credentials are fixed"
    assert [path for path, _ in fake.seen] == ["/api/v2/alerts"]
