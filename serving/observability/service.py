"""The stats service: reads the stats and model-events topics, answers over HTTP.

Flink deprecated queryable state (and PyFlink never had it), so the jobs send
their stats out on the stats side output instead, and this service answers the
questions the tutorial answered with queryable state:

* ``GET /models``: every model known, with its status (see :mod:`serving.observability.monitoring`);
* ``GET /state/{data_type}``: the serving model and its merged stats;
* ``GET /history/{data_type}``: every version in deployment order (``?at=MS``: the one serving then);
* ``GET /series/{data_type}``: throughput and latency over time;
* ``GET /overview``: all of it at once, for the dashboard;
* ``GET /metrics``: Prometheus text exposition;
* ``GET /health``: always 200, with the Kafka status;
* ``GET /`` (and ``/dashboard``): the live dashboard;
* ``GET /openapi.json``: the OpenAPI schema.

A :class:`KafkaFeed` thread reads both topics from the beginning with
``read_committed`` (no consumer group offsets: the answers are rebuilt from
the topics on every start; the stats topic is compacted, so that is quick).
Topics that do not exist yet are picked up once they do. When no broker
answers, the query endpoints answer 503 with the reason, and the feed carries
on where it was once the broker is back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from importlib import resources
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel

from serving.clock import now_ms
from serving.errors import ServingError
from serving.kafka.clients import consumer
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.observability.monitoring import (
    Counters,
    HistoryEntry,
    ModelView,
    Monitor,
    SeriesPoint,
    StateView,
    UnknownDataType,
    status_counts,
)

log = get_logger("stats.service")

DEFAULT_PORT = 5500
DEFAULT_HOST = "127.0.0.1"
#: How often the feed asks the broker for metadata: new topics and partitions, and whether it answers.
METADATA_INTERVAL_S = 2.0
#: How long one metadata request waits for a broker before the feed counts Kafka as unreachable.
METADATA_TIMEOUT_S = 3.0


class KafkaDown(ServingError):
    """No broker answers: the service's answers may be stale."""

    reason = "kafka unreachable"


# --------------------------------------------------------------------------- JSON answers


class KafkaStatus(BaseModel):
    """Whether the feed reaches Kafka, and what it reads."""

    ok: bool
    bootstrap: str
    #: Why Kafka counts as unreachable (empty when ok).
    error: str
    #: When ``ok`` last changed (epoch ms).
    since: int
    #: role ("stats", "model_events") -> topic name.
    topics: dict[str, str]
    #: Topics that do not exist yet; they are read once they do.
    missing_topics: list[str]


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: str
    detail: str


class ModelsAnswer(BaseModel):
    """``GET /models``."""

    models: list[ModelView]
    counts: dict[str, int]
    kafka: KafkaStatus


class HistoryAnswer(BaseModel):
    """``GET /history/{data_type}``."""

    data_type: str
    at: int | None
    models: list[HistoryEntry]


class SeriesAnswer(BaseModel):
    """``GET /series/{data_type}``."""

    data_type: str
    points: list[SeriesPoint]


class DataTypeOverview(BaseModel):
    """Everything the dashboard shows about one data type."""

    state: StateView
    history: list[HistoryEntry]
    series: list[SeriesPoint]


class Overview(BaseModel):
    """``GET /overview``: the dashboard's one request. Always 200; ``kafka.ok`` says whether it is live."""

    now: int
    kafka: KafkaStatus
    counters: Counters
    models: list[ModelView]
    data_types: dict[str, DataTypeOverview]


class Health(BaseModel):
    """``GET /health``."""

    status: str
    kafka: KafkaStatus
    counters: Counters


# --------------------------------------------------------------------------- the Kafka feed


