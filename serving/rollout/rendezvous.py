"""Challengers beside the champion: shadows and a canary score the champion's records, compared; a decoy archives them.

Flink-free. :func:`serving.core.scoring.score_due` calls :func:`challenge`
after the champion scored a batch of one data type, with that data type's
:class:`Challengers`. The contract of :func:`challenge`:

* **canary**: a record with ``in_canary(experiment_name(data_type,
  canary.version), record.id, canary_weight_bp)`` (:mod:`serving.rollout.canary`)
  gets the canary's result instead of the champion's: the canary's model
  name, version, score, probabilities, labels and artifact SHA-256, role
  ``canary``, the record's coordinates as in the champion's result. Each such
  record also gets one ``Comparison`` champion versus canary (role ``canary``).
  When the canary fails on a record (a row that does not fit its input type,
  an error from ``score_batch``, a non-finite score) the champion's result
  stands and the comparison's challenger side carries the error: nothing is lost.
* **shadows**: each shadow scores every record; one ``Comparison`` per record
  per shadow (role ``shadow``); a shadow's results never replace anything,
  and its failures only show in its comparisons.
* **decoy**: one ``ArchivedRecord`` per record: its bytes as decoded
  (``record.SerializeToString()``), id, data type and event time, its
  coordinates (as in the champion's result), the champion's version, the
  challengers' versions (shadows in order, then the canary) and ``archived_at``.
* Every result not replaced keeps role ``champion``. Each side's
  ``duration_ns`` is its model's batch duration split evenly over the records
  of that batch (as :func:`serving.codecs.outputs.results_for` does): the
  champion's is the one in its result.
* Comparisons come canary first, then shadow by shadow, each in record order.

A challenger never costs the champion its results: whatever a challenger
raises while scoring (not only a ``ServingError``) becomes the error of its
sides. Challengers score with ``score_batch`` in the calling thread; a remote
champion scored by the async operator (``score_due(asynchronous=True)``) is
not challenged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.codecs.outputs import results_for
from serving.core.model import BatchScores, Model, Score
from serving.errors import ConfigError, InputRangeError
from serving.pb.comparison_pb2 import ArchivedRecord, Comparison, Side
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.base import Record
from serving.rollout.canary import experiment_name, in_canary
from serving.rollout.compare import DEFAULT_TOLERANCE, compare, side
from serving.rollout.control import CANARY, MAX_WEIGHT_BP, SHADOW


@dataclass(frozen=True)
class Challengers:
    """The challengers of one data type's champion.

    Attributes:
        shadows: Models that score every record, compared, never served.
        canary: A model that serves ``canary_weight_bp`` basis points of the records (None: no canary).
        canary_weight_bp: 0..10000; 0 serves none, 10000 every record.
        decoy: Whether every record is archived (``ArchivedRecord``).
        tolerance: How far apart two regressors' scores may be and still agree (:func:`compare`).

    Raises:
        ConfigError: a weight outside 0..10000, or a negative or non-finite tolerance.
    """

    shadows: tuple[Model, ...] = ()
    canary: Model | None = None
    canary_weight_bp: int = 0
    decoy: bool = False
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if not 0 <= self.canary_weight_bp <= MAX_WEIGHT_BP:
            raise ConfigError(f"canary weight must be 0..{MAX_WEIGHT_BP} basis points, got {self.canary_weight_bp}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0.0):
            raise ConfigError(f"comparison tolerance must be a finite number >= 0, got {self.tolerance}")

    @property
    def active(self) -> bool:
        """Whether :func:`challenge` has anything to do: a shadow, a canary or a decoy."""
        return bool(self.shadows) or self.canary is not None or self.decoy

    @property
    def versions(self) -> tuple[str, ...]:
        """The challengers' versions: the shadows' in order, then the canary's."""
        canary = (self.canary.version,) if self.canary is not None else ()
        return tuple(s.version for s in self.shadows) + canary


@dataclass
class Challenge:
    """What :func:`challenge` gives back: the results to emit, the comparisons, the archived records."""

    results: list[ServingResult]
    comparisons: list[Comparison] = field(default_factory=list)
    archive: list[ArchivedRecord] = field(default_factory=list)


@dataclass
class _Answers:
    """A challenger's answer per row given: a score, or the error it failed with; and its batch, if any."""

    per_row: list[Score | BaseException]
    scores: BatchScores | None = None
    scored: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.intp))


