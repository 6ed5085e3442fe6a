"""What the benchmark runs: its configurations, the plan every one follows, and its error.

The results (:mod:`serving.bench.report`) and the orchestration
(:mod:`serving.bench.run`) both build on these, so they live apart from both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.errors import ConfigError, ServingError
from serving.records import wine
from serving.rollout.control import role_metadata
from serving.settings import PASSTHROUGH_MODEL

MODELS_DIR = wine.reference_dir() / "models"
TF_GRAPH = MODELS_DIR / "optimized_WineQuality.pb"
PMML_FOREST = MODELS_DIR / "winequalityRandonForrestClassification.pmml"

#: The bench's own scikit-learn model: both of its copies are published under this name.
SK_MODEL_NAME = "wine-sk"

#: Version every benchmark model is published with; the swap publishes SWAP_VERSION.
BENCH_VERSION = "bench"
SWAP_VERSION = "bench-swap"
#: The batching plain consumer takes up to this many records per poll.
PLAIN_BATCH = 500


class BenchError(ServingError):
    """The benchmark could not run (topics, broker) or a configuration failed its checks."""

    reason = "benchmark failed"


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked configuration.

    Attributes:
        name: what ``--only`` selects, e.g. ``keyed-tf``.
        runner: ``flink`` (a job via ``flink_jobs.main``) or ``plain`` (the confluent-kafka loop).
        job: the Flink job kind (``passthrough``, ``keyed``, ``partitioned``); None for ``plain``.
        model_path: the model published before the data; None for ``passthrough``.
        model_type: its type name (``tensorflow``, ``pmml``); None without a model.
        plain_batch: the plain loop's batch: up to this many records per poll and ``score_batch`` call.
        data_format: ``wine`` (``WineRecord`` protobufs on the wine topic) or ``json`` (the same rows as
            JSON records of a declared data type, on its own topic: the generic path).
        transactional: the plain loop commits results and offsets in one transaction per poll (exactly once).
        trained: the model is the bench's own scikit-learn model, fitted at run time
            (:mod:`serving.bench.sklearn_model`): ``onnx`` embeds its ONNX export, ``oip`` calls MLServer
            serving its joblib. ``model_path`` is then None.
        challenger_role: the same model published again, as version ``bench-<role>``, in this role
            (``shadow`` or ``canary``) beside the champion: what a challenger costs the job.
        challenger_weight_bp: a canary's share of the records, in basis points.
    """

    name: str
    runner: str
    job: str | None
    model_path: Path | None
    model_type: str | None
    plain_batch: int = 1
    data_format: str = "wine"
    transactional: bool = False
    trained: bool = False
    challenger_role: str | None = None
    challenger_weight_bp: int = 0

    @property
    def model_label(self) -> str:
        """The model as the results table shows it."""
        if self.trained:
            return f"{SK_MODEL_NAME} ({'oip, MLServer' if self.model_type == 'oip' else self.model_type})"
        if self.model_path is None:
            return "none"
        return f"{self.model_path.name} ({self.model_type})"

    @property
    def challenger_metadata(self) -> dict[str, str]:
        """The descriptor metadata that asks for :attr:`challenger_role` (empty without one)."""
        if self.challenger_role is None:
            return {}
        return role_metadata(self.challenger_role, self.challenger_weight_bp or None)

    @property
    def expected_model_name(self) -> str:
        """The ``model_name`` every result of this configuration must carry."""
        if self.trained:
            return SK_MODEL_NAME
        return PASSTHROUGH_MODEL if self.model_path is None else self.model_path.stem


