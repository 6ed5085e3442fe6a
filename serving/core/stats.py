"""Per-model serving statistics: usage and scoring durations in nanoseconds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from serving.core.model import ModelDescriptor, ModelType
from serving.pb.model_stats_pb2 import ModelStats


@dataclass
class ModelServingStats:
    """Usage, total/min/max scoring duration (ns) and since (epoch ms) of one model version.

    ``min_duration_ns`` and ``max_duration_ns`` are 0 while ``usage`` is 0.
    Durations are per record: a batch of N records costing D ns counts as N
    records of D / N ns each; min rounds that down and max rounds it up, so
    ``min <= mean <= max`` always holds.
    """

    name: str
    version: str
    data_type: str
    model_type: str = ""
    description: str = ""
    since: int = 0
    usage: int = 0
    total_duration_ns: int = 0
    min_duration_ns: int = 0
    max_duration_ns: int = 0
    instance: str = ""

    @classmethod
    def for_model(cls, descriptor: ModelDescriptor, since_ms: int) -> ModelServingStats:
        """Fresh stats for a model that starts serving at ``since_ms``."""
        return cls(
            name=descriptor.name,
            version=descriptor.version,
            data_type=descriptor.data_type,
            model_type=ModelType.Name(descriptor.model_type),
            description=descriptor.description,
            since=since_ms,
        )

    @property
    def mean_duration_ns(self) -> float:
        """Mean scoring duration per record, 0 when unused."""
        return self.total_duration_ns / self.usage if self.usage else 0.0

    def record(self, duration_ns: int, count: int = 1) -> None:
        """Account for ``count`` records scored together in ``duration_ns``."""
        if count <= 0:
            return
        low, high = duration_ns // count, -(-duration_ns // count)
        self.min_duration_ns = low if self.usage == 0 else min(self.min_duration_ns, low)
        self.max_duration_ns = max(self.max_duration_ns, high)
        self.usage += count
        self.total_duration_ns += duration_ns

    def merge(self, other: ModelServingStats) -> ModelServingStats:
        """Combine stats of the same model version from two instances into a new object."""
        if (self.name, self.version, self.data_type) != (other.name, other.version, other.data_type):
            raise ValueError(f"cannot merge stats of {self.name}:{self.version} with {other.name}:{other.version}")
        if not other.usage:
            mins, maxs = self.min_duration_ns, self.max_duration_ns
        elif not self.usage:
            mins, maxs = other.min_duration_ns, other.max_duration_ns
        else:
            mins = min(self.min_duration_ns, other.min_duration_ns)
            maxs = max(self.max_duration_ns, other.max_duration_ns)
        since = min(s for s in (self.since, other.since) if s) if (self.since or other.since) else 0
        return ModelServingStats(
            name=self.name,
            version=self.version,
            data_type=self.data_type,
            model_type=self.model_type or other.model_type,
            description=self.description or other.description,
            since=since,
            usage=self.usage + other.usage,
            total_duration_ns=self.total_duration_ns + other.total_duration_ns,
            min_duration_ns=mins,
            max_duration_ns=maxs,
            instance=self.instance if self.instance == other.instance else "",
        )

    def to_proto(self) -> ModelStats:
        """The ``ModelStats`` protobuf of these stats."""
        return ModelStats(
            name=self.name,
            version=self.version,
            description=self.description,
            model_type=ModelType.Value(self.model_type) if self.model_type else 0,
            data_type=self.data_type,
            since=self.since,
            usage=self.usage,
            total_duration_ns=self.total_duration_ns,
            min_duration_ns=self.min_duration_ns,
            max_duration_ns=self.max_duration_ns,
            instance=self.instance,
        )

    @classmethod
    def from_proto(cls, message: ModelStats) -> ModelServingStats:
        """Stats from a ``ModelStats`` protobuf."""
        return cls(
            name=message.name,
            version=message.version,
            data_type=message.data_type,
            model_type=ModelType.Name(message.model_type) if message.model_type else "",
            description=message.description,
            since=message.since,
            usage=message.usage,
            total_duration_ns=message.total_duration_ns,
            min_duration_ns=message.min_duration_ns,
            max_duration_ns=message.max_duration_ns,
            instance=message.instance,
        )

    def to_dict(self) -> dict:
        """A JSON-ready dict, with the mean added."""
        return {**asdict(self), "mean_duration_ns": self.mean_duration_ns}