def challenge(
    data_type: str,
    champion: Model,
    records: Sequence[Record],
    features: np.ndarray,
    results: Sequence[ServingResult],
    challengers: Challengers,
    now_ms: int,
) -> Challenge:
    """Score ``records`` with ``challengers`` beside ``champion``; the contract is the module doc.

    ``features`` is the records' feature matrix (what the champion scored) and
    ``results`` the champion's results, one per record in order; neither is
    changed (the results returned are a new list, sharing the champion's
    results that stand). ``now_ms``: the archive time, epoch milliseconds.
    """
    out = Challenge(list(results))
    if not records:
        return out
    champion_sides = [_champion_side(result) for result in results]
    canary = challengers.canary
    if canary is not None and challengers.canary_weight_bp > 0:
        experiment = experiment_name(data_type, canary.version)
        rows = [i for i, r in enumerate(records) if in_canary(experiment, r.id, challengers.canary_weight_bp)]
        if rows:
            _serve_canary(out, data_type, canary, records, features, rows, champion_sides, challengers.tolerance)
    for shadow in challengers.shadows:
        answers = _answers(shadow, features)
        out.comparisons.extend(
            _comparison(
                records[i], data_type, champion_sides[i], shadow, answers.per_row[i], SHADOW, challengers.tolerance
            )
            for i in range(len(records))
        )
    if challengers.decoy:
        versions = challengers.versions
        out.archive.extend(_archived(r, result, champion, versions, now_ms) for r, result in zip(records, results))
    return out


def _serve_canary(
    out: Challenge,
    data_type: str,
    canary: Model,
    records: Sequence[Record],
    features: np.ndarray,
    rows: list[int],
    champion_sides: list[Side],
    tolerance: float,
) -> None:
    """Score the canary's ``rows``; each gets a comparison, and the canary's result where the canary scored."""
    answers = _answers(canary, features[rows])
    served: dict[int, ServingResult] = {}
    if answers.scores is not None:
        scored_rows = [rows[j] for j in answers.scored]
        replacements = results_for(canary, [records[i] for i in scored_rows], answers.scores)
        served = dict(zip(scored_rows, replacements))
    for j, i in enumerate(rows):
        comparison = _comparison(
            records[i], data_type, champion_sides[i], canary, answers.per_row[j], CANARY, tolerance
        )
        out.comparisons.append(comparison)
        if i in served and not comparison.challenger.error:  # a failed or non-finite canary: the champion stands
            result, champion_result = served[i], out.results[i]
            result.role = CANARY
            result.source_topic = champion_result.source_topic
            result.source_partition = champion_result.source_partition
            result.source_offset = champion_result.source_offset
            out.results[i] = result


def _answers(model: Model, features: np.ndarray) -> _Answers:
    """``model``'s answer for each row of ``features``: a row that does not fit its input type fails alone."""
    try:
        unfit = np.asarray(model.unfit_rows(features), dtype=bool)
    except Exception as exc:  # a challenger's failure is its own: never the champion's
        return _Answers([exc] * len(features))
    misfit = InputRangeError(
        f"a value does not fit the {model.input_dtype} input of model {model.name}:{model.version}"
    )
    per_row: list[Score | BaseException] = [misfit] * len(features)
    keep = np.flatnonzero(~unfit)
    if not len(keep):
        return _Answers(per_row)
    try:
        scores = model.score_batch(features[keep])
    except Exception as exc:  # as above
        for i in keep:
            per_row[i] = exc
        return _Answers(per_row)
    for j, i in enumerate(keep):
        per_row[i] = scores.row(j)
    return _Answers(per_row, scores, keep)


def _side(model: Model, answer: Score | BaseException) -> Side:
    if isinstance(answer, BaseException):
        return side(model.name, model.version, error=answer)
    return side(model.name, model.version, answer)


def _comparison(
    record: Record,
    data_type: str,
    champion_side: Side,
    model: Model,
    answer: Score | BaseException,
    role: str,
    tolerance: float,
) -> Comparison:
    return compare(record.id, data_type, champion_side, _side(model, answer), role, record.ts, tolerance)


def _champion_side(result: ServingResult) -> Side:
    """The champion's side of a record, from its result (score, winning label, its share of the batch time)."""
    probabilities = tuple(result.probabilities) if result.probabilities else None
    score = Score(result.score, probabilities, tuple(result.labels), result.duration_ns)
    return side(result.model_name, result.model_version, score, error=result.error)


def _archived(
    record: Record, result: ServingResult, champion: Model, versions: tuple[str, ...], now_ms: int
) -> ArchivedRecord:
    return ArchivedRecord(
        record_id=record.id,
        data_type=record.data_type,
        record_ts=record.ts,
        payload=record.SerializeToString(),
        source_topic=result.source_topic,
        source_partition=result.source_partition,
        source_offset=result.source_offset,
        champion_version=champion.version,
        challenger_versions=versions,
        archived_at=now_ms,
    )
