"""The local stack's private certificate authority and the servers' certificates.

``vigie stack up`` makes them once under ``<home>/pki/`` (folder 0700, files 0600) and reuses
them afterwards: a CA that changed at every start would invalidate every client's settings
file. Kafka and Elasticsearch each get a certificate for ``localhost`` and ``127.0.0.1`` (the
only names the local stack answers on), signed by the CA that clients are told to trust.
Nothing leaves this machine: the CA's private key is only ever read here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The servers that get a certificate, by file stem (also their certificate's common name
#: suffix: ``CN=vigie-kafka`` is the principal of the broker on its own controller listener).
SERVERS = ("kafka", "elasticsearch")
#: Names the local servers answer on, and so the names in their certificates.
DNS_NAMES = ("localhost",)
IP_ADDRESSES = ("127.0.0.1",)
CA_YEARS = 10
SERVER_YEARS = 2


@dataclass(frozen=True)
class ServerFiles:
    """PEM files of one server: certificate (with the CA after it) and private key."""

    cert: Path
    key: Path

    @property
    def common_name(self) -> str:
        return f"vigie-{self.cert.stem}"


@dataclass(frozen=True)
class Pki:
    """The files under ``<home>/pki``. ``servers``: who gets a certificate; with
    ``service_names`` each one's name is in its certificate too (compose: ``kafka``,
    ``elasticsearch``... are host names on the containers' network)."""

    root: Path
    servers: tuple[str, ...] = SERVERS
    service_names: bool = False

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def server(self, name: str) -> ServerFiles:
        return ServerFiles(self.root / f"{name}.pem", self.root / f"{name}.key")

    def ensure(self) -> Pki:
        """Create what is missing (idempotent: existing files are kept as they are)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        if not (self.ca_cert.is_file() and self.ca_key.is_file()):
            key = ec.generate_private_key(ec.SECP256R1())
            _write(self.ca_key, _key_pem(key))
            _write(self.ca_cert, _ca_certificate(key).public_bytes(serialization.Encoding.PEM))
            for name in self.servers:  # certificates of a previous CA are worthless now
                self.server(name).cert.unlink(missing_ok=True)
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.ca_key}: not the EC key this module writes")
        for name in self.servers:
            files = self.server(name)
            if files.cert.is_file() and files.key.is_file():
                continue
            key = ec.generate_private_key(ec.SECP256R1())
            dns = (name, *DNS_NAMES) if self.service_names else DNS_NAMES
            cert = _server_certificate(files.common_name, dns, key, ca_key, ca_cert)
            _write(files.key, _key_pem(key))
            _write(files.cert, cert.public_bytes(serialization.Encoding.PEM)
                   + ca_cert.public_bytes(serialization.Encoding.PEM))
        return self


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only (created 0600, never world-readable)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8, unencrypted: what both Kafka's PEM key store and Elasticsearch read."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigie local stack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Vigie local CA")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_now()).not_valid_after(_now() + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(common_name: str, dns_names: tuple[str, ...],
                        key: ec.EllipticCurvePrivateKey,
                        ca_key: ec.EllipticCurvePrivateKey,
                        ca_cert: x509.Certificate) -> x509.Certificate:
    """A certificate valid for server and client authentication: the Kafka broker presents
    it to its own controller listener (mutual TLS) as well as to clients."""
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + dt.timedelta(days=365 * SERVER_YEARS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
