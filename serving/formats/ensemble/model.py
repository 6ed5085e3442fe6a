"""The ``ensemble`` format: member models score each batch, a decider picks each record's answer.

The artifact is the JSON document of :mod:`.document`. Loading builds every
member, bound to the ensemble's data-type columns (a member that fails to
load fails the ensemble, named). Scoring runs the members as
:mod:`.members` says for the document's ``mode`` and asks the decider, per
record, for the deciding member; the scores carry ``decided_by`` per record
and every member's outcome (:class:`EnsembleScores`), which
``serving.codecs.outputs.results_for`` puts into each result.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from serving.core.model import BatchScores, Model, ModelDescriptor, RawPrediction, sha256_hex
from serving.deciders.base import Response
from serving.deciders.registry import resolve
from serving.errors import InputShapeError, ScoringError, ServingError
from serving.formats.ensemble.document import encode, parse_document
from serving.formats.ensemble.members import Member, Outcome, run_declared, run_wallclock

if TYPE_CHECKING:
    from serving.records.schema import Column

#: Metadata of an ensemble kept in state: the SHA-256 of the document it was published with.
PUBLISHED_SHA256 = "published_sha256"


@dataclass(frozen=True)
class EnsembleScores(BatchScores):
    """An ensemble's scores: per row the member that decided (``name:version``), and every member's outcome.

    ``outcomes`` are the same for every row of the batch (members score whole
    batches), in priority order, the fallback last.
    """

    decided_by: tuple[str, ...] = ()
    outcomes: tuple[Outcome, ...] = ()


class EnsembleModel(Model):
    """Speculative execution over member models; see the module docstring and docs/ensembles.md."""

    format_name = "ensemble"
    suffixes = ()

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes, columns: Sequence[Column] | None = None) -> None:
        super().__init__(descriptor, artifact, columns)
        self.document = parse_document(artifact, descriptor.data_type)
        self._decide = resolve(self.document.decider, self.document.params)  # parse_document checked it
        self.members: list[Member] = []
        try:
            for spec in self.document.members:
                self.members.append(Member(spec.priority, self._load_member(spec.descriptor, spec.label)))
        except BaseException:
            self.close()
            raise
        self.input_names = [c.name for c in self.columns]
        self.categorical = any(m.model.categorical for m in self.members)
        for member in reversed(self.members):  # the higher priority's example wins
            self.probe_values.update(member.model.probe_values)
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, 2 * len(self.members)), thread_name_prefix=f"ensemble-{descriptor.name}"
        )

    def _load_member(self, descriptor: ModelDescriptor, label: str) -> Model:
        from serving.formats import load_model

        try:
            return load_model(descriptor, columns=self.columns)
        except ServingError as exc:
            # The member's own error type (and so its reason), saying which member it was.
            raise type(exc)(f"ensemble {self.name!r} member {label}: {exc}") from exc

    @property
    def fallback(self) -> Model:
        """The member always computed in ``wallclock`` mode: the lowest priority."""
        return self.members[-1].model

    @cached_property
    def artifact_sha256(self) -> str:
        """The published document's SHA-256, also after a restore from state (where the document is re-encoded)."""
        return self.descriptor.metadata.get(PUBLISHED_SHA256) or sha256_hex(self.artifact)

    def model_inputs(self, features: np.ndarray) -> np.ndarray:
        """Every column, as given: each member picks its own inputs."""
        return features

    def rebound(self, columns: Sequence[Column]) -> None:
        """Check every member would read records with ``columns``; raises the first member's ModelSchemaError."""
        for member in self.members:
            member.model.rebound(columns)

    def score_batch(self, features: np.ndarray) -> EnsembleScores:
        """Score the batch with the members and decide each row; see the module docstring.

        Raises:
            InputShapeError: the matrix is not [N, len(columns)].
            ScoringError: for some row no member gave a valid answer (every outcome named).
        """
        import time

        features = np.asarray(features)
        features = features if features.dtype == object else features.astype(np.float64, copy=False)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise InputShapeError(
                f"model {self.name}:{self.version} takes [rows, {self.n_features}] features, got {features.shape}"
            )
        if features.shape[0] == 0:
            return EnsembleScores(np.empty(0), None, (), 0)
        started = time.perf_counter_ns()
        run = run_declared if self.document.mode == "declared" else run_wallclock
        outcomes = run(self.members, features, self.document.budget_ms, self._pool)
        by_name = {o.name: o for o in outcomes}
        chosen: list[Outcome] = []  # per row, the deciding member's outcome
        for i in range(len(features)):
            decision = self._decide([_response(o, i) for o in outcomes])
            if decision is None:
                told = "; ".join(f"{o.label} {o.status}" + (f" ({o.detail})" if o.detail else "") for o in outcomes)
                raise ScoringError(f"ensemble {self.name}:{self.version}: no member answered row {i}: {told}")
            chosen.append(by_name[decision.member])
        scores = np.asarray([o.scores.scores[i] for i, o in enumerate(chosen)], dtype=np.float64)
        probabilities, labels = _probabilities(chosen, outcomes)
        return EnsembleScores(
            scores=scores,
            probabilities=probabilities,
            labels=labels,
            duration_ns=time.perf_counter_ns() - started,
            decided_by=tuple(o.label for o in chosen),
            outcomes=tuple(outcomes),
        )

    def _predict(self, inputs: np.ndarray) -> RawPrediction:  # pragma: no cover - score_batch is overridden
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The ensemble with every member as its own ``to_bytes()`` (a remote one with its server's metadata)."""
        members = [
            {"priority": m.priority, "descriptor": {"protobuf_base64": encode(m.model.to_bytes())}}
            for m in self.members
        ]
        state = self.document.to_json(members)
        descriptor = ModelDescriptor()
        descriptor.CopyFrom(self.descriptor)
        descriptor.metadata[PUBLISHED_SHA256] = self.artifact_sha256
        descriptor.data = state
        descriptor.sha256 = sha256_hex(state)
        return descriptor.SerializeToString()

    def close(self) -> None:
        """Close every member; calls still running in the background are dropped."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for member in getattr(self, "members", []):
            member.model.close()


def _response(outcome: Outcome, row: int) -> Response:
    """A member's answer for one row, as the deciders see it."""
    base = {"member": outcome.name, "version": outcome.version, "priority": outcome.priority}
    scores = outcome.scores
    if scores is None:
        return Response(**base, status=outcome.status, latency_us=outcome.latency_us)
    probabilities = None if scores.probabilities is None else tuple(float(p) for p in scores.probabilities[row])
    label = ""
    if probabilities and len(scores.labels) == len(probabilities):
        label = scores.labels[int(np.argmax(probabilities))]  # the result rule's winner (first on ties)
    return Response(
        **base,
        status=outcome.status,
        score=float(scores.scores[row]),
        label=label,
        probabilities=probabilities,
        latency_us=outcome.latency_us,
    )


def _probabilities(chosen: list[Outcome], outcomes: list[Outcome]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Each row's class probabilities from its deciding member, over every member's labels (priority order).

    A class the deciding member does not know has probability 0. None when
    some row was decided by a member without probabilities (a regressor).
    """
    if any(o.scores is None or o.scores.probabilities is None for o in chosen):
        return None, ()
    labels: list[str] = []
    for outcome in outcomes:
        if outcome.scores is not None and outcome.scores.probabilities is not None:
            labels.extend(label for label in outcome.scores.labels if label not in labels)
    column = {label: j for j, label in enumerate(labels)}
    matrix = np.zeros((len(chosen), len(labels)), dtype=np.float64)
    for i, outcome in enumerate(chosen):
        for label, p in zip(outcome.scores.labels, outcome.scores.probabilities[i]):
            matrix[i, column[label]] = p
    return matrix, tuple(labels)
