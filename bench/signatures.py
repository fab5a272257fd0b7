"""Ed25519 sign and verify with OpenSSL (``cryptography``) and libsodium (PyNaCl), per record.

    .venv/bin/python bench/signatures.py [--records 5000]

Why the processor verifies and the agent signs through libsodium: both give the same
signatures (RFC 8032, deterministic); this prints the CPU cost of each per ~1 KB record and
writes ``bench/results/signatures.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import SigningKey

RESULTS = Path(__file__).resolve().parent / "results" / "signatures.json"


def _us(call, n: int) -> float:  # type: ignore[no-untyped-def]
    began = time.process_time()
    for _ in range(n):
        call()
    return round((time.process_time() - began) / n * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    n = parser.parse_args().records
    value = b'{"event":{"id":"x"}}' * 50
    openssl = Ed25519PrivateKey.generate()
    sodium = SigningKey(openssl.private_bytes_raw())
    signature = openssl.sign(value)
    public, verify_key = openssl.public_key(), sodium.verify_key
    result = {
        "records": n, "record_bytes": len(value),
        "sign_us": {"openssl": _us(lambda: openssl.sign(value), n),
                    "libsodium": _us(lambda: sodium.sign(value), n)},
        "verify_us": {"openssl": _us(lambda: public.verify(signature, value), n),
                      "libsodium": _us(lambda: verify_key.verify(value, signature), n)},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