#: Every configuration, in the order they run.
CONFIGS: dict[str, BenchConfig] = {
    c.name: c
    for c in (
        BenchConfig("passthrough", "flink", "passthrough", None, None),
        BenchConfig("keyed-tf", "flink", "keyed", TF_GRAPH, "tensorflow"),
        BenchConfig("keyed-pmml", "flink", "keyed", PMML_FOREST, "pmml"),
        BenchConfig("partitioned-tf", "flink", "partitioned", TF_GRAPH, "tensorflow"),
        BenchConfig("partitioned-pmml", "flink", "partitioned", PMML_FOREST, "pmml"),
        BenchConfig("keyed-json-tf", "flink", "keyed", TF_GRAPH, "tensorflow", data_format="json"),
        BenchConfig("partitioned-json-tf", "flink", "partitioned", TF_GRAPH, "tensorflow", data_format="json"),
        # One fitted scikit-learn model, embedded (its ONNX export) and remote (its joblib on MLServer).
        BenchConfig("keyed-sk-embedded", "flink", "keyed", None, "onnx", trained=True),
        BenchConfig("keyed-sk-remote", "flink", "keyed", None, "oip", trained=True),
        # The TF champion with a copy of itself as a challenger: every record scored twice and compared,
        # or a fifth of them served by the canary (the champion still scores them, for the comparison).
        BenchConfig("keyed-tf-shadow", "flink", "keyed", TF_GRAPH, "tensorflow", challenger_role="shadow"),
        BenchConfig(
            "keyed-tf-canary",
            "flink",
            "keyed",
            TF_GRAPH,
            "tensorflow",
            challenger_role="canary",
            challenger_weight_bp=2_000,
        ),
        BenchConfig("partitioned-tf-shadow", "flink", "partitioned", TF_GRAPH, "tensorflow", challenger_role="shadow"),
        BenchConfig("plain-tf", "plain", None, TF_GRAPH, "tensorflow"),
        BenchConfig("plain-pmml", "plain", None, PMML_FOREST, "pmml"),
        BenchConfig("plain-batch-tf", "plain", None, TF_GRAPH, "tensorflow", PLAIN_BATCH),
        BenchConfig("plain-batch-pmml", "plain", None, PMML_FOREST, "pmml", PLAIN_BATCH),
        BenchConfig("plain-tx-tf", "plain", None, TF_GRAPH, "tensorflow", PLAIN_BATCH, transactional=True),
    )
}

#: (variant, baseline, kind) configurations scoring the same model: the summary gives variant / baseline.
RATIO_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("keyed-sk-remote", "keyed-sk-embedded", "remote"),
    ("keyed-tf-shadow", "keyed-tf", "challenger"),
    ("keyed-tf-canary", "keyed-tf", "challenger"),
    ("partitioned-tf-shadow", "partitioned-tf", "challenger"),
)
#: What each kind of pair compares, as the printed summary names it.
PAIR_KINDS = {"remote": "remote / embedded, same model", "challenger": "with a challenger / without"}


def parse_only(text: str | None) -> list[BenchConfig]:
    """The configurations ``--only`` names (comma-separated), in run order; all when ``text`` is empty.

    Raises:
        ConfigError: a name that is not in :data:`CONFIGS`.
    """
    if not text:
        return list(CONFIGS.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        raise ConfigError(f"unknown configuration {', '.join(unknown) or repr(text)}; choose from {', '.join(CONFIGS)}")
    return [c for c in CONFIGS.values() if c.name in names]


@dataclass
class BenchPlan:
    """What every configuration is asked to do.

    Attributes:
        records: N, pre-loaded before the job starts; the throughput phase.
        latency_records: M, sent paced while the job runs (0: no latency phase).
        latency_rate: records per second in the latency phase.
        parallelism: Flink parallelism (the plain loop is always one process).
        timeout_s: how long each phase may wait for its results.
        checkpoint_interval_ms: the job's checkpoint (and so commit) interval.
        idle_flush_ms: the job's idle flush.
        job_args: more ``flink_jobs.main`` flags, e.g. ``--batch-size 500 --batch-wait-ms 20``.
        swap: publish a new model version halfway through the latency phase and
            measure how soon it serves and the longest gap in results around it.
    """

    records: int = 20_000
    latency_records: int = 2_000
    latency_rate: float = 500.0
    parallelism: int = 1
    timeout_s: float = 600.0
    checkpoint_interval_ms: int = 1_000
    idle_flush_ms: int = 200
    job_args: tuple[str, ...] = ()
    swap: bool = False

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a value no run could use."""
        if self.records < 1:
            raise ConfigError(f"--records must be at least 1, got {self.records}")
        if self.latency_records < 0:
            raise ConfigError(f"--latency-records must be 0 or more, got {self.latency_records}")
        if not self.latency_rate > 0:
            raise ConfigError(f"--latency-rate must be above 0, got {self.latency_rate:g}")
        if self.parallelism < 1:
            raise ConfigError(f"--parallelism must be at least 1, got {self.parallelism}")
        if not self.timeout_s > 0:
            raise ConfigError(f"--timeout must be above 0, got {self.timeout_s:g}")
