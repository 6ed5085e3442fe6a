"""A local single-node Kafka broker (KRaft mode) for development, the demo and tests.

It runs Apache Kafka from the Maven jars ``make jars`` puts in
``.cache/jars/kafka``, listens on loopback only, and keeps its data, config,
log and pid file under one state directory (``.cache/kafka`` by default).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from serving.errors import ConfigError, ServingError
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.ops.processes import die_with_parent, pid_alive, port_open, terminate
from serving.paths import KAFKA_JARS_DIR, KAFKA_STATE_DIR

log = get_logger("kafka.broker")

DEFAULT_JARS = KAFKA_JARS_DIR
DEFAULT_STATE = KAFKA_STATE_DIR
#: The broker accepts what the jobs write and the topics hold (``KafkaSettings.max_message_bytes``).
MAX_MESSAGE_BYTES: int = KafkaSettings.model_fields["max_message_bytes"].default

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class BrokerError(ServingError):
    """The local broker could not be started, reached or stopped."""

    reason = "broker error"


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the broker runs, and where."""

    running: bool
    pid: int | None
    bootstrap: str | None
    state_dir: Path

    def line(self) -> str:
        """One readable line."""
        if self.running:
            return f"kafka running: pid {self.pid}, bootstrap {self.bootstrap}, state {self.state_dir}"
        return f"kafka stopped (state {self.state_dir})"


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            # As Kafka does: a port in TIME_WAIT after a restart is still ours to take.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise BrokerError("no free port on 127.0.0.1")


class LocalBroker:
    """Start, stop and inspect the local broker. Idempotent: start twice, one broker."""

    def __init__(self, state_dir: Path = DEFAULT_STATE, jars_dir: Path = DEFAULT_JARS) -> None:
        self.state_dir = Path(state_dir)
        self.jars_dir = Path(jars_dir)

    @property
    def _pid_file(self) -> Path:
        return self.state_dir / "broker.pid"

    @property
    def _bootstrap_file(self) -> Path:
        return self.state_dir / "bootstrap"

    @property
    def log_file(self) -> Path:
        """The broker's own log."""
        return self.state_dir / "broker.log"

    def status(self) -> BrokerStatus:
        """Running when the recorded process is alive and its port answers."""
        pid = _read_int(self._pid_file)
        bootstrap = self._bootstrap_file.read_text().strip() if self._bootstrap_file.exists() else None
        alive = pid is not None and pid_alive(pid)
        if alive and bootstrap:
            host, port = bootstrap.rsplit(":", 1)
            alive = port_open(host, int(port))
        return BrokerStatus(alive, pid if alive else None, bootstrap if alive else None, self.state_dir)

    def start(self, port: int = 9092, timeout: float = 60.0, *, tie_to_parent: bool = False) -> BrokerStatus:
        """Start the broker on ``port`` (or a free one) unless it already runs; wait until it serves.

        The broker outlives the command that started it, unless
        ``tie_to_parent``: then it gets SIGTERM when this process dies, however
        it dies (the demo and the bench start it for themselves).
        """
        current = self.status()
        if current.running:
            return current
        jars = sorted(self.jars_dir.glob("*.jar")) if self.jars_dir.is_dir() else []
        if not jars:
            raise BrokerError(f"no Kafka jars in {self.jars_dir}: run `make jars` first")
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java not found on PATH: Kafka needs Java 17 or newer")
        broker_port = free_port(port)
        controller_port = free_port()
        data_dir = self.state_dir / "data"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        properties = self.state_dir / "server.properties"
        properties.write_text(_server_properties(broker_port, controller_port, data_dir))
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=self.log_file))
        classpath = os.pathsep.join(str(j) for j in jars)
        base = [java, "-Xms256m", "-Xmx768m", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        if not (data_dir / "meta.properties").exists():
            shutil.rmtree(data_dir, ignore_errors=True)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                # "--cluster-id=ID": a base64 id may start with "-", which a separate argument would make a flag.
                [*base, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(properties)],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting Kafka storage failed: {(fmt.stderr or fmt.stdout).strip()[-400:]}")
        with open(self.state_dir / "broker.out", "ab") as out:
            process = subprocess.Popen(
                [*base, "kafka.Kafka", str(properties)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the CLI that started it does not reach it
                preexec_fn=die_with_parent if tie_to_parent else None,
            )
        self._pid_file.write_text(str(process.pid))
        bootstrap = f"127.0.0.1:{broker_port}"
        self._bootstrap_file.write_text(bootstrap)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerError(f"Kafka exited with code {process.returncode}; see {self.log_file}")
            if port_open("127.0.0.1", broker_port) and _metadata_ready(bootstrap):
                log.info("broker started", extra={"bootstrap": bootstrap, "pid": process.pid})
                return self.status()
            time.sleep(0.5)
        self.stop()
        raise BrokerError(f"Kafka did not serve on {bootstrap} within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 30.0) -> BrokerStatus:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``); a no-op when stopped."""
        pid = _read_int(self._pid_file)
        if pid is not None and pid_alive(pid):
            terminate(pid, timeout)
            log.info("broker stopped", extra={"pid": pid})
        self._pid_file.unlink(missing_ok=True)
        self._bootstrap_file.unlink(missing_ok=True)
        return self.status()

    def reset(self) -> None:
        """Stop the broker and delete its data."""
        self.stop()
        shutil.rmtree(self.state_dir / "data", ignore_errors=True)


def _server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "2",
        # A single node: every internal topic has one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(MAX_MESSAGE_BYTES),
        "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
        "auto.create.topics.enable": "false",
        "log.retention.hours": "24",
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def _metadata_ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
    except Exception:  # not ready yet: any client error means "try again"
        return False
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def require_port(value: str) -> int:
    """Parse a port flag."""
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"port out of range: {port}")
    return port
