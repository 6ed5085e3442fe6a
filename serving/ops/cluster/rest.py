"""Flink's REST API: list jobs, savepoint, stop with a savepoint, cancel, wait for a state.

Refusals come back as one line: Flink's own first line, without Java exception class names.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from serving.logs import get_logger
from serving.ops.cluster.config import check_job_id, parse_address
from serving.ops.cluster.errors import ClusterError, ClusterUnreachable, JobNotFound, SavepointError, SubmitError

log = get_logger("cluster")

_TERMINAL = {"FINISHED", "CANCELED", "FAILED", "SUSPENDED"}


class FlinkRest:
    """Flink's REST API at ``host:port``: jobs, savepoints, stop, cancel.

    Every method raises :class:`ClusterUnreachable` when nothing answers,
    :class:`JobNotFound` for an unknown job, and :class:`ClusterError` with
    Flink's own first line for any other refusal.
    """

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        host, port = parse_address(address)
        self.address = f"{host}:{port}"
        self.base = f"http://{self.address}"
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = _rest_error(exc)
            if exc.code == 404:
                raise JobNotFound(f"{message} at {self.base}") from None
            raise ClusterError(f"Flink refused {method} {path}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterUnreachable(
                f"no Flink cluster answered at {self.base} ({_reason(exc)}); "
                "start one with `modelserving cluster start` or pass --jobmanager HOST:PORT"
            ) from None
        return json.loads(raw) if raw.strip() else {}

    def overview(self) -> dict[str, Any]:
        """Cluster overview: taskmanagers, slots, job counts, Flink version."""
        return self._call("GET", "/overview")

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the cluster knows, newest first (``jid``, ``name``, ``state``, ``start-time``, ``tasks``)."""
        jobs = self._call("GET", "/jobs/overview").get("jobs", [])
        return sorted(jobs, key=lambda j: j.get("start-time", 0), reverse=True)

    def job(self, job_id: str) -> dict[str, Any]:
        """Details of one job (``state``, ``vertices`` with their parallelism)."""
        return self._call("GET", f"/jobs/{check_job_id(job_id)}")

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        """Checkpoint statistics of a job (``counts``, ``latest``)."""
        return self._call("GET", f"/jobs/{check_job_id(job_id)}/checkpoints")

    def backpressure(self, job_id: str) -> dict[str, str]:
        """Each vertex's back-pressure level (``ok``, ``low``, ``high``), by vertex name.

        Flink derives it from the tasks' back-pressured time; a vertex not yet
        sampled reports no level and is left out.
        """
        levels = {}
        for vertex in self.job(job_id).get("vertices", []):
            info = self._call("GET", f"/jobs/{check_job_id(job_id)}/vertices/{vertex['id']}/backpressure")
            if info.get("backpressureLevel"):
                levels[vertex.get("name", vertex["id"])] = info["backpressureLevel"]
        return levels

    def root_exception(self, job_id: str) -> str:
        """The first line of the job's latest failure, or an empty string."""
        info = self._call("GET", f"/jobs/{check_job_id(job_id)}/exceptions")
        history = info.get("exceptionHistory", {}).get("entries", [])
        text = history[0].get("stacktrace", "") if history else info.get("root-exception") or ""
        return _first_line(text)

    def failures(self, job_id: str) -> int:
        """How many failures the job has recovered from, by its exception history (each one restarted it).

        Unlike ``numRestarts``, this counts the partial (region) restarts a lost
        TaskManager causes; the history keeps Flink's default of the last 16.
        """
        info = self._call("GET", f"/jobs/{check_job_id(job_id)}/exceptions?maxExceptions=100")
        return len(info.get("exceptionHistory", {}).get("entries", []))

    def restarts(self, job_id: str, timeout: float = 30.0) -> int:
        """How many times the job has restarted since it was submitted (Flink's ``numRestarts`` metric).

        The REST endpoint fetches metrics from the JobManager lazily (every
        few seconds), so a first request can come back empty: it is asked
        again until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            metrics = self._call("GET", f"/jobs/{check_job_id(job_id)}/metrics?get=numRestarts")
            values = [m.get("value") for m in metrics if m.get("id") == "numRestarts"] if metrics else []
            if values:
                return int(values[0])
            if time.monotonic() > deadline:
                raise ClusterError(f"job {job_id} reports no numRestarts metric")
            time.sleep(0.5)

    def parallelism(self, job_id: str) -> int:
        """The highest parallelism of the job's vertices."""
        return max((v.get("parallelism", 1) for v in self.job(job_id).get("vertices", [])), default=1)

    def trigger_savepoint(self, job_id: str, directory: str | None = None, timeout: float = 300.0) -> str:
        """Take a savepoint and keep the job running; returns its location.

        ``directory`` None uses the cluster's ``execution.checkpointing.savepoint-dir``.
        """
        self._require_running(job_id)
        body: dict[str, Any] = {"cancel-job": False, "formatType": "CANONICAL"}
        if directory:
            body["target-directory"] = directory
        trigger = self._call("POST", f"/jobs/{job_id}/savepoints", body)
        return self._await_savepoint(job_id, trigger["request-id"], timeout)

    def stop_with_savepoint(self, job_id: str, directory: str | None = None, timeout: float = 300.0) -> str:
        """Stop the job after a savepoint (no drain: timers and buffers stay in state); returns its location.

        Waits until the job is ``FINISHED``.
        """
        self._require_running(job_id)
        body: dict[str, Any] = {"drain": False, "formatType": "CANONICAL"}
        if directory:
            body["targetDirectory"] = directory
        trigger = self._call("POST", f"/jobs/{job_id}/stop", body)
        location = self._await_savepoint(job_id, trigger["request-id"], timeout)
        self.wait_for_state(job_id, {"FINISHED"}, timeout)
        return location

    def cancel(self, job_id: str, timeout: float = 60.0) -> None:
        """Cancel the job without a savepoint; waits until it is ``CANCELED``."""
        if self.job(job_id).get("state") in _TERMINAL:
            return
        self._call("PATCH", f"/jobs/{check_job_id(job_id)}?mode=cancel")
        self.wait_for_state(job_id, _TERMINAL, timeout)

    def wait_for_state(self, job_id: str, states: Iterable[str], timeout: float) -> str:
        """Poll until the job's state is one of ``states``; returns it.

        Raises:
            ClusterError: the job ended in another terminal state, or ``timeout`` passed.
        """
        wanted = set(states)
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.job(job_id).get("state", "?")
            if state in wanted:
                return state
            if state in _TERMINAL:
                cause = self.root_exception(job_id) if state == "FAILED" else ""
                raise ClusterError(f"job {job_id} is {state}" + (f": {cause}" if cause else ""))
            time.sleep(0.5)
        raise ClusterError(f"job {job_id} is {state}, not {'/'.join(sorted(wanted))}, after {timeout:.0f}s")

    def wait_running(self, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Poll until the job and every one of its tasks run; returns the job's details.

        Raises:
            SubmitError: the job failed, ended or did not get all its tasks running in ``timeout``.
        """
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.job(job_id)
            state = job.get("state")
            if state in _TERMINAL:
                cause = self.root_exception(job_id)
                raise SubmitError(f"job {job_id} is {state}" + (f": {cause}" if cause else ""))
            vertices = job.get("vertices", [])
            if state == "RUNNING" and vertices and all(v.get("status") == "RUNNING" for v in vertices):
                return job
            time.sleep(0.5)
        raise SubmitError(f"job {job_id} did not get all its tasks running within {timeout:.0f}s")

    def _require_running(self, job_id: str) -> None:
        state = self.job(job_id).get("state")
        if state != "RUNNING":
            raise SavepointError(f"job {job_id} is {state}: only a running job can take a savepoint")

    def _await_savepoint(self, job_id: str, request_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self._call("GET", f"/jobs/{job_id}/savepoints/{request_id}")
            if info.get("status", {}).get("id") == "COMPLETED":
                operation = info.get("operation", {})
                if "location" in operation:
                    log.info("savepoint completed", extra={"job": job_id, "location": operation["location"]})
                    return operation["location"]
                cause = operation.get("failure-cause", {})
                raise SavepointError(
                    f"savepoint of job {job_id} failed: "
                    f"{_first_line(cause.get('stack-trace') or cause.get('class') or 'unknown cause')}"
                )
            time.sleep(0.5)
        raise SavepointError(f"savepoint of job {job_id} did not complete within {timeout:.0f}s")


def strip_exception_classes(text: str) -> str:
    """``text`` without the Java exception class names that lead it.

    ``java.lang.RuntimeException: java.io.FileNotFoundException: msg`` -> ``msg``.
    """
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"^(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\s*:\s*", "", text)
    return text


def _rest_error(exc: urllib.error.HTTPError) -> str:
    try:
        errors = json.loads(exc.read()).get("errors", [])
    except (ValueError, OSError):
        errors = []
    return _first_line(errors[0] if errors else f"HTTP {exc.code}") or f"HTTP {exc.code}"


def _first_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return strip_exception_classes(first)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
