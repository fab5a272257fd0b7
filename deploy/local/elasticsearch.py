"""Elasticsearch 9 from the integ-test zip on Maven Central, run as a dedicated user.

That distribution lacks the analysis module Elasticsearch's ``.security`` index needs, so the
``vigie-analysis`` plugin (:mod:`deploy.local.es_analysis`) is built and installed into it
before the node starts; without it the node runs but cannot store API keys.

Elasticsearch refuses to run as root, so when we are root a system user ``vigie-es`` owns the
node's data, logs and configuration and the JVM runs under it. The configuration directory is a
copy inside the state directory because Elasticsearch writes there (its keystore), and the
distribution itself stays read-only in the cache.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import ssl
import stat
import subprocess
import urllib.request
from pathlib import Path
from string import Template
from typing import Any, ClassVar

from deploy.local.credentials import local_security
from deploy.local.errors import StackError
from deploy.local.es_analysis import install_plugin, restart_reason
from deploy.local.fetch import Progress, es_zip, extract_zip
from deploy.local.java import find_jdk
from deploy.local.service import Launch, Service
from deploy.local.settings import StackSettings
from deploy.local.versions import ES_MIN_JAVA, ES_VERSION
from deploy.security.elasticsearch_roles import write_file_realm

CLUSTER_NAME = "vigie-local"
ES_USER = "vigie-es"
#: Where the distribution is unpacked when the cache (e.g. under /root, mode 700) is not
#: reachable by the ES user: a regenerable copy, hence /var/cache.
SYSTEM_DIST_PARENT = Path("/var/cache/vigie")

_TEMPLATES = Path(__file__).parent


def _heap() -> str:
    """JVM heap: 2 GiB; ``VIGIE_ES_HEAP`` overrides (e.g. 4g for benchmarks)."""
    return StackSettings().es_heap


def ensure_user() -> pwd.struct_passwd:
    """The ``vigie-es`` system user, created if missing (we are root when this is called)."""
    try:
        return pwd.getpwnam(ES_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if not useradd:
        raise StackError(f"Elasticsearch refuses to run as root and 'useradd' is missing to "
                         f"create the '{ES_USER}' user; create it, or run vigie as non-root.")
    out = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "Vigie local Elasticsearch", ES_USER],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise StackError(f"creating the system user '{ES_USER}' failed: {out.stderr.strip()}")
    return pwd.getpwnam(ES_USER)


def reachable_by(path: Path, uid: int, gid: int) -> bool:
    """True if every directory from / down to ``path`` can be traversed by ``uid``/``gid``."""
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if uid != 0 and not st.st_mode & bit:
            return False
    return True


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


class Elasticsearch(Service):
    """The local single-node Elasticsearch on https://localhost:9200 (transport 9300, TLS
    too); the ports come from :class:`StackSettings`. Security is on: file-realm users with
    generated passwords and the roles of ``deploy/security/elasticsearch-roles.yaml``."""

    key: ClassVar[str] = "elasticsearch"
    name: ClassVar[str] = "Elasticsearch"
    version: ClassVar[str] = ES_VERSION

    @property
    def http_port(self) -> int:
        return StackSettings().stack_es_port

    @property
    def transport_port(self) -> int:
        return StackSettings().stack_es_transport_port

    @property
    def url(self) -> str:
        return f"https://localhost:{self.http_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.http_port, self.transport_port)

    @property
    def log(self) -> Path:
        return self.logs_dir / f"{CLUSTER_NAME}.log"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    def looks_like(self, cmdline: str) -> bool:
        # bin/elasticsearch execs the Java launcher, which forks the server JVM.
        return "org.elasticsearch" in cmdline or "bin/elasticsearch" in cmdline

    def _dist(self, progress: Progress, uid: int, gid: int) -> Path:
        """The unpacked distribution, somewhere the ES user can read, with the current
        build of the ``vigie-analysis`` plugin in its ``plugins/``."""
        zip_path = es_zip(self.layout, progress)
        if reachable_by(self.layout.cache, uid, gid):
            dist = extract_zip(zip_path, self.layout.es_dist, progress)
        else:
            SYSTEM_DIST_PARENT.mkdir(parents=True, exist_ok=True)
            SYSTEM_DIST_PARENT.chmod(0o755)
            dist = extract_zip(zip_path, SYSTEM_DIST_PARENT / self.layout.es_dist.name, progress)
        install_plugin(dist, progress)
        return dist

    def _render(self, dist: Path) -> None:
        """Fresh config dir from the distribution, plus our elasticsearch.yml and heap, the
        TLS files (Elasticsearch reads them only from its config folder) and the file realm."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(dist / "config", self.config_dir, dirs_exist_ok=True)
        security = local_security(self.layout.state)
        pki = security.pki.ensure()
        certs = self.config_dir / "certs"
        certs.mkdir(exist_ok=True)
        certs.chmod(0o700)
        server = pki.server("elasticsearch")
        for source, name in ((server.cert, "node.pem"), (server.key, "node.key"),
                             (pki.ca_cert, "ca.pem")):
            (certs / name).write_bytes(source.read_bytes())
            (certs / name).chmod(0o600)
        write_file_realm(self.config_dir, security.passwords()["elasticsearch"])
        values = {
            "cluster_name": CLUSTER_NAME, "node_name": f"{CLUSTER_NAME}-1",
            "http_port": self.http_port, "transport_port": self.transport_port,
            "data_dir": self.data_dir, "logs_dir": self.logs_dir,
        }
        (self.config_dir / "elasticsearch.yml").write_text(
            Template((_TEMPLATES / "elasticsearch.yml").read_text()).substitute(values))
        options = self.config_dir / "jvm.options.d"
        options.mkdir(exist_ok=True)
        (options / "vigie.options").write_text(
            f"# Rendered by deploy/local/elasticsearch.py\n-Xms{_heap()}\n-Xmx{_heap()}\n")

    def prepare(self, progress: Progress) -> Launch:
        jdk = find_jdk(ES_MIN_JAVA, purpose=f"Elasticsearch {ES_VERSION}",
                       env_vars=("ES_JAVA_HOME", "JAVA_HOME"), prefer_newest=True)
        as_root = os.geteuid() == 0
        if as_root:
            user = ensure_user()
            uid, gid = user.pw_uid, user.pw_gid
        else:
            uid, gid = os.geteuid(), os.getegid()
        dist = self._dist(progress, uid, gid)
        for path in (self.data_dir, self.logs_dir, self.tmp_dir):
            path.mkdir(parents=True, exist_ok=True)
        self._render(dist)
        if as_root:
            if not reachable_by(self.home, uid, gid):
                raise StackError(
                    f"the '{ES_USER}' user cannot reach {self.home}: a parent directory is not "
                    f"traversable by others. Set VIGIE_HOME to a directory outside /root."
                )
            _chown_tree(self.home, uid, gid)
        env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
        env.update({
            "ES_JAVA_HOME": str(jdk.home), "ES_PATH_CONF": str(self.config_dir),
            "ES_TMPDIR": str(self.tmp_dir), "HOME": str(self.home),
        })
        # -q: no console logging (the node logs to path.logs); fatal errors still reach stdout.
        # cwd = logs dir, where jvm.options puts gc.log and hs_err files (relative paths).
        return Launch(
            argv=[str(dist / "bin" / "elasticsearch"), "-q"], env=env, cwd=self.logs_dir,
            user=uid if as_root else None, group=gid if as_root else None,
        )

    def _get(self, path: str, timeout: float = 2.0) -> dict[str, Any] | None:
        """``GET path`` over TLS (our CA) as the admin user; None if anything fails."""
        security = local_security(self.layout.state)
        try:
            context = ssl.create_default_context(cafile=str(security.pki.ca_cert))
            user, password = security.es_auth()
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request = urllib.request.Request(f"https://localhost:{self.http_port}{path}",
                                             headers={"Authorization": f"Basic {token}"})
            with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
                body: dict[str, Any] = json.load(resp)
                return body
        except (OSError, ValueError):
            return None

    def node_pid(self) -> int | None:
        """Pid of the JVM serving our HTTP port, as the node itself reports it."""
        body = self._get("/_nodes/_local/process?filter_path=nodes.*.process.id")
        try:
            return int(next(iter(body["nodes"].values()))["process"]["id"]) if body else None
        except (KeyError, StopIteration, TypeError, ValueError):
            return None

    def restart_reason(self) -> str | None:
        """Why the running node should be restarted: it lacks the current ``vigie-analysis``
        build (it was started before the plugin existed, or before its sources changed), so it
        cannot store API keys. None when it has it, or when the node does not say."""
        # nodes.*.name too: a node without plugins would otherwise filter down to ``{}``.
        body = self._get("/_nodes/_local/plugins?filter_path=nodes.*.name,"
                         "nodes.*.plugins.name,nodes.*.plugins.version")
        if body is None:
            return None
        try:
            node = next(iter(body["nodes"].values()))
        except (KeyError, StopIteration, TypeError, AttributeError):
            return None
        plugins = node.get("plugins", []) if isinstance(node, dict) else []
        return restart_reason(p for p in plugins if isinstance(p, dict))

    def probe(self) -> bool:
        """Cluster health yellow/green (``GET /`` is 405 on the integ-test distribution), and
        the node answering must be one of our processes, not another checkout's node."""
        health = self._get("/_cluster/health")
        if health is None or health.get("status") not in ("yellow", "green"):
            return False
        pid = self.node_pid()
        return pid is not None and self.is_ours(pid)
