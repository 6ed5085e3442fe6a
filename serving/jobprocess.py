"""A Kafka serving job in a local MiniCluster, run as a child process group.

``python -m flink_jobs.main --local`` in its own process group: the demo and
the tests start it, stop it cleanly, or kill it like a crashed machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger

log = get_logger("job")


class LocalJob:
    """One serving job process. Its log (and Flink's own) go under ``work_dir``."""

    def __init__(
        self,
        settings: KafkaSettings,
        job: str,
        work_dir: Path,
        *,
        parallelism: int = 1,
        checkpoint_interval_ms: int = 1000,
        idle_flush_ms: int = 500,
        restart_attempts: int = 0,
        restore: str | None = None,
        name: str = "job",
    ) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.work_dir / f"{name}.log"
        self.checkpoint_dir = self.work_dir / "checkpoints"
        args = [
            sys.executable, "-m", "flink_jobs.main", "--local", "--job", job, "--parallelism", str(parallelism),
            "--bootstrap-servers", settings.bootstrap_servers, "--checkpoint-dir", str(self.checkpoint_dir),
            "--checkpoint-interval", str(checkpoint_interval_ms), "--idle-flush-ms", str(idle_flush_ms),
            "--restart-attempts", str(restart_attempts),
        ]  # fmt: skip
        if restore:
            args += ["--restore", restore]
        env = {
            **os.environ,
            "MODELSERVING_KAFKA_TOPICS": settings.topics.model_dump_json(),
            "MODELSERVING_KAFKA_GROUP_ID": settings.group_id,
            "MODELSERVING_KAFKA_TRANSACTIONAL_ID_PREFIX": settings.transactional_id_prefix,
            "FLINK_LOG_DIR": str(self.work_dir / f"flink-{name}"),
        }
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        log.info("job process started", extra={"job": job, "pid": self.process.pid, "log": str(self.log_path)})

    @property
    def alive(self) -> bool:
        """Whether the job process still runs."""
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL after ``timeout``. Safe to call twice."""
        if self.alive:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
            except ProcessLookupError:
                pass
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the whole process group: no savepoint, no clean shutdown, like a lost machine."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        self._log.close()

    def tail(self, lines: int = 20) -> str:
        """The last lines of the job's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
