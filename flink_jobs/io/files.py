"""Local inputs and outputs: in-memory collections and files in, JSON lines out."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import json_format
from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.common.serialization import Encoder
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import (
    FileSink,
    FileSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)

from flink_jobs.tags import BYTES, KAFKA_RECORD
from serving.codecs.outputs import dead_letter_to_json, model_event_to_json, result_to_json
from serving.core.stats import ModelServingStats
from serving.pb.comparison_pb2 import ArchivedRecord, Comparison
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_control_pb2 import ModelControl
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.pb.serving_result_pb2 import ServingResult

#: The Kafka timestamp of a record that has none (no broker stamped it).
NO_TIMESTAMP = -(2**63)


#: Outputs written as the protobuf's own JSON mapping (field names as in the .proto; bytes in base64).
_AS_PROTO_JSON = {"comparisons": Comparison, "archive": ArchivedRecord, "control": ModelControl}


def to_json_line(output: str, payload: bytes) -> str:
    """A JSON line for one serialized message of ``output``."""
    payload = bytes(payload)
    if output in _AS_PROTO_JSON:
        message = _AS_PROTO_JSON[output].FromString(payload)
        return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True))
    if output == "results":
        return result_to_json(ServingResult.FromString(payload))
    if output == "dead-letters":
        return dead_letter_to_json(DeadLetter.FromString(payload))
    if output == "model-events":
        return model_event_to_json(ModelEvent.FromString(payload))
    message = ModelStats.FromString(payload)
    if message.HasField("pair"):  # an experiment's champion-versus-challenger aggregates
        pair = json_format.MessageToDict(message.pair, preserving_proto_field_name=True)
        return json.dumps({"pair": pair, "emitted_at": message.emitted_at})
    return json.dumps({**ModelServingStats.from_proto(message).to_dict(), "emitted_at": message.emitted_at})


class _JsonLines:
    """Map function: serialized message -> JSON line (picklable, unlike a lambda over state)."""

    def __init__(self, output: str) -> None:
        self.output = output

    def __call__(self, payload) -> str:
        return to_json_line(self.output, payload)


def json_file_sink(stream: DataStream, output: str, directory: Path) -> None:
    """Write ``stream`` as JSON lines into ``directory/output/``, committed on checkpoints."""
    sink = (
        FileSink.for_row_format(str(directory / output), Encoder.simple_string_encoder())
        .with_output_file_config(OutputFileConfig.builder().with_part_prefix(output).with_part_suffix(".jsonl").build())
        .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
        .build()
    )
    lines = (
        stream.map(_JsonLines(output), output_type=Types.STRING()).uid(f"{output}-to-json").name(f"{output} as JSON")
    )
    lines.sink_to(sink).uid(f"sink-{output}").name(f"{output} file sink")


def read_json_lines(directory: Path, output: str) -> list[dict]:
    """Every committed JSON line a file sink wrote for ``output`` (in-progress files are hidden)."""
    rows = []
    for part in sorted((directory / output).rglob("*.jsonl")):
        if not part.name.startswith("."):
            rows.extend(json.loads(line) for line in part.read_text().splitlines() if line)
    return rows


#: ``from_collection`` cannot take bare ``bytes`` elements (a ClassCastException in
#: PythonBridgeUtils), so collections travel as one-field rows and are unwrapped.
_PAYLOAD_ROW = Types.ROW_NAMED(["payload"], [BYTES])


class _Unwrap:
    def __call__(self, row) -> bytes:
        return row.payload


def bytes_collection(env: StreamExecutionEnvironment, items: Sequence[bytes], name: str) -> DataStream:
    """A bounded stream of ``items`` as raw bytes, in order."""
    rows = env.from_collection([Row(bytes(i)) for i in items], type_info=_PAYLOAD_ROW).uid(f"{name}-source")
    return rows.map(_Unwrap(), output_type=BYTES).uid(f"{name}-bytes").name(f"{name} bytes")


class CollectionIO:
    """In-memory inputs (bounded) and JSON-lines file outputs: local runs and tests.

    ``data`` items are record bytes, or ``(bytes, timestamp)`` pairs when the
    records carry no event time of their own (the timestamp plays Kafka's);
    each record's offset is its position, which is its id when its schema
    names no id field. ``schemas`` are DataTypeSchema messages that arrive
    while the job runs (known ones belong in ``ServingOptions.startup_schemas``),
    ``controls`` ModelControl messages.
    """

    def __init__(
        self,
        data: Sequence[bytes | tuple[bytes, int]],
        models: Sequence[bytes],
        out_dir: Path,
        schemas: Sequence[bytes] = (),
        controls: Sequence[bytes] = (),
    ) -> None:
        self.data, self.models, self.out_dir = list(data), list(models), Path(out_dir)
        self.schemas, self.controls = list(schemas), list(controls)
        self.topic_prefix = ""

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The data records, in order, as ``KAFKA_RECORD`` rows of topic "" and offset = position."""
        rows = []
        for offset, item in enumerate(self.data):
            payload, timestamp = item if isinstance(item, tuple) else (item, NO_TIMESTAMP)
            rows.append(Row("", 0, offset, timestamp, bytes(payload)))
        return env.from_collection(rows, type_info=KAFKA_RECORD).uid("data-source")

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The model messages, in order."""
        return bytes_collection(env, self.models, "model")

    def schema_source(self, env: StreamExecutionEnvironment) -> DataStream | None:
        """The schema messages, in order (None when there are none)."""
        return bytes_collection(env, self.schemas, "schema") if self.schemas else None

    def control_source(self, env: StreamExecutionEnvironment) -> DataStream | None:
        """The control messages, in order (None when there are none)."""
        return bytes_collection(env, self.controls, "control") if self.controls else None

    def sink(self, output: str, stream: DataStream) -> None:
        """JSON lines under ``out_dir/output/``."""
        json_file_sink(stream, output, self.out_dir)


def write_base64_lines(path: Path, messages: Sequence[bytes]) -> None:
    """Write messages for ``FileIO``: one base64 line each, made visible atomically."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text("".join(base64.b64encode(m).decode() + "\n" for m in messages))
    tmp.rename(path)


class _FromBase64:
    def __call__(self, line: str) -> Row:
        return Row("", 0, -1, NO_TIMESTAMP, base64.b64decode(line))


class _Base64Bytes:
    def __call__(self, line: str) -> bytes:
        return base64.b64decode(line)


class FileIO(CollectionIO):
    """Inputs from files of base64 protobufs, one message per line; JSON-lines outputs.

    ``data_path`` and ``model_path`` may be files or directories. With
    ``monitor_ms`` the directories are watched for new files (the job never
    ends, like a Kafka job); without it they are read once.
    """

    def __init__(self, data_path: Path, model_path: Path, out_dir: Path, monitor_ms: int = 0) -> None:
        super().__init__([], [], out_dir)
        self.data_path, self.model_path = Path(data_path), Path(model_path)
        self.monitor_ms = monitor_ms

    def _lines(self, env: StreamExecutionEnvironment, path: Path, name: str) -> DataStream:
        builder = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path.resolve()))
        if self.monitor_ms:
            builder = builder.monitor_continuously(Duration.of_millis(self.monitor_ms))
        source = builder.build()
        lines = env.from_source(source, WatermarkStrategy.no_watermarks(), f"{name} files").uid(f"{name}-source")
        return lines

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Data records from ``data_path``, as ``KAFKA_RECORD`` rows (topic "", offset -1)."""
        lines = self._lines(env, self.data_path, "data")
        return lines.map(_FromBase64(), output_type=KAFKA_RECORD).uid("data-from-base64").name("data records")

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Model messages from ``model_path``."""
        lines = self._lines(env, self.model_path, "model")
        return lines.map(_Base64Bytes(), output_type=BYTES).uid("model-from-base64").name("model bytes")
