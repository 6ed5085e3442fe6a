"""The circuit breaker of a remote model, on a clock the test moves: when calls stop, and when they resume."""

from __future__ import annotations

import pytest

from serving.errors import RemoteCircuitOpen, RemoteScoringError, RemoteTimeout, RemoteUnavailable
from serving.formats.remote.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000

    def __call__(self) -> int:
        return self.ms


def test_it_opens_after_n_server_failures_in_a_row_and_probes_once_after_open_ms():
    clock = Clock()
    breaker = CircuitBreaker("http://127.0.0.1:1", failures=3, open_ms=5_000, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.failed(RemoteUnavailable("refused"))
    breaker.before_call()
    breaker.failed(RemoteTimeout("slow"))
    assert breaker.state == "open"
    clock.ms += 4_999
    with pytest.raises(RemoteCircuitOpen, match="3 failures in a row; next try in 1 ms"):
        breaker.before_call()
    clock.ms += 1
    breaker.before_call()  # the probe
    assert breaker.state == "half-open"
    with pytest.raises(RemoteCircuitOpen):  # only one probe at a time
        breaker.before_call()
    breaker.succeeded()
    assert breaker.state == "closed"
    breaker.before_call()


def test_a_failed_probe_opens_it_again_at_once():
    clock = Clock()
    breaker = CircuitBreaker("s", failures=2, open_ms=100, clock=clock)
    for _ in range(2):
        breaker.failed(RemoteUnavailable("refused"))
    clock.ms += 100
    breaker.before_call()
    breaker.failed(RemoteUnavailable("still refused"))
    assert breaker.state == "open"
    with pytest.raises(RemoteCircuitOpen):
        breaker.before_call()


def test_a_success_resets_the_count_and_bad_requests_do_not_count():
    breaker = CircuitBreaker("s", failures=2, open_ms=100, clock=Clock())
    breaker.failed(RemoteUnavailable("refused"))
    breaker.succeeded()
    breaker.failed(RemoteUnavailable("refused"))
    for _ in range(5):  # the server answered: a bad request is not the server in trouble
        breaker.failed(RemoteScoringError("HTTP 400"))
    assert breaker.state == "closed"
