"""Typed errors for the serving domain.

Every failure a user can cause (a bad model, a bad record, a bad flag) raises a
subclass of :class:`ServingError` whose message is one readable sentence. The
edges (CLI, Flink functions) catch ``ServingError`` and turn it into an exit
code, a dead letter or a rejected-model event; anything else is a bug.
"""


class ServingError(Exception):
    """Root of every error this project raises on purpose."""

    #: Short machine-readable reason, used in dead letters and model events.
    reason = "error"


class ConfigError(ServingError):
    """A setting or command-line flag is invalid."""

    reason = "bad config"


class ModelLoadError(ServingError):
    """A model could not be built from its descriptor."""

    reason = "model load failed"


class UnknownModelType(ModelLoadError):
    """The descriptor names a model type no factory is registered for."""

    reason = "unknown model type"


class CorruptModelError(ModelLoadError):
    """The artifact bytes are empty, truncated or not of the declared type."""

    reason = "corrupt model"


class ModelLocationError(ModelLoadError):
    """A by-reference model is missing or lies outside the configured roots."""

    reason = "bad model location"


class ChecksumMismatch(ModelLoadError):
    """The artifact's SHA-256 differs from the one in the descriptor."""

    reason = "checksum mismatch"


class ModelSchemaError(ModelLoadError):
    """The model needs inputs the record does not provide (e.g. PMML fields)."""

    reason = "model schema mismatch"


class RemoteLocationError(ModelLocationError):
    """A remote model's URL is not http(s), or its host is not on the allow-list of model servers."""

    reason = "remote location not allowed"


class RemoteModelNotReady(ModelLoadError):
    """A model server is unreachable, or does not report the remote model ready, when the model is admitted."""

    reason = "remote model not ready"


class ModelValidationError(ModelLoadError):
    """The model loaded but failed its probe record."""

    reason = "model failed probe"


class UnreliableEvaluatorError(ModelLoadError):
    """The evaluator's answer contradicts itself (pypmml's lost class probabilities): refused, never served.

    Raised at load by a self-check on a probe row, or while scoring when a later row shows it.
    """

    reason = "unreliable evaluator"


class ModelMessageTooLarge(ModelLoadError):
    """A model message over the job's size cap, refused before parsing."""

    reason = "model message too large"


class InputError(ServingError):
    """Input data is unusable."""

    reason = "bad input"


class InputShapeError(InputError):
    """Feature rows have the wrong width for the model."""

    reason = "wrong input width"


class EmptyInputError(InputError):
    """An input file or message holds nothing."""

    reason = "empty input"


class RecordDecodeError(InputError):
    """Record bytes are not a valid record (parse or meaning)."""

    reason = "undecodable record"


class EmptyRecordError(RecordDecodeError):
    """A record with no bytes at all: a Kafka tombstone (null value) or an empty message."""

    reason = "empty record"


class RecordTooLarge(RecordDecodeError):
    """A record over the job's size cap, refused before parsing."""

    reason = "record too large"


class MissingFeatureError(RecordDecodeError):
    """A record lacks a feature its data type requires."""

    reason = "missing feature"


class TimestampRangeError(InputError):
    """A record ``ts`` or a model ``created_at`` lies outside the accepted range."""

    reason = "ts out of range"


class InputRangeError(InputError):
    """A feature value does not fit the model's input type (e.g. 1e308 into float32)."""

    reason = "input out of range"


class ScoringError(ServingError):
    """A loaded model failed while scoring."""

    reason = "scoring failed"


class RemoteScoringError(ScoringError):
    """A model server answered a scoring request with an error, or with a reply that is not a prediction."""

    reason = "remote error"


class RemoteTimeout(RemoteScoringError):
    """A model server did not answer a scoring request within the model's ``timeout_ms``."""

    reason = "remote timeout"


class RemoteUnavailable(RemoteScoringError):
    """A model server refused the connection, dropped it, or answered 503, also when asked again."""

    reason = "remote unavailable"


class RemoteCircuitOpen(RemoteUnavailable):
    """The model server failed too often in a row: it is not called until the breaker's next probe."""

    reason = "remote circuit open"
