"""``vigie notify`` against a real Alertmanager that asks for TLS, a client certificate and a
password (its ``--web.config.file``): the right credentials page, the wrong ones stop the
notifier with a configuration error that says which, and its /metrics stay on loopback.

Debian's prometheus-alertmanager (0.25: exporter-toolkit web configuration) is started here,
as in test_alerting.py; the certificates are generated per test. Nothing here uses Kafka or
Elasticsearch: the notifier checks Alertmanager before it reads any alert, and the process test
points it at a Kafka that is not there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from runtime.errors import ConfigurationError
from sinks.alertmanager import AlertmanagerEndpoint, AlertmanagerRefused, PostableAlert
from tests.https_files import HttpsFiles, bcrypt_hash, write_https_files

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
PASSWORD = "pager-s3cret-never-printed"
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class SecuredAlertmanager:
    url: str
    pki: HttpsFiles

    def endpoint(self, **changes: object) -> AlertmanagerEndpoint:
        """The notifier's endpoint with every right credential, but for ``changes``."""
        right: dict[str, object] = {
            "ca": self.pki.ca, "certfile": self.pki.client_cert, "keyfile": self.pki.client_key,
            "username": "vigie", "password": SecretStr(PASSWORD)}
        return AlertmanagerEndpoint(self.url, **{**right, **changes})  # type: ignore[arg-type]


@pytest.fixture()
def secured(tmp_path: Path) -> Iterator[SecuredAlertmanager]:
    if ALERTMANAGER is None:
        pytest.fail("prometheus-alertmanager is not installed (make install-system)")
    pki = write_https_files(tmp_path)
    config = {"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]}
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    web = {
        "tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key),
                              "client_auth_type": "RequireAndVerifyClientCert",
                              "client_ca_file": str(pki.ca)},
        "basic_auth_users": {"vigie": bcrypt_hash(PASSWORD)},
    }
    (tmp_path / "web.yml").write_text(yaml.safe_dump(web))
    port = _free_port()
    log = tmp_path / "am.log"
    proc = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}",
         f"--web.config.file={tmp_path / 'web.yml'}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    am = SecuredAlertmanager(f"https://localhost:{port}", pki)
    try:
        deadline = time.monotonic() + 30
        while not am.endpoint().check():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield am
    finally:
        proc.terminate()
        proc.wait(10)


def _alert(name: str) -> PostableAlert:
    now = datetime.now(UTC)
    return {"labels": {"alertname": name, "region": "bretagne"},
            "annotations": {"summary": "test"}, "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat()}


def test_with_the_right_ca_certificate_and_password_the_alert_reaches_alertmanager(
        secured: SecuredAlertmanager) -> None:
    endpoint = secured.endpoint()
    name = f"VigieTlsTest{int(time.time() * 1000)}"
    endpoint.post([_alert(name)])
    active = json.loads(endpoint.call("/api/v2/alerts"))
    assert [a["labels"]["region"] for a in active if a["labels"]["alertname"] == name] == [
        "bretagne"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"password": SecretStr("not-the-password")}, "refused the credentials"),
    ({"username": None, "password": None}, "refused the credentials"),
    ({"ca": None}, "not trusted"),  # the system's CAs do not know ours
    ({"ca": "other_ca"}, "not trusted"),
    ({"certfile": None, "keyfile": None}, "TLS with Alertmanager failed"),
])
def test_wrong_credentials_or_trust_are_refused_clearly(
        secured: SecuredAlertmanager, changes: dict[str, object], message: str) -> None:
    if changes.get("ca") == "other_ca":
        changes = {"ca": secured.pki.other_ca}
    endpoint = secured.endpoint(**changes)
    for attempt in (endpoint.check, lambda: endpoint.post([_alert("VigieRefused")])):
        with pytest.raises(AlertmanagerRefused, match=message) as refused:
            attempt()
        assert isinstance(refused.value, ConfigurationError)
        assert PASSWORD not in str(refused.value)


def test_plain_http_to_the_tls_port_is_a_configuration_error(
        secured: SecuredAlertmanager) -> None:
    plain = AlertmanagerEndpoint(secured.url.replace("https://", "http://"))
    with pytest.raises(AlertmanagerRefused, match="check alertmanager_url"):
        plain.check()


def _non_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("this host has no network interface besides loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this host has no network interface besides loopback")
    return address


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _notify(secured: SecuredAlertmanager, tmp_path: Path, password: str,
            metrics_port: int) -> subprocess.Popen[bytes]:
    """``vigie notify`` as an operator runs it: the URL on the command line, the rest from
    ``VIGIE_*``; Kafka is absent (the notifier only polls it in vain)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("VIGIE_")}
    env.update({
        "VIGIE_HOME": str(tmp_path / "home"), "VIGIE_KAFKA__BOOTSTRAP": "127.0.0.1:1",
        "VIGIE_NOTIFIER_GROUP": f"tls-test-{int(time.time() * 1000)}",
        "VIGIE_METRICS_PORT": str(metrics_port),
        "VIGIE_ALERTMANAGER_CA": str(secured.pki.ca),
        "VIGIE_ALERTMANAGER_CERTFILE": str(secured.pki.client_cert),
        "VIGIE_ALERTMANAGER_KEYFILE": str(secured.pki.client_key),
        "VIGIE_ALERTMANAGER_USERNAME": "vigie", "VIGIE_ALERTMANAGER_PASSWORD": password})
    return subprocess.Popen(
        [sys.executable, "-m", "vigie.cli", "notify", "--alertmanager", secured.url],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_vigie_notify_with_a_wrong_password_exits_with_a_configuration_error(
        secured: SecuredAlertmanager, tmp_path: Path) -> None:
    proc = _notify(secured, tmp_path, "not-the-password", _free_port())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 78, err.decode()
    assert "refused the credentials" in err.decode()
    assert PASSWORD not in (out + err).decode() and "not-the-password" not in (
        out + err).decode()


def test_vigie_notify_runs_with_the_right_credentials_and_its_metrics_stay_local(
        secured: SecuredAlertmanager, tmp_path: Path) -> None:
    address = _non_loopback_address()
    port = _free_port()
    proc = _notify(secured, tmp_path, PASSWORD, port)
    try:
        deadline = time.monotonic() + 30
        while not _reachable("127.0.0.1", port):
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the notifier never served /metrics"
            time.sleep(0.3)
        time.sleep(2)  # past the Alertmanager check: a refusal would have ended it by now
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert not _reachable(address, port), f"/metrics is reachable at {address}:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert PASSWORD not in err.decode()
