"""Apache Kafka in KRaft mode, one JVM acting as broker and controller, from Maven jars.

No tarball and no shell scripts: ``kafka.Kafka`` is started with ``java -cp 'jars/*'`` on the
classpath Maven resolved, which is all ``kafka-server-start.sh`` does in the end. Storage is
formatted once with ``kafka.tools.StorageTool format --standalone`` (Kafka 4.x dynamic quorum).
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path
from string import Template
from typing import ClassVar

from deploy.local import procs
from deploy.local.errors import StackError
from deploy.local.fetch import Progress, kafka_classpath
from deploy.local.java import find_jdk
from deploy.local.service import Launch, Service
from deploy.local.settings import StackSettings
from deploy.local.versions import KAFKA_MIN_JAVA, KAFKA_VERSION

BROKER_PORT = 9092
CONTROLLER_PORT = 9093
BOOTSTRAP = f"localhost:{BROKER_PORT}"

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
    """The local Kafka broker+controller on localhost:9092 (controller on 9093)."""

    key: ClassVar[str] = "kafka"
    name: ClassVar[str] = "Kafka"
    version: ClassVar[str] = KAFKA_VERSION
    url: ClassVar[str] = BOOTSTRAP
    ports: ClassVar[tuple[int, ...]] = (BROKER_PORT, CONTROLLER_PORT)

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
        values = {
            "broker_port": BROKER_PORT, "controller_port": CONTROLLER_PORT,
            "log_dirs": self.data_dir, "logs_dir": self.logs_dir,
        }
        self.server_properties.write_text(
            Template((_TEMPLATES / "kafka-server.properties").read_text()).substitute(values))
        log4j = self.config_dir / "log4j2.properties"
        log4j.write_text(
            Template((_TEMPLATES / "kafka-log4j2.properties").read_text()).substitute(values))
        return log4j

    def prepare(self, progress: Progress) -> Launch:
        jdk = find_jdk(KAFKA_MIN_JAVA, purpose=f"Kafka {KAFKA_VERSION}")
        jars = kafka_classpath(self.layout, progress)
        log4j = self._render()
        jvm = [
            str(jdk.java), f"-Xms{_heap()}", f"-Xmx{_heap()}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*",
        ]
        if not (self.data_dir / "meta.properties").is_file():
            self._format(jvm)
        return Launch(
            argv=[*jvm, "kafka.Kafka", str(self.server_properties)],
            env=dict(os.environ), cwd=self.logs_dir,
        )

    def _format(self, jvm: list[str]) -> None:
        """Format an empty log dir as a standalone KRaft quorum (first start only)."""
        cmd = [*jvm, "kafka.tools.StorageTool", "format", "--config",
               str(self.server_properties), "--cluster-id", new_cluster_id(), "--standalone"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False,
                             stdin=subprocess.DEVNULL)
        (self.logs_dir / "format.out").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {out.returncode}); "
                f"read {self.logs_dir / 'format.out'}:\n{(out.stdout + out.stderr)[-3000:]}"
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
        if ours is None or not procs.port_in_use(BROKER_PORT):
            return False
        from runtime.kafka import KafkaConnection  # heavy import, only when needed

        try:
            admin = KafkaConnection(bootstrap=BOOTSTRAP).admin(
                **{"log_level": 0, "socket.timeout.ms": 3000})
            metadata = admin.list_topics(timeout=3)
        except Exception:  # any failure just means "not answering yet"
            return False
        return bool(metadata.brokers) and metadata.cluster_id == ours
