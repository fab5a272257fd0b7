"""A private CA, a server certificate for ``localhost``/``127.0.0.1`` and a client certificate
signed by it, plus an unrelated CA: what a test needs to stand up an HTTPS server (Alertmanager,
a metrics endpoint) and to try the right and the wrong trust against it.

Also a bcrypt password hash, as Prometheus web configuration files (``basic_auth_users``) want
one, made with the C library's ``crypt`` (libxcrypt has bcrypt) rather than a new dependency.
"""

from __future__ import annotations

import ipaddress
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class HttpsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it is trusting the wrong one


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(_name(common_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common_name: str,
          usage: x509.ObjectIdentifier, server: bool,
          ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(common_name))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=1))
               .not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None,
           key_path: Path | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None and key_path is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)


def write_https_files(folder: Path) -> HttpsFiles:
    """All the PEM files of :class:`HttpsFiles`, in ``folder``."""
    ca_key, ca_cert = _ca("Vigie test CA")
    _, other_cert = _ca("Some other CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, "localhost",
                                    ExtendedKeyUsageOID.SERVER_AUTH, server=True)
    client_key, client_cert = _leaf(ca_key, ca_cert, "vigie-notifier",
                                    ExtendedKeyUsageOID.CLIENT_AUTH, server=False)
    files = HttpsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key",
                       folder / "client.pem", folder / "client.key", folder / "other-ca.pem")
    _write(files.ca, ca_cert)
    _write(files.other_ca, other_cert)
    _write(files.server_cert, server_cert, server_key, files.server_key)
    _write(files.client_cert, client_cert, client_key, files.client_key)
    return files


def bcrypt_hash(password: str) -> str:
    """A ``$2b$`` bcrypt hash of ``password`` (cost 4: tests, not storage)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # removed in Python 3.13; libxcrypt's bcrypt until then

    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("this C library's crypt() has no bcrypt")
    return hashed
