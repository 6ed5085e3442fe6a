"""Serving jobs (and other workers) as child process groups.

``python -m flink_jobs.main --local`` runs a Kafka job on a MiniCluster; the
demo, the benchmark and the tests start it in its own process group so they
can stop it cleanly, or kill it like a crashed machine, JVM and Python
workers included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.ops.processes import child_environment, die_with_parent

log = get_logger("job")


def kafka_env(settings: KafkaSettings) -> dict[str, str]:
    """A child's environment pointing it at ``settings``' topics, group and transactional ids."""
    return {
        **child_environment(),
        **settings.to_environment(),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    }


class ProcessGroup:
    """A child in a process group of its own; stdout and stderr go to ``log_path``."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            list(args),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            start_new_session=True,
            preexec_fn=die_with_parent,  # never outlives whoever started it
        )

    @property
    def alive(self) -> bool:
        """Whether the child still runs."""
        return self.process.poll() is None

    def exited(self) -> int | None:
        """The exit code once the child ended, else None."""
        return self.process.poll()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group, SIGKILL what is left after ``timeout``. Safe to call twice."""
        pid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        # Members of the group (the Flink JVM, Python workers) may outlive the leader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the whole group at once: no savepoint, no clean shutdown, like a lost machine."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def tail(self, lines: int = 20) -> str:
        """The last non-empty lines of the log, for error messages."""
        try:
            text = [x for x in self.log_path.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class LocalJob(ProcessGroup):
    """A Kafka serving job on a local MiniCluster. Its log, Flink's log and checkpoints go under ``work_dir``."""

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
        job_args: Sequence[str] = (),
        rest_port: int = 0,
    ) -> None:
        work_dir = Path(work_dir)
        #: The MiniCluster's REST endpoint (127.0.0.1), when a port was given: restarts, metrics.
        self.rest_port = rest_port
        work_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir = work_dir / "checkpoints"
        args = [
            sys.executable, "-m", "flink_jobs.main", "--local", "--job", job, "--parallelism", str(parallelism),
            "--bootstrap-servers", settings.bootstrap_servers, "--checkpoint-dir", str(self.checkpoint_dir),
            "--checkpoint-interval", str(checkpoint_interval_ms), "--idle-flush-ms", str(idle_flush_ms),
            "--restart-attempts", str(restart_attempts), "--rest-port", str(rest_port),
        ]  # fmt: skip
        if restore:
            args += ["--restore", restore]
        args += list(job_args)
        env = {**kafka_env(settings), "FLINK_LOG_DIR": str(work_dir / f"flink-{name}")}
        super().__init__(args, env, work_dir / f"{name}.log")
        log.info("job process started", extra={"job": job, "pid": self.process.pid, "log": str(self.log_path)})

    def restarts(self) -> int:
        """Restarts of the running job so far, from its MiniCluster's REST endpoint (needs ``rest_port``)."""
        from serving.ops.cluster.rest import FlinkRest

        if not self.rest_port:
            raise ValueError("this job was started without a rest_port")
        rest = FlinkRest(f"127.0.0.1:{self.rest_port}")
        jobs = [j for j in rest.jobs() if j.get("state") not in ("FINISHED", "CANCELED")]
        if not jobs:
            raise ValueError(f"no running job at the REST endpoint 127.0.0.1:{self.rest_port}")
        return sum(rest.restarts(j["jid"]) for j in jobs)