class KafkaFeed(threading.Thread):
    """Reads the stats and model-events topics into a :class:`Monitor`, from the beginning, until stopped.

    Every ``metadata_interval`` seconds it asks for metadata: a failure marks
    Kafka unreachable (``ok`` False, ``error`` the reason), a success marks it
    reachable and assigns any partition not read yet (new topics included)
    from its beginning. Messages are read with ``read_committed``; malformed
    ones are counted by the monitor, logged and skipped. Nothing that arrives
    on the topics stops the thread.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        monitor: Monitor,
        lock: threading.Lock,
        *,
        metadata_interval: float = METADATA_INTERVAL_S,
        metadata_timeout: float = METADATA_TIMEOUT_S,
    ) -> None:
        super().__init__(name="stats-kafka-feed", daemon=True)
        self.settings = settings
        self.monitor = monitor
        self.lock = lock
        self.metadata_interval = metadata_interval
        self.metadata_timeout = metadata_timeout
        self.topics = {"stats": settings.topics.stats, "model_events": settings.topics.model_events}
        self._stopping = threading.Event()
        self._assigned: dict[str, set[int]] = {t: set() for t in self.topics.values()}
        self._missing: set[str] = set(self.topics.values())
        self._ok = False
        self._error = "not connected yet"
        self._since = now_ms()
        self._logged_down = False
        self._status_lock = threading.Lock()

    def status(self) -> KafkaStatus:
        """The current Kafka status (thread-safe)."""
        with self._status_lock:
            return KafkaStatus(
                ok=self._ok,
                bootstrap=self.settings.bootstrap_servers,
                error="" if self._ok else self._error,
                since=self._since,
                topics=dict(self.topics),
                missing_topics=sorted(self._missing),
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (closing its consumer)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        """Poll until stopped; any unexpected error is logged and the loop goes on after a pause."""
        reader = None
        next_check = 0.0
        try:
            reader = self._consumer()
            while not self._stopping.is_set():
                try:
                    if time.monotonic() >= next_check:
                        self._refresh(reader)
                        next_check = time.monotonic() + self.metadata_interval
                    message = reader.poll(0.2)
                    if message is not None:
                        self._handle(message)
                except Exception as exc:  # a bug or a client failure must not end the feed
                    log.exception("stats feed error; continuing", extra={"error": str(exc)})
                    self._set_down(f"stats feed error: {exc}")
                    self._stopping.wait(1.0)
        finally:
            if reader is not None:
                with contextlib.suppress(Exception):
                    reader.close()

    # ----------------------------------------------------------------- internals

    def _consumer(self):
        return consumer(
            self.settings,
            group_id=f"{self.settings.group_id}-stats-service",
            from_beginning=True,
            error_cb=self._on_error,
            # Connection failures are reported once, by the feed; not by librdkafka on every retry.
            log_level=0,
            **{"reconnect.backoff.max.ms": 2000, "socket.connection.setup.timeout.ms": 3000},
        )

    def _on_error(self, error) -> None:
        # Reachability is decided by the metadata requests alone: librdkafka's own "all brokers down"
        # errors also come while a metadata request succeeds over another connection.
        if error.fatal():
            self._set_down(f"Kafka client failed for good at {self.settings.bootstrap_servers}: {error.str()}")
        else:
            log.debug("kafka client error", extra={"error": error.str()})

    def _refresh(self, reader) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        try:
            metadata = reader.list_topics(timeout=self.metadata_timeout)
        except KafkaException as exc:
            error = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
            self._set_down(f"no Kafka broker answered at {self.settings.bootstrap_servers}: {error}")
            return
        self._set_up()
        new: list[TopicPartition] = []
        missing = set()
        for topic in self.topics.values():
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                missing.add(topic)
                continue
            for partition in sorted(set(described.partitions) - self._assigned[topic]):
                new.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
                self._assigned[topic].add(partition)
        with self._status_lock:
            appeared = self._missing - missing
            self._missing = missing
        if new:
            reader.incremental_assign(new)
            log.info(
                "reading partitions",
                extra={"partitions": ",".join(f"{tp.topic}/{tp.partition}" for tp in new)},
            )
        for topic in sorted(appeared):
            log.info("topic found", extra={"topic": topic})

    def _handle(self, message) -> None:
        from confluent_kafka import KafkaError

        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                with self._status_lock:
                    self._missing.add(message.topic())
                return
            if error.fatal():
                self._set_down(error.str())
            else:
                log.debug("consumer error, retrying", extra={"error": error.str()})
            return
        topic = message.topic()
        with self.lock:
            if topic == self.topics["stats"]:
                accepted = self.monitor.ingest_stats(message.value())
            else:
                accepted = self.monitor.ingest_event(message.value())
        if not accepted and message.value() is not None:
            log.warning(
                "skipped a malformed message",
                extra={"topic": topic, "partition": message.partition(), "offset": message.offset()},
            )

    def _set_down(self, reason: str) -> None:
        with self._status_lock:
            first = self._ok or not self._logged_down
            self._ok, self._error, self._logged_down = False, reason, True
            if first:
                self._since = now_ms()
        if first:  # once per outage, not on every retry
            log.warning("kafka unreachable", extra={"reason": reason})

    def _set_up(self) -> None:
        with self._status_lock:
            if self._ok:
                return
            self._ok, self._error, self._since, self._logged_down = True, "", now_ms(), False
        log.info("kafka reachable", extra={"bootstrap": self.settings.bootstrap_servers})


# --------------------------------------------------------------------------- the service


class StatsService:
    """A :class:`Monitor` fed by a :class:`KafkaFeed`; the HTTP app reads it through here.

    Every read takes the monitor's lock and returns plain answer objects, so
    the HTTP handlers never see a half-applied message.
    """

    def __init__(self, settings: KafkaSettings, *, metadata_interval: float = METADATA_INTERVAL_S) -> None:
        self.settings = settings
        self.monitor = Monitor()
        self.lock = threading.Lock()
        self.feed = KafkaFeed(settings, self.monitor, self.lock, metadata_interval=metadata_interval)

    def start(self) -> None:
        """Start reading Kafka (returns at once; Kafka need not be reachable)."""
        if not self.feed.is_alive():
            self.feed.start()
            log.info("stats service reading", extra={"kafka": self.settings.describe(), **self.feed.topics})

    def stop(self) -> None:
        """Stop reading Kafka."""
        self.feed.stop()

    def kafka(self) -> KafkaStatus:
        """The feed's Kafka status."""
        return self.feed.status()

    def require_kafka(self) -> KafkaStatus:
        """The Kafka status when Kafka is reachable.

        Raises:
            KafkaDown: it is not (the message has the reason).
        """
        status = self.kafka()
        if not status.ok:
            raise KafkaDown(status.error or "kafka unreachable")
        return status

    def models(self) -> ModelsAnswer:
        """Every known model; raises :class:`KafkaDown` when Kafka is unreachable."""
        kafka = self.require_kafka()
        with self.lock:
            models = self.monitor.models()
        return ModelsAnswer(models=models, counts=status_counts(models), kafka=kafka)

    def state(self, data_type: str) -> StateView:
        """The serving model of ``data_type``; raises :class:`KafkaDown` or :class:`UnknownDataType`."""
        self.require_kafka()
        with self.lock:
            return self.monitor.state(data_type)

    def history(self, data_type: str, at: int | None = None) -> HistoryAnswer:
        """The history of ``data_type``; raises :class:`KafkaDown` or :class:`UnknownDataType`."""
        self.require_kafka()
        with self.lock:
            return HistoryAnswer(data_type=data_type, at=at, models=self.monitor.history(data_type, at))

    def series(self, data_type: str) -> SeriesAnswer:
        """Throughput and latency of ``data_type``; raises :class:`KafkaDown` or :class:`UnknownDataType`."""
        self.require_kafka()
        with self.lock:
            return SeriesAnswer(data_type=data_type, points=self.monitor.series(data_type))

    def overview(self) -> Overview:
        """Everything, as last known, whether or not Kafka is reachable now."""
        kafka = self.kafka()
        with self.lock:
            data_types = {
                dt: DataTypeOverview(
                    state=self.monitor.state(dt), history=self.monitor.history(dt), series=self.monitor.series(dt)
                )
                for dt in self.monitor.data_types()
                if dt
            }
            return Overview(
                now=now_ms(),
                kafka=kafka,
                counters=self.monitor.counters.model_copy(),
                models=self.monitor.models(),
                data_types=data_types,
            )

    def health(self) -> Health:
        """Service status: ``ok`` or ``degraded`` (Kafka unreachable)."""
        kafka = self.kafka()
        with self.lock:
            counters = self.monitor.counters.model_copy()
        return Health(status="ok" if kafka.ok else "degraded", kafka=kafka, counters=counters)


