"""``vigie kibana import``: load the saved objects through Kibana's import API.

``POST /api/saved_objects/_import?overwrite=true`` takes the NDJSON as a multipart file upload
and needs the ``kbn-xsrf`` header (Kibana's CSRF guard for non-browser clients). With
``overwrite`` a re-import updates our objects in place (their ids are fixed), so the command
is idempotent. The request is built with the standard library: one POST does not justify a
new HTTP dependency.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import DataError, ServiceUnavailable

DEFAULT_FILE = Path(__file__).with_name("saved_objects.ndjson")


class KibanaImportError(DataError):
    """Kibana refused the import, or some objects failed (the message lists them)."""


class KibanaUnavailable(ServiceUnavailable, KibanaImportError):
    """Kibana cannot be reached, or answers with a server error: nothing was imported."""


@dataclass(frozen=True)
class ImportResult:
    success_count: int
    response: dict[str, Any]


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    """(body, content type) of a form with one ``file`` field, as Kibana expects."""
    boundary = "vigie-" + secrets.token_hex(16)
    head = (f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/ndjson\r\n\r\n").encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def import_saved_objects(url: str, path: Path = DEFAULT_FILE, *, space: str | None = None,
                         username: str | None = None, password: str | None = None,
                         api_key: str | None = None, overwrite: bool = True,
                         timeout: float = 60.0) -> ImportResult:
    """Upload ``path`` to the Kibana at ``url`` (optionally into ``space``)."""
    base = url.rstrip("/") + (f"/s/{space}" if space else "")
    endpoint = f"{base}/api/saved_objects/_import?overwrite={'true' if overwrite else 'false'}"
    body, content_type = multipart(path.name, path.read_bytes())
    headers = {"kbn-xsrf": "true", "Content-Type": content_type}
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    elif username and password:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:2000]
        failure = KibanaUnavailable if exc.code >= 500 else KibanaImportError
        raise failure(f"Kibana answered {exc.code}: {detail}", source=endpoint) from None
    except (urllib.error.URLError, OSError) as exc:
        raise KibanaUnavailable(f"cannot reach Kibana ({exc})", source=endpoint) from None
    if not payload.get("success", False):
        errors = payload.get("errors") or []
        listed = "; ".join(f"{e.get('type')}/{e.get('id')}: {e.get('error', {}).get('type')}"
                           for e in errors[:20])
        raise KibanaImportError(f"{len(errors)} objects failed to import: {listed}",
                                source=endpoint)
    return ImportResult(int(payload.get("successCount", 0)), payload)
