"""Local processes: daemons by pid and port, children that die with their parent, SIGTERM as Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

#: Variables PyFlink sets in a process that ran a local job (its loopback Python
#: worker lives there). A child that inherits them refuses to start its own
#: gateway, or sends its Python work to the parent's loopback server: a
#: TaskManager started with them runs its jobs' Python code in that parent.
_PYFLINK_RUNTIME_VARS = (
    "PYFLINK_GATEWAY_DISABLED",
    "_PYFLINK_CONN_INFO_PATH",
    "PYTHON_LOOPBACK_SERVER_ADDRESS",
    "_PYTHON_WORKER_MEMORY_LIMIT",
    "BOOT_LOG_DIR",
    "SEMI_PERSISTENT_DIRECTORY",
    "WORKER_ID",
    "PIPELINE_OPTIONS",
    "LOGGING_API_SERVICE_DESCRIPTOR",
    "CONTROL_API_SERVICE_DESCRIPTOR",
)


def child_environment() -> dict[str, str]:
    """This process's environment without PyFlink's per-process runtime variables, for any child it starts."""
    return {k: v for k, v in os.environ.items() if k not in _PYFLINK_RUNTIME_VARS}


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, SIGKILL after ``timeout`` seconds; a no-op when it is gone."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


#: ``prctl`` option: the signal a child gets when the thread that started it exits (Linux).
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before ``exec`` (``preexec_fn``): get SIGTERM when the parent dies, even by SIGKILL.

    A command that started a broker or a job for its own use (the demo, the
    bench) must not leave it running when a supervisor kills the command
    outright. Linux only; elsewhere this does nothing, and such children are
    stopped by the command's own clean-up instead.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def interrupt_on_sigterm() -> None:
    """Make SIGTERM stop this process the way Ctrl-C does: a ``KeyboardInterrupt`` in the main thread.

    Supervisors, ``docker stop``, systemd and CI time-outs stop a process
    with SIGTERM, whose default ends Python at once, skipping every
    ``finally``: a broker and a job it started would be left running. With
    this, the same clean-up as Ctrl-C runs. A second SIGTERM during that
    clean-up ends the process at once (the default again), as an impatient
    supervisor expects. Call it from the main thread.
    """

    def _interrupt(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)