# --------------------------------------------------------------------------- Prometheus


class _Collector:
    """Prometheus metrics computed from the monitor at scrape time."""

    def __init__(self, service: StatsService) -> None:
        self.service = service

    def collect(self) -> Iterator:
        overview = self.service.overview()
        up = GaugeMetricFamily("modelserving_kafka_up", "1 when the stats service reaches Kafka, else 0")
        up.add_metric([], 1.0 if overview.kafka.ok else 0.0)
        yield up
        labels = ["data_type", "name", "version"]
        scored = CounterMetricFamily(
            "modelserving_model_records_scored", "Records scored by a model version, all instances", labels=labels
        )
        serving = GaugeMetricFamily(
            "modelserving_model_serving", "1 for the model serving its data type, else 0", labels=labels
        )
        since = GaugeMetricFamily(
            "modelserving_model_since_seconds", "When the model started serving (Unix time)", labels=labels
        )
        for model in overview.models:
            key = [model.data_type, model.name, model.version]
            scored.add_metric(key, float(model.usage))
            serving.add_metric(key, 1.0 if model.status == "serving" else 0.0)
            if model.since is not None:
                since.add_metric(key, model.since / 1000)
        yield from (scored, serving, since)
        seconds = GaugeMetricFamily(
            "modelserving_scoring_seconds",
            "Scoring time per record of the serving model (mean, min, max)",
            labels=[*labels, "stat"],
        )
        rate = GaugeMetricFamily(
            "modelserving_records_per_second", "Recent records/s of the serving model", labels=labels
        )
        for data_type, item in overview.data_types.items():
            current = item.state.model
            if current is None:
                continue
            key = [data_type, current.name, current.version]
            seconds.add_metric([*key, "mean"], current.mean_duration_ns / 1e9)
            seconds.add_metric([*key, "min"], current.min_duration_ns / 1e9)
            seconds.add_metric([*key, "max"], current.max_duration_ns / 1e9)
            rate.add_metric(key, current.records_per_second)
        yield from (seconds, rate)
        models = GaugeMetricFamily("modelserving_models", "Known model versions by status", labels=["status"])
        for status, count in status_counts(overview.models).items():
            models.add_metric([status], float(count))
        yield models
        counters = overview.counters
        messages = CounterMetricFamily(
            "modelserving_messages", "Messages read from the monitoring topics", labels=["topic"]
        )
        messages.add_metric(["stats"], float(counters.stats_messages + counters.malformed_stats))
        messages.add_metric(["model_events"], float(counters.event_messages + counters.malformed_events))
        yield messages
        malformed = CounterMetricFamily(
            "modelserving_malformed_messages", "Messages skipped because they are malformed", labels=["topic"]
        )
        malformed.add_metric(["stats"], float(counters.malformed_stats))
        malformed.add_metric(["model_events"], float(counters.malformed_events))
        yield malformed
        duplicates = CounterMetricFamily("modelserving_duplicate_models", "DUPLICATE model events (replays)")
        duplicates.add_metric([], float(counters.duplicates))
        yield duplicates


