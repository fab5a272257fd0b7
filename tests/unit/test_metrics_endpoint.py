"""/metrics is served to the host itself unless an operator says otherwise, and over TLS (with
client certificates, if asked) when configured.

What it tells (topics, refusals per establishment's agent, errors) is nobody else's business
on a hospital's or the platform's network: the default bind is the loopback interface, and a
half or broken TLS configuration stops the process instead of serving in clear."""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from producers.agent.config import AgentConfig, load_config
from producers.signing import generate_key
from runtime.errors import ConfigurationError
from runtime.metrics import DEFAULT_HOST, MetricsTls, serve_metrics
from runtime.settings import SettingsError, load_settings
from tests.https_files import HttpsFiles, write_https_files
from tests.unit.agent.conftest import ORG


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VIGIE_* variable of the developer's shell or CI decides the defaults tested here."""
    for name in list(os.environ):
        if name.upper().startswith("VIGIE_"):
            monkeypatch.delenv(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _non_loopback_address() -> str:
    """An IPv4 address of this host that other hosts would use to reach it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routes, sends nothing (UDP)
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


def _scrape(url: str, context: ssl.SSLContext | None = None) -> str:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return str(response.read().decode())


def test_by_default_metrics_answer_on_loopback_and_not_on_the_network() -> None:
    address = _non_loopback_address()
    defaults = (load_settings().metrics_host, AgentConfig.model_fields["metrics_host"].default)
    assert defaults == (DEFAULT_HOST, DEFAULT_HOST) == ("127.0.0.1", "127.0.0.1")

    port = _free_port()
    assert serve_metrics("processor", port, host=load_settings().metrics_host) == port
    assert "vigie_events_in_total" in _scrape(f"http://127.0.0.1:{port}/metrics")
    assert not _reachable(address, port), f"/metrics is reachable at {address}:{port}"

    # The probe can tell: the same server bound to every interface is reachable there.
    exposed = _free_port()
    assert serve_metrics("processor", exposed, host="0.0.0.0") == exposed
    assert _reachable(address, exposed)


@pytest.fixture()
def pki(tmp_path: Path) -> HttpsFiles:
    return write_https_files(tmp_path)


def test_metrics_over_tls_are_verified_with_the_ca_and_refuse_plain_http(
        pki: HttpsFiles) -> None:
    port = _free_port()
    serve_metrics("sink", port, tls=MetricsTls(certfile=pki.server_cert,
                                               keyfile=pki.server_key))
    trusted = ssl.create_default_context(cafile=str(pki.ca))
    assert "vigie_batch_seconds" in _scrape(f"https://localhost:{port}/metrics", trusted)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _scrape(f"http://localhost:{port}/metrics")


def test_with_a_client_ca_only_scrapers_holding_its_certificate_may_read(
        pki: HttpsFiles) -> None:
    port = _free_port()
    serve_metrics("sink", port, tls=MetricsTls(certfile=pki.server_cert, keyfile=pki.server_key,
                                               client_cafile=pki.ca))
    anonymous = ssl.create_default_context(cafile=str(pki.ca))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _scrape(f"https://localhost:{port}/metrics", anonymous)
    scraper = ssl.create_default_context(cafile=str(pki.ca))
    scraper.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    assert "vigie_events_out_total" in _scrape(f"https://localhost:{port}/metrics", scraper)


def test_a_tls_file_that_does_not_load_stops_the_process(pki: HttpsFiles,
                                                         tmp_path: Path) -> None:
    port = _free_port()
    with pytest.raises(ConfigurationError, match="metrics certificate"):
        serve_metrics("sink", port, tls=MetricsTls(certfile=tmp_path / "missing.pem",
                                                   keyfile=pki.server_key))
    with pytest.raises(ConfigurationError, match="client CA"):
        serve_metrics("sink", port, tls=MetricsTls(certfile=pki.server_cert,
                                                   keyfile=pki.server_key,
                                                   client_cafile=tmp_path / "missing-ca.pem"))
    assert not _reachable("127.0.0.1", port), "nothing may be served in that case"


@pytest.mark.parametrize("tls", [{"certfile": "m.pem"}, {"keyfile": "m.key"},
                                 {"client_cafile": "ca.pem"}])
def test_half_configured_metrics_tls_is_refused(tls: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for field, value in tls.items():
        monkeypatch.setenv(f"VIGIE_METRICS_TLS__{field.upper()}", value)
    with pytest.raises(SettingsError, match="metrics"):
        load_settings()


def test_metrics_address_and_tls_come_from_the_file_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vigie.yaml"
    config.write_text(yaml.safe_dump({
        "metrics_host": "10.1.2.3",
        "metrics_tls": {"certfile": "/etc/vigie/m.pem", "keyfile": "/etc/vigie/m.key"}}))
    monkeypatch.setenv("VIGIE_METRICS_TLS__CLIENT_CAFILE", "/etc/vigie/scrapers-ca.pem")
    settings = load_settings(config)
    assert settings.metrics_host == "10.1.2.3"
    # The environment adds to the file's block, field by field (as for kafka).
    assert settings.metrics_tls == MetricsTls(certfile=Path("/etc/vigie/m.pem"),
                                              keyfile=Path("/etc/vigie/m.key"),
                                              client_cafile=Path("/etc/vigie/scrapers-ca.pem"))


def test_the_agent_takes_its_metrics_address_and_tls_files_relative_to_its_config(
        tmp_path: Path) -> None:
    generate_key(tmp_path / "agent.key")
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "establishment": ORG.model_dump(mode="json"), "agent_id": "chu-test-01",
        "key_path": "agent.key", "state_dir": "state", "metrics_host": "0.0.0.0",
        "metrics_tls": {"certfile": "tls/metrics.pem", "keyfile": "tls/metrics.key",
                        "client_cafile": "/etc/vigie/scrapers-ca.pem"}}))
    config = load_config(path)
    assert config.metrics_host == "0.0.0.0"
    assert config.metrics_tls == MetricsTls(certfile=tmp_path / "tls" / "metrics.pem",
                                            keyfile=tmp_path / "tls" / "metrics.key",
                                            client_cafile=Path("/etc/vigie/scrapers-ca.pem"))
