"""The stats service the HTTP endpoints read: a :class:`Monitor` fed by a :class:`KafkaFeed`, and its answers."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from serving.clock import now_ms
from serving.errors import ServingError
from serving.kafka.reading import topic_reader
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.observability.experiments import DataTypeExperiments, ExperimentView, flat
from serving.observability.monitor import Monitor, UnknownDataType, status_counts
from serving.observability.service.audit import AUDIT_TIMEOUT_S, AuditAnswerView, TopicReader, audit_record
from serving.observability.service.feed import METADATA_INTERVAL_S, KafkaFeed, KafkaStatus
from serving.observability.views import Counters, HistoryEntry, ModelView, SeriesPoint, StateView

log = get_logger("stats.service")


class KafkaDown(ServingError):
    """No broker answers: the service's answers may be stale."""

    reason = "kafka unreachable"


# --------------------------------------------------------------------------- JSON answers


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


class ExperimentsAnswer(BaseModel):
    """``GET /experiments``: every data type with experiments or lineup events, sorted."""

    data_types: list[DataTypeExperiments]
    kafka: KafkaStatus


class Health(BaseModel):
    """``GET /health``."""

    status: str
    kafka: KafkaStatus
    counters: Counters


# --------------------------------------------------------------------------- the service


class StatsService:
    """A :class:`Monitor` fed by a :class:`KafkaFeed`; the HTTP app reads it through here.

    Every read takes the monitor's lock and returns plain answer objects, so
    the HTTP handlers never see a half-applied message.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        metadata_interval: float = METADATA_INTERVAL_S,
        read_topic: TopicReader | None = None,
    ) -> None:
        """``read_topic`` reads a topic to its end for ``/audit`` (default: read_committed to the end)."""
        self.settings = settings
        self.read_topic = read_topic or topic_reader(settings, AUDIT_TIMEOUT_S, purpose="stats-audit")
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

    def experiments(self) -> ExperimentsAnswer:
        """Every data type's experiments and lineup; raises :class:`KafkaDown` when Kafka is unreachable."""
        kafka = self.require_kafka()
        with self.lock:
            return ExperimentsAnswer(data_types=self.monitor.experiments.views(), kafka=kafka)

    def experiment_list(self) -> list[ExperimentView]:
        """Every pair as last known, whether or not Kafka is reachable now (for ``/metrics``)."""
        with self.lock:
            return flat(self.monitor.experiments.views())

    def experiments_of(self, data_type: str) -> DataTypeExperiments:
        """The experiments and lineup of ``data_type`` (empty for a type with none); raises :class:`KafkaDown`.

        Raises:
            UnknownDataType: neither stats, model events nor experiments name ``data_type``.
        """
        self.require_kafka()
        with self.lock:
            experiments = self.monitor.experiments
            if data_type not in experiments.data_types() and data_type not in self.monitor.data_types():
                raise UnknownDataType(f"unknown data type {data_type!r}: no stats or model events name it")
            return experiments.view(data_type)

    def audit(self, record_id: str) -> AuditAnswerView:
        """Which model scored ``record_id``, from the results and model-events topics read now to their end.

        Raises:
            KafkaDown: Kafka is unreachable.
            RecordNotScored: no result carries ``record_id``.
            TopicReadError: a topic could not be read to its end.
        """
        self.require_kafka()
        topics = self.settings.topics
        return audit_record(record_id, self.read_topic, topics.results, topics.model_events)

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