# --------------------------------------------------------------------------- HTTP


def dashboard_html() -> str:
    """The dashboard page (``static/dashboard.html`` beside this module): self-contained, no external assets."""
    return resources.files("serving.observability").joinpath("static/dashboard.html").read_text(encoding="utf-8")


_ERRORS = {404: {"model": ErrorBody, "description": "unknown data type"}, 503: {"model": ErrorBody}}


def create_app(service: StatsService, *, manage: bool = True) -> FastAPI:
    """The HTTP app over ``service``.

    Args:
        service: What the endpoints read.
        manage: Start the service with the app and stop it with the app (uvicorn's lifespan).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        if manage:
            service.start()
        try:
            yield
        finally:
            if manage:
                service.stop()

    app = FastAPI(
        title="modelserving stats",
        version="1",
        description="Which model serves each data type, since when, how much and how fast.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their assets from a CDN; the schema itself is at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(service))
    page = dashboard_html()

    @app.exception_handler(UnknownDataType)
    async def _unknown(_request: Request, exc: UnknownDataType) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": exc.reason, "detail": str(exc)})

    @app.exception_handler(KafkaDown)
    async def _down(_request: Request, exc: KafkaDown) -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": exc.reason, "detail": str(exc)})

    @app.get("/models", response_model=ModelsAnswer, responses={503: _ERRORS[503]})
    def models() -> ModelsAnswer:
        """Every model known, with name, version, type, since and status (rejected ones with the reason)."""
        return service.models()

    @app.get("/state/{data_type}", response_model=StateView, responses=_ERRORS)
    def state(data_type: str) -> StateView:
        """The model serving ``data_type`` and its stats (usage, mean/min/max duration, records/s)."""
        return service.state(data_type)

    @app.get("/history/{data_type}", response_model=HistoryAnswer, responses=_ERRORS)
    def history(
        data_type: str,
        at: Annotated[int | None, Query(description="epoch ms: only the model serving at that time")] = None,
    ) -> HistoryAnswer:
        """Every model version of ``data_type`` in deployment order, with times and records scored."""
        return service.history(data_type, at)

    @app.get("/series/{data_type}", response_model=SeriesAnswer, responses=_ERRORS)
    def series(data_type: str) -> SeriesAnswer:
        """Throughput (records/s) and latency (mean ns per record) of ``data_type`` over time."""
        return service.series(data_type)

    @app.get("/overview", response_model=Overview)
    def overview() -> Overview:
        """Everything the dashboard shows, as last known; ``kafka.ok`` says whether it is live."""
        return service.overview()

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Always 200: ``ok``, or ``degraded`` while Kafka is unreachable."""
        return service.health()

    @app.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def metrics() -> Response:
        """Prometheus text exposition of the models' stats and the service's own counters."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(page)

    return app


class ServerThread:
    """The stats service's HTTP app on uvicorn, in a background thread (tests, embedding).

    ``port=0`` picks a free port; :attr:`url` names the one taken.
    """

    def __init__(self, service: StatsService, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(service), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        """Start serving; returns once uvicorn has started.

        Raises:
            ServingError: uvicorn did not start within ``timeout``.
        """
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(f"the stats service did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving (the app's lifespan stops the service)."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


def serve(settings: KafkaSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the stats service in the foreground until interrupted."""
    service = StatsService(settings)
    log.info("stats service starting", extra={"url": f"http://{host}:{port}", "kafka": settings.describe()})
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
