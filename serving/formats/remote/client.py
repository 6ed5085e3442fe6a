"""The HTTP client of a remote model: one persistent httpx client, timeouts, one retry, typed errors."""

from __future__ import annotations

from typing import Any

from serving.errors import RemoteModelNotReady, RemoteScoringError, RemoteTimeout, RemoteUnavailable
from serving.formats.remote.breaker import CircuitBreaker
from serving.formats.remote.protocol import server_error

#: Statuses worth asking once more: the server said it is busy or restarting.
RETRY_STATUSES = frozenset({503})


class OipClient:
    """Calls one model server at ``base_url``; every request may take at most ``timeout_s`` per step.

    httpx applies the timeout to each step (connect, send, each read), so a
    reply that starts no sooner than ``timeout_s`` after the request is a
    timeout. Connections are kept alive between batches; the client is safe
    to share between threads; :meth:`ainfer` is the same request for an event
    loop. Redirects are not followed: they could lead off the allow-list.
    Scoring requests go through ``breaker`` (default: one that never opens
    before 3 server failures in a row, then waits 5 s), see
    :mod:`serving.formats.remote.breaker`.
    """

    def __init__(
        self, base_url: str, timeout_s: float, max_connections: int = 8, breaker: CircuitBreaker | None = None
    ) -> None:
        import httpx  # on first use: listing the formats must not load it

        self._httpx = httpx
        self.base_url = base_url
        self._options: dict[str, Any] = {
            "base_url": base_url,
            "timeout": httpx.Timeout(timeout_s),
            "follow_redirects": False,  # the allow-list names the hosts; a redirect must not leave them
            "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            "headers": {"content-type": "application/json"},
        }
        self._client = httpx.Client(**self._options)
        self._async_client: Any = None
        self._async_loop: Any = None
        self.breaker = breaker or CircuitBreaker(base_url)

    def ready(self, path: str) -> None:
        """Check ``{path}/ready`` answers 200.

        Raises:
            RemoteModelNotReady: the server is unreachable, too slow, or answers anything else.
        """
        httpx = self._httpx
        try:
            reply = self._client.get(f"{path}/ready")
        except httpx.HTTPError as exc:
            raise RemoteModelNotReady(
                f"model server {self.base_url} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if reply.status_code != 200:
            raise RemoteModelNotReady(
                f"model server {self.base_url} says {path} is not ready (HTTP {reply.status_code})"
            )

    def metadata(self, path: str) -> dict[str, Any]:
        """The model metadata at ``path`` (a JSON object).

        Raises:
            RemoteModelNotReady: unreachable, or no JSON object at HTTP 200.
        """
        httpx = self._httpx
        try:
            reply = self._client.get(path)
            body = reply.json() if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise RemoteModelNotReady(f"model server {self.base_url} gave no metadata for {path}: {exc}") from exc
        if not isinstance(body, dict):
            raise RemoteModelNotReady(
                f"model server {self.base_url} gave no metadata for {path} (HTTP {reply.status_code})"
            )
        return body

    def infer(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        """POST ``request`` to ``{path}/infer`` and return the reply; once more after a dropped connection or a 503.

        Raises:
            RemoteTimeout: no reply within the timeout (not retried: that would double the wait).
            RemoteUnavailable: connection refused or dropped, or 503, twice.
            RemoteScoringError: any other error status, or a reply that is not JSON.
        """
        with self.breaker.guard():
            return self._infer(path, request)

    def _infer(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        url = f"{path}/infer"
        for attempt in (1, 2):
            try:
                reply = self._client.post(url, json=request)
            except self._httpx.TransportError as exc:
                self._transport_failure(exc, url, attempt)
                continue
            body = self._reply(reply, attempt)
            if body is not None:
                return body
        raise AssertionError("unreachable")  # pragma: no cover - the second attempt returns or raises

    async def ainfer(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        """:meth:`infer` without blocking: for an event loop (PyFlink's ``AsyncFunction``), with the same rules.

        The asynchronous client is made on first use, in the running loop, and
        belongs to it: call this from one event loop only.
        """
        with self.breaker.guard():
            return await self._ainfer(path, request)

    async def _ainfer(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        import asyncio

        if self._async_client is None:
            self._async_loop = asyncio.get_running_loop()
            self._async_client = self._httpx.AsyncClient(**self._options)
        url = f"{path}/infer"
        for attempt in (1, 2):
            try:
                reply = await self._async_client.post(url, json=request)
            except self._httpx.TransportError as exc:
                self._transport_failure(exc, url, attempt)
                continue
            body = self._reply(reply, attempt)
            if body is not None:
                return body
        raise AssertionError("unreachable")  # pragma: no cover - the second attempt returns or raises

    def _transport_failure(self, exc: Exception, url: str, attempt: int) -> None:
        """Raise the typed error for a failed request, unless it is worth a second attempt."""
        if isinstance(exc, self._httpx.TimeoutException):
            raise RemoteTimeout(f"model server {self.base_url} did not answer {url} in time") from exc
        if attempt > 1:
            raise RemoteUnavailable(
                f"model server {self.base_url} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    def _reply(self, reply: Any, attempt: int) -> dict[str, Any] | None:
        """The JSON body of a 200 reply; None when a first 503 is worth a second attempt; else the typed error."""
        status = reply.status_code
        if status in RETRY_STATUSES:
            if attempt == 1:
                return None
            raise RemoteUnavailable(
                f"model server {self.base_url} answered HTTP {status} twice: {server_error(reply.text)}"
            )
        if status != 200:
            raise RemoteScoringError(f"model server {self.base_url} answered HTTP {status}: {server_error(reply.text)}")
        try:
            body = reply.json()
        except ValueError as exc:
            raise RemoteScoringError(f"model server {self.base_url} sent a reply that is not JSON") from exc
        if not isinstance(body, dict):
            raise RemoteScoringError(f"model server {self.base_url} sent a reply that is not a JSON object")
        return body

    async def aclose(self) -> None:
        """Close the asynchronous client's connections, in its own event loop (call it there)."""
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Close the connections (the asynchronous client's in its own loop, if that still runs). Safe twice."""
        self._client.close()
        client, loop, self._async_client = self._async_client, self._async_loop, None
        if client is not None and loop is not None and loop.is_running() and not loop.is_closed():
            import asyncio

            asyncio.run_coroutine_threadsafe(client.aclose(), loop)
