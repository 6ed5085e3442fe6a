"""A circuit breaker per model server: stop calling a server that keeps failing, and probe it again later.

Closed: every call goes through; ``failures`` server failures in a row (no
reply in time, connection refused or dropped, 503 twice) open it. Open:
calls fail at once with :class:`RemoteCircuitOpen`, a ``RemoteUnavailable``,
so their records become dead letters without each waiting for a timeout.
After ``open_ms`` one call is let through as a probe (half-open): success
closes the breaker, failure opens it for another ``open_ms``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from serving.clock import now_ms
from serving.errors import RemoteCircuitOpen, RemoteScoringError, RemoteTimeout, RemoteUnavailable

#: The failures that say the server itself is in trouble (not a bad request).
SERVER_FAILURES = (RemoteTimeout, RemoteUnavailable)


class CircuitBreaker:
    """See the module docstring; safe to share between threads. ``clock`` gives milliseconds."""

    def __init__(self, name: str, failures: int = 3, open_ms: int = 5_000, clock: Callable[[], int] = now_ms) -> None:
        self.name = name
        self.failures = max(1, failures)
        self.open_ms = max(0, open_ms)
        self._clock = clock
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._opened_at: int | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` (a probe is due or under way)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._probing or self._clock() - self._opened_at >= self.open_ms else "open"

    def before_call(self) -> None:
        """Let a call through, or raise :class:`RemoteCircuitOpen` while the breaker is open."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self._clock() - self._opened_at
            if waited >= self.open_ms and not self._probing:
                self._probing = True  # this call is the probe; others still fail fast
                return
            raise RemoteCircuitOpen(
                f"model server {self.name} is not called: {self._in_a_row} failures in a row; "
                f"next try in {max(0, self.open_ms - waited)} ms"
            )

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """One call through the breaker: refused while open; a scoring error counts as its failure, else success.

        A plain ``with`` block, so a blocking call and an awaited one use it alike.
        """
        self.before_call()
        try:
            yield
        except RemoteScoringError as exc:
            self.failed(exc)
            raise
        self.succeeded()

    def succeeded(self) -> None:
        """A call came back: close the breaker."""
        with self._lock:
            self._in_a_row, self._opened_at, self._probing = 0, None, False

    def failed(self, exc: BaseException) -> None:
        """A call failed with ``exc``; server failures count towards opening (a failed probe reopens)."""
        if not isinstance(exc, SERVER_FAILURES) or isinstance(exc, RemoteCircuitOpen):
            return
        with self._lock:
            self._in_a_row += 1
            if self._probing or self._in_a_row >= self.failures:
                self._opened_at, self._probing = self._clock(), False
