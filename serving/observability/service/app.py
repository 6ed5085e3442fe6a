"""The stats service over HTTP: the FastAPI app, a server thread for tests and embedding, and :func:`serve`."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from importlib import resources
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from serving.errors import ServingError
from serving.kafka.reading import TopicReadError
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.observability.experiments import DataTypeExperiments
from serving.observability.monitor import UnknownDataType
from serving.observability.service.audit import AuditAnswerView
from serving.observability.service.prometheus import StatsCollector
from serving.observability.service.state import (
    ExperimentsAnswer,
    Health,
    HistoryAnswer,
    KafkaDown,
    ModelsAnswer,
    Overview,
    SeriesAnswer,
    StatsService,
)
from serving.observability.views import StateView
from serving.rollout.audit import RecordNotScored

log = get_logger("stats.service")

DEFAULT_PORT = 5500
DEFAULT_HOST = "127.0.0.1"


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: str
    detail: str


def dashboard_html() -> str:
    """The dashboard page, ``static/dashboard.html`` of the ``serving.observability`` package (self-contained)."""
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
    registry.register(StatsCollector(service))
    page = dashboard_html()

    @app.exception_handler(UnknownDataType)
    async def _unknown(_request: Request, exc: UnknownDataType) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": exc.reason, "detail": str(exc)})

    @app.exception_handler(KafkaDown)
    @app.exception_handler(TopicReadError)
    async def _down(_request: Request, exc: ServingError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": exc.reason, "detail": str(exc)})

    @app.exception_handler(RecordNotScored)
    async def _not_scored(_request: Request, exc: RecordNotScored) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": exc.reason, "detail": str(exc)})

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

    @app.get("/experiments", response_model=ExperimentsAnswer, responses={503: _ERRORS[503]})
    def experiments() -> ExperimentsAnswer:
        """Every champion-versus-challenger pair per data type (merged over instances), and each lineup."""
        return service.experiments()

    @app.get("/experiments/{data_type}", response_model=DataTypeExperiments, responses=_ERRORS)
    def experiments_of(data_type: str) -> DataTypeExperiments:
        """The pairs of ``data_type`` (n, agreement, Wilson lower bound, recommended?) and its versions' roles."""
        return service.experiments_of(data_type)

    @app.get(
        "/audit/{record_id}",
        response_model=AuditAnswerView,
        responses={404: {"model": ErrorBody, "description": "record never scored"}, 503: _ERRORS[503]},
    )
    def audit(record_id: str) -> AuditAnswerView:
        """Which model and version scored ``record_id``, when that version was deployed and retired, its signer.

        Reads the results and model-events topics to their end on each request (committed messages only).
        """
        return service.audit(record_id)

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
