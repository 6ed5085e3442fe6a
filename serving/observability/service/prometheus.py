"""The stats service's Prometheus metrics, computed from the monitor at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from serving.observability.experiments import ExperimentView
from serving.observability.monitor import SERVING, status_counts
from serving.observability.service.state import StatsService


class StatsCollector:
    """A Prometheus collector over a :class:`StatsService`: register it, and each scrape reads the service.

    It reports whether Kafka is reachable, each model version's records scored
    and scoring time (counters), an ensemble's per-member wins, ok, late and
    errors (counters), status and start time, the serving models' scoring time
    and throughput, the models by status, and the messages the service read,
    skipped and saw replayed; per experiment (pair of versions), records compared and the agreement rate.
    """

    def __init__(self, service: StatsService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """Every metric, from one :meth:`StatsService.overview` (so they agree with each other)."""
        overview = self.service.overview()
        up = GaugeMetricFamily("modelserving_kafka_up", "1 when the stats service reaches Kafka, else 0")
        up.add_metric([], 1.0 if overview.kafka.ok else 0.0)
        yield up
        labels = ["data_type", "name", "version"]
        # Counters: they never go down (an instance's restart carries its earlier counts), so rate() works:
        # throughput = rate(records_scored), mean scoring time = rate(scoring_seconds) / rate(records_scored).
        scored = CounterMetricFamily(
            "modelserving_model_records_scored", "Records scored by a model version, all instances", labels=labels
        )
        scoring = CounterMetricFamily(
            "modelserving_model_scoring_seconds",
            "Time spent scoring the records of a model version, all instances",
            labels=labels,
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
            scoring.add_metric(key, model.total_duration_ns / 1e9)
            serving.add_metric(key, 1.0 if model.status == SERVING else 0.0)
            if model.since is not None:
                since.add_metric(key, model.since / 1000)
        yield from (scored, scoring, serving, since)
        # Per record, each ensemble member either decided it (win) or not, and answered ok, late or error.
        members = CounterMetricFamily(
            "modelserving_ensemble_member_decisions",
            "Records of an ensemble a member decided (outcome win) or answered ok, late or with an error",
            labels=[*labels, "member", "member_version", "outcome"],
        )
        for model in overview.models:
            for member in model.members:
                key = [model.data_type, model.name, model.version, member.name, member.version]
                for outcome, value in (("win", member.wins), ("ok", member.ok), ("late", member.late),
                                       ("error", member.errors)):  # fmt: skip
                    members.add_metric([*key, outcome], float(value))
        yield members
        seconds = GaugeMetricFamily(
            "modelserving_scoring_seconds",
            "Scoring time per record of the serving model (mean, min, max)",
            labels=[*labels, "stat"],
        )
        rate = GaugeMetricFamily(
            "modelserving_records_per_second",
            "Records/s of the serving model over its last 10 s of stats (as the dashboard shows it)",
            labels=labels,
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
        yield from _experiments(self.service.experiment_list())


def _experiments(experiments: list[ExperimentView]) -> Iterator[Metric]:
    """Per champion-versus-challenger pair: records compared and the agreement rate, all instances."""
    labels = ["data_type", "champion", "challenger"]
    ratio = GaugeMetricFamily(
        "modelserving_experiment_agreement_ratio",
        "Share of the records compared on which the challenger agreed with the champion",
        labels=labels,
    )
    # A gauge, not a counter: a pair's count restarts from 0 when its job loses its state.
    compared = GaugeMetricFamily(
        "modelserving_experiment_comparisons",
        "Records compared between the champion and the challenger (failures included)",
        labels=labels,
    )
    for e in experiments:
        key = [e.data_type, e.champion_version, e.challenger_version]
        ratio.add_metric(key, e.agreement_rate)
        compared.add_metric(key, float(e.n))
    yield from (ratio, compared)
