"""Apache Kafka in KRaft mode, one JVM acting as broker and controller, from Maven jars.

No tarball and no shell scripts: ``kafka.Kafka`` is started with ``java -cp 'jars/*'`` on the
classpath Maven resolved, which is all ``kafka-server-start.sh`` does in the end. Storage is
formatted once with ``kafka.tools.StorageTool format --standalone`` (Kafka 4.x dynamic quorum),
with ``--add-scram`` for the admin user: in KRaft, SCRAM credentials live in the metadata log,
and the broker's own SASL connections need one before any admin client could create it.
Other users are added later through the admin client (``deploy.security.kafka_acls``).

Secured by default (``kafka-server.properties``): SASL_SSL for clients, mutual TLS on the
loopback controller listener, StandardAuthorizer with no access unless an ACL grants it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import uuid
from pathlib import Path
from string import Template
from typing import ClassVar

from deploy.local import procs
from deploy.local.credentials import local_security
from deploy.local.errors import StackError
from deploy.local.fetch import Progress, kafka_classpath
from deploy.local.java import find_jdk
from deploy.local.service import Launch, Service
from deploy.local.settings import StackSettings
from deploy.local.versions import KAFKA_MIN_JAVA, KAFKA_VERSION
from deploy.security.kafka_acls import load_declaration

#: Written into the storage folder once it is formatted with SCRAM and TLS: a folder formatted
#: by an older, plaintext stack lacks it and is set aside instead of being reused.
SECURED_MARK = "vigie-secured"

_TEMPLATES = Path(__file__).parent


def _heap() -> str:
    """JVM heap: 1 GiB is plenty for a single dev broker; ``VIGIE_KAFKA_HEAP`` overrides."""
    return StackSettings().kafka_heap


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Same format as ``kafka-storage random-uuid`` (which, like us, avoids a leading '-' that
    would read as a command-line option), without paying for a JVM start.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class Kafka(Service):
    """The local Kafka broker+controller on localhost:9092 (controller on 9093); the ports
    come from :class:`StackSettings`."""

    key: ClassVar[str] = "kafka"
    name: ClassVar[str] = "Kafka"
    version: ClassVar[str] = KAFKA_VERSION

    @property
    def broker_port(self) -> int:
        return StackSettings().stack_kafka_port

    @property
    def controller_port(self) -> int:
        return StackSettings().stack_controller_port

    @property
    def url(self) -> str:
        return f"localhost:{self.broker_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.broker_port, self.controller_port)

    @property
    def log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def server_properties(self) -> Path:
        return self.config_dir / "server.properties"

    def looks_like(self, cmdline: str) -> bool:
        return "kafka.Kafka" in cmdline and str(self.server_properties) in cmdline

    def _render(self) -> Path:
        """Write server.properties and log4j2.properties; returns the log4j2 file."""
        for path in (self.config_dir, self.data_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        security = local_security(self.layout.state)
        pki = security.pki.ensure()
        server = pki.server("kafka")
        keystore = self.config_dir / "keystore.pem"  # PEM key store: key, then the chain
        keystore.unlink(missing_ok=True)
        fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(server.key.read_bytes() + server.cert.read_bytes())
        admin = security.kafka_user("admin")
        super_users = [*load_declaration().super_users, f"User:{server.common_name}"]
        values = {
            "broker_port": self.broker_port, "controller_port": self.controller_port,
            "log_dirs": self.data_dir, "logs_dir": self.logs_dir,
            "keystore": keystore, "truststore": pki.ca_cert,
            "admin_user": admin, "admin_password": security.passwords()["kafka"][admin],
            "super_users": ";".join(super_users),
        }
        self.server_properties.unlink(missing_ok=True)  # holds a password: owner only
        fd = os.open(self.server_properties, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(Template((_TEMPLATES / "kafka-server.properties").read_text())
                      .substitute(values))
        log4j = self.config_dir / "log4j2.properties"
        log4j.write_text(
            Template((_TEMPLATES / "kafka-log4j2.properties").read_text()).substitute(values))
        return log4j

    @property
    def heap(self) -> str:
        """JVM heap (``-Xms``/``-Xmx``)."""
        return _heap()

    def java_command(self, progress: Progress) -> list[str]:
        """Render the configuration (:meth:`_render`) and return ``java`` up to the main
        class: JDK, heap, logging and the Maven classpath. Shared with the throw-away
        plaintext broker of ``bench.security``, which renders its own configuration."""
        jdk = find_jdk(KAFKA_MIN_JAVA, purpose=f"Kafka {KAFKA_VERSION}")
        jars = kafka_classpath(self.layout, progress)
        log4j = self._render()
        return [
            str(jdk.java), f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*",
        ]

    def prepare(self, progress: Progress) -> Launch:
        jvm = self.java_command(progress)
        if (self.data_dir / "meta.properties").is_file() and not (
                self.data_dir / SECURED_MARK).is_file():
            aside = self.data_dir.with_name(f"data.plaintext-{int(time.time())}")
            progress(f"Kafka storage {self.data_dir} predates the secured stack (no SCRAM "
                     f"users in it): moved to {aside}, formatting a new one")
            self.data_dir.rename(aside)
            self.data_dir.mkdir()
        if not (self.data_dir / "meta.properties").is_file():
            self._format(jvm)
            (self.data_dir / SECURED_MARK).write_text("formatted with SCRAM and TLS\n")
        return Launch(
            argv=[*jvm, "kafka.Kafka", str(self.server_properties)],
            env=dict(os.environ), cwd=self.logs_dir,
        )

    def _format(self, jvm: list[str]) -> None:
        """Format an empty log dir as a standalone KRaft quorum (first start only)."""
        security = local_security(self.layout.state)
        admin = security.kafka_user("admin")
        scram = (f"SCRAM-SHA-512=[name={admin},"
                 f"password={security.passwords()['kafka'][admin]}]")
        cmd = [*jvm, "kafka.tools.StorageTool", "format", "--config",
               str(self.server_properties), "--cluster-id", new_cluster_id(), "--standalone",
               "--add-scram", scram]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False,
                             stdin=subprocess.DEVNULL)
        text = (out.stdout + out.stderr).replace(security.passwords()["kafka"][admin], "***")
        (self.logs_dir / "format.out").write_text(text)
        if out.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {out.returncode}); "
                f"read {self.logs_dir / 'format.out'}:\n{text[-3000:]}"
            )

    def cluster_id(self) -> str | None:
        """The cluster id our storage was formatted with (None before the first format)."""
        try:
            for line in (self.data_dir / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
        except OSError:
            pass
        return None

    def probe(self) -> bool:
        """Metadata round trip with confluent-kafka's AdminClient, and the broker must report
        *our* cluster id: another broker on the port (another checkout) does not count.
        Skipped while the port is closed, so librdkafka prints no connection errors."""
        ours = self.cluster_id()
        if ours is None or not procs.port_in_use(self.broker_port):
            return False
        try:
            admin = local_security(self.layout.state).kafka("admin").admin(
                **{"log_level": 0, "socket.timeout.ms": 3000})
            metadata = admin.list_topics(timeout=3)
        except Exception:  # any failure just means "not answering yet"
            return False
        return bool(metadata.brokers) and metadata.cluster_id == ours
