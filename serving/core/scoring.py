"""Scoring buffered records and keeping stats: the work both Flink jobs share. Flink-free.

A Flink function keeps records and models in state, and when the watermark
(or the idle-flush timer) says records are due it decodes them with their
data type's schema (:func:`decode_entries`) and calls :func:`score_due`
with them and the model timeline of each data type. What comes back are
plain protobuf messages for the main output and the side outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.clock import now_ms
from serving.codecs.outputs import dead_letter, results_for
from serving.core.entries import Entry
from serving.core.member_stats import MemberServingStats, tally
from serving.core.model import Model
from serving.core.remote_batches import is_asynchronous, remote_batch
from serving.core.timeline import assign
from serving.errors import InputError, InputRangeError, ServingError
from serving.pb.comparison_pb2 import ArchivedRecord, Comparison
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.base import Record, check_timestamp
from serving.records.features import feature_matrix
from serving.records.schema import DataTypeSchema, SchemaRegistry
from serving.records.wire import NOWHERE, Coordinates, DataRecord, UnknownDataType, decode
from serving.rollout.rendezvous import Challengers, challenge
from serving.settings import ServingOptions

NO_MODEL = "no model"
UNKNOWN = UnknownDataType.reason


@dataclass
class Scored:
    """The outcome of scoring due records."""

    results: list[ServingResult] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: (model, records scored, total duration ns, an ensemble's member counters or ()), one per batch call
    batches: list[tuple[Model, int, int, tuple[MemberServingStats, ...]]] = field(default_factory=list)
    #: records kept for a model still to come (hold mode, no model yet)
    held: list[Record] = field(default_factory=list)
    #: batches for remote models, scored by the async operator: (data type, the records' times, RemoteBatch bytes)
    remote: list[tuple[str, list[int], bytes]] = field(default_factory=list)
    #: champion-versus-challenger comparisons, one per record per shadow and per canary record
    comparisons: list[Comparison] = field(default_factory=list)
    #: a decoy's copies of the records scored (:mod:`serving.rollout.rendezvous`)
    archive: list[ArchivedRecord] = field(default_factory=list)


class Locations:
    """Where records were read, for records that cannot say it themselves.

    A decoded ``DataRecord`` carries its coordinates (``where``); a
    ``WineRecord`` is a protobuf message and has no room for them, so they are
    noted here, by the record object, while it is being scored. The record is
    kept with them: its ``id()`` cannot be reused while it is noted.
    """

    def __init__(self) -> None:
        self._by_record: dict[int, tuple[Record, Coordinates]] = {}

    def note(self, record: Record, where: Coordinates) -> None:
        """Remember that ``record`` was read at ``where`` (unknown coordinates are not kept)."""
        if where.topic or where.offset >= 0:
            self._by_record[id(record)] = (record, where)

    def of(self, record: Record) -> Coordinates:
        """Where ``record`` was read: as noted, else its own ``where``, else :data:`NOWHERE`."""
        noted = self._by_record.get(id(record))
        if noted is not None and noted[0] is record:
            return noted[1]
        return getattr(record, "where", NOWHERE)


def decode_data(
    payload: bytes,
    options: ServingOptions,
    data_type: str,
    registry: SchemaRegistry,
    where: Coordinates = NOWHERE,
) -> Record | DeadLetter | None:
    """A valid record, a dead letter, or None when ``data_type`` has no schema yet.

    The dead letter keeps the reason and the original bytes (their prefix,
    when large). None: the caller keeps the bytes and tries again when due.
    Valid means: within ``options.max_record_bytes``, decodable in its wire
    format and true to its schema (:func:`serving.records.wire.decode`), with
    a ``ts`` in range (:func:`serving.records.base.check_timestamp`).
    ``data_type`` is what the JVM routing read ("" when it could not).
    """
    if registry.get(data_type) is None and data_type:
        return None
    try:
        record = decode(payload, data_type, registry, where, max_bytes=options.max_record_bytes)
        check_timestamp(record.ts, options.max_future_skew_ms, f"record {record.id!r} ts")
    except InputError as exc:
        return dead_letter(
            "data",
            exc.reason,
            str(exc),
            payload,
            data_type=data_type,
            record_id=where.record_id() if where.topic else "",  # where to find the bad message
            max_payload_bytes=options.dead_letter_max_payload_bytes,
        )
    return record


def decode_entries(
    entries: Iterable[Entry],
    registry: SchemaRegistry,
    options: ServingOptions,
    records_up_to: int,
    locations: Locations | None = None,
) -> tuple[list[Record], list[DeadLetter], list[Entry]]:
    """Due entries as records, dead letters, and entries that still wait for their data type's schema.

    An entry whose data type has no schema waits up to ``options.max_hold_ms``
    past its time; then it is dead-lettered as ``unknown data type``.
    ``locations``, when given, learns where each ``WineRecord`` was read (the
    entry's coordinates; a checked wine record kept in the short format has none).
    """
    records: list[Record] = []
    letters: list[DeadLetter] = []
    waiting: list[Entry] = []
    for entry in entries:
        if entry.wine is not None:  # checked when it came, parsed when read back: the wine fast path
            records.append(entry.wine)
            if locations is not None:
                locations.note(entry.wine, entry.where)
            continue
        decoded = decode_data(entry.payload, options, entry.data_type, registry, entry.where)
        if decoded is None:
            if options.max_hold_ms and entry.ts <= records_up_to - options.max_hold_ms:
                letters.append(
                    dead_letter(
                        "data",
                        UNKNOWN,
                        f"no schema for data type {entry.data_type!r} within {options.max_hold_ms} ms",
                        entry.payload,
                        data_type=entry.data_type,
                        record_id=entry.where.record_id() if entry.where.topic else "",
                        max_payload_bytes=options.dead_letter_max_payload_bytes,
                    )
                )
            else:
                waiting.append(entry)
        elif isinstance(decoded, DeadLetter):
            letters.append(decoded)
        else:
            records.append(decoded)
            if locations is not None and not isinstance(decoded, DataRecord):  # a DataRecord knows its ``where``
                locations.note(decoded, entry.where)
    return records, letters, waiting


def score_due(
    records: Sequence[Record],
    timelines: Mapping[str, Sequence[tuple[int, Model]]],
    schemas: Mapping[str, DataTypeSchema],
    *,
    hold: bool,
    max_held: int,
    end_of_input: bool = False,
    batch_size: int = 0,
    records_up_to: int = 2**63 - 1,
    max_hold_ms: int = 0,
    max_payload_bytes: int = ServingOptions().dead_letter_max_payload_bytes,
    asynchronous: bool = False,
    challengers: Mapping[str, Challengers] | None = None,
    locations: Locations | None = None,
) -> Scored:
    """Score ``records`` by the event-time rule of :mod:`serving.core.timeline`.

    ``schemas`` holds the schema of every data type among ``records`` (their
    feature matrix is built with it).

    Records whose data type has no model yet are held (``hold``, up to
    ``max_held``; the oldest overflow is dead-lettered) or dead-lettered as
    ``no model``. A held record whose ``ts + max_hold_ms`` the flush bound
    ``records_up_to`` has passed is dead-lettered too (``max_hold_ms`` 0: no
    time bound). Each model's records go to ``score_batch`` in batches of at
    most ``batch_size`` (0: all at once); a row whose values do not fit the
    model's input type is dead-lettered, the rest of its batch is scored. At
    ``end_of_input`` nothing more can arrive, so held records are
    dead-lettered too: nothing is lost silently. ``asynchronous``: a remote
    model's batches are not scored here but go to ``remote`` as
    ``RemoteBatch`` messages (:mod:`serving.core.remote_batches`).

    ``challengers`` (by data type): after the champion scored a batch, its
    shadows and canary score it too and a decoy archives it
    (:func:`serving.rollout.rendezvous.challenge`): canary records get the
    canary's result, and ``comparisons`` and ``archive`` fill. Only batches the
    champion scored here are challenged: not a remote champion's batches sent
    to the async operator, nor rows dead-lettered for the champion. Without
    challengers the results are the champion's alone. ``locations``: where
    records that cannot carry their coordinates were read (:class:`Locations`),
    for the results' provenance.
    """
    out = Scored()
    by_type: dict[str, list[Record]] = {}
    for record in records:
        by_type.setdefault(record.data_type, []).append(record)
    for data_type, group in by_type.items():
        timeline = timelines.get(data_type, ())
        assignment = assign(group, timeline, hold=hold)
        rivals = challengers.get(data_type) if challengers is not None else None
        for model, run in assignment.runs:
            step = batch_size or len(run)
            for start in range(0, len(run), step):
                _score_batch(
                    model,
                    run[start : start + step],
                    schemas[data_type],
                    out,
                    max_payload_bytes,
                    asynchronous,
                    rivals,
                    locations,
                )
        unserved = assignment.unserved
        reason = f"{NO_MODEL} for data type {data_type!r}"
        if hold and not timeline and not end_of_input:
            expired = [r for r in unserved if max_hold_ms and r.ts <= records_up_to - max_hold_ms]
            waiting = [r for r in unserved if not (max_hold_ms and r.ts <= records_up_to - max_hold_ms)]
            overflow = max(0, len(waiting) - max_held)
            out.held.extend(waiting[overflow:])
            _no_model(expired, f"{reason} within {max_hold_ms} ms", out, max_payload_bytes)
            reason = f"{NO_MODEL}: hold buffer for {data_type!r} is full ({max_held} records)"
            unserved = waiting[:overflow]
        _no_model(unserved, reason, out, max_payload_bytes)
    return out


def _no_model(records: Sequence[Record], reason: str, out: Scored, max_payload_bytes: int) -> None:
    out.dead_letters.extend(
        dead_letter(
            "data",
            NO_MODEL,
            reason,
            r.SerializeToString(),
            data_type=r.data_type,
            record_id=r.id,
            max_payload_bytes=max_payload_bytes,
        )
        for r in records
    )


def _score_batch(
    model: Model,
    batch: list[Record],
    schema: DataTypeSchema,
    out: Scored,
    max_payload_bytes: int,
    asynchronous: bool = False,
    challengers: Challengers | None = None,
    locations: Locations | None = None,
) -> None:
    features = feature_matrix(batch, schema)
    unfit = model.unfit_rows(features)
    if unfit.any():
        for i in np.flatnonzero(unfit):
            inputs = model.model_inputs(features[i : i + 1])
            column = int(np.flatnonzero(~model.fits(inputs)[0])[0])
            problem = InputRangeError(
                f"{model.input_names[column]} = {inputs[0, column]:g} does not fit the {model.input_dtype} "
                f"input of model {model.name}:{model.version}"
            )
            out.dead_letters.append(_scoring_dead_letter(batch[i], problem, max_payload_bytes))
        keep = np.flatnonzero(~unfit)
        batch, features = [batch[i] for i in keep], features[keep]
        if not batch:
            return
    if asynchronous and is_asynchronous(model):
        request = remote_batch(model, batch, model.model_inputs(features), max_payload_bytes)
        out.remote.append((model.data_type, [r.ts for r in batch], request))
        return
    try:
        scores = model.score_batch(features)
    except ServingError as exc:
        out.dead_letters.extend(_scoring_dead_letter(r, exc, max_payload_bytes) for r in batch)
        return
    where = [locations.of(r) for r in batch] if locations is not None else None
    results = results_for(model, batch, scores, where)
    if challengers is not None and challengers.active:
        rendezvous = challenge(batch[0].data_type, model, batch, features, results, challengers, now_ms())
        results = rendezvous.results
        out.comparisons.extend(rendezvous.comparisons)
        out.archive.extend(rendezvous.archive)
    out.results.extend(results)
    out.batches.append((model, len(batch), scores.duration_ns, tally(scores, len(batch))))


def _scoring_dead_letter(record: Record, exc: ServingError, max_payload_bytes: int) -> DeadLetter:
    return dead_letter(
        "scoring",
        exc.reason,
        str(exc),
        record.SerializeToString(),
        data_type=record.data_type,
        record_id=record.id,
        max_payload_bytes=max_payload_bytes,
    )
