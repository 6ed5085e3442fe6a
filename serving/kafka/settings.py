"""Every Kafka setting in one typed object, read from flags, environment and a file.

Precedence, highest first: explicit values (CLI flags), ``MODELSERVING_KAFKA_*``
environment variables, the TOML config file (``--kafka-config`` or
``$MODELSERVING_KAFKA_CONFIG``), defaults. Secrets are ``SecretStr``: they
print as ``**********`` and are never logged.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.errors import ConfigError
from serving.settings import config_error, environment

CONFIG_ENV = "MODELSERVING_KAFKA_CONFIG"


class Topics(BaseModel, frozen=True):
    """Topic names; data and models are inputs, the rest outputs."""

    model_config = ConfigDict(hide_input_in_errors=True)

    data: str = "wine-data"
    models: str = "models"
    #: Data types' schemas, compacted, keyed by data type (``publish schema``).
    data_types: str = "data-types"
    results: str = "serving-results"
    stats: str = "model-stats"
    dead_letters: str = "dead-letters"
    model_events: str = "model-events"
    #: ModelControl messages (``modelserving control``), keyed by data type: input.
    control: str = "model-control"
    #: Champion-versus-challenger Comparison per record scored by both (shadows, canary): output.
    comparisons: str = "model-comparisons"
    #: A decoy's ArchivedRecord per input: output.
    archive: str = "decoy-archive"

    def all(self) -> dict[str, str]:
        """Role -> topic name."""
        return self.model_dump()

    @classmethod
    def prefixed(cls, prefix: str) -> Topics:
        """Fresh names for every role, ``<prefix>-<role>`` (a run of the bench or the fault campaign)."""
        return cls(**{role: f"{prefix}-{role.replace('_', '-')}" for role in cls().all()})


class KafkaSettings(BaseSettings):
    """Connection, security, consumer group and topic settings.

    ``extra`` passes any other client property through unchanged (Java
    property names, e.g. ``{"ssl.endpoint.identification.algorithm": ""}``).
    """

    model_config = SettingsConfigDict(
        env_prefix="MODELSERVING_KAFKA_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        # A misspelt key's error must not print its value: it may be the password.
        hide_input_in_errors=True,
    )

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_truststore_location: Path | None = None
    ssl_truststore_password: SecretStr | None = None
    group_id: str = "modelserving"
    topics: Topics = Topics()
    partitions: int = Field(2, ge=1)
    transactional_id_prefix: str = "modelserving"
    #: Below the broker's transaction.max.timeout.ms (15 min); above checkpoint + restart time.
    transaction_timeout_ms: int = Field(300_000, ge=1_000)
    #: Topics named this + a data type (``data.iris``) carry that data type, in any wire format;
    #: the jobs read them all beside ``topics.data``, new ones too, without a restart.
    data_topic_prefix: str = "data."
    #: A Confluent Schema Registry that Avro records' schema ids may name (besides the data-types topic).
    schema_registry_url: str | None = None
    #: Inline models above this many bytes are published by reference instead.
    inline_model_max_bytes: int = Field(900_000, ge=1)
    #: The largest message the job writes and the topics it creates accept: the sinks'
    #: ``max.request.size`` and every topic's ``max.message.bytes``, set together. The local
    #: broker's ``message.max.bytes`` is the same. Dead letters are cut to fit under it.
    max_message_bytes: int = Field(2 * 1024 * 1024, ge=64 * 1024)
    extra: dict[str, str] = {}

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> KafkaSettings:
        """Settings from file < environment < ``overrides`` (None values are ignored).

        Raises:
            ConfigError: the file cannot be read or a value is invalid.
        """
        path = config_file or environment().kafka_config
        file_values: dict[str, Any] = {}
        if path is not None:
            try:
                file_values = tomllib.loads(Path(path).read_text()).get("kafka", {})
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read Kafka config {path}: {exc}") from exc
        explicit = {k: v for k, v in overrides.items() if v is not None}
        try:
            from_env = cls()  # environment over defaults
            env_values = from_env.model_dump(exclude_unset=True)
            merged = _merge(_merge(file_values, env_values), explicit)
            return cls.model_validate(merged) if merged else from_env
        except ValidationError as exc:
            raise config_error(exc, "Kafka setting") from exc

    def java_properties(self) -> dict[str, str]:
        """Client properties for Java clients (the Flink connector)."""
        props = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            props["sasl.mechanism"] = self.sasl_mechanism
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            password = self.sasl_password.get_secret_value() if self.sasl_password else ""
            props["sasl.jaas.config"] = (
                f'{module} required username="{self.sasl_username or ""}" password="{password}";'
            )
        if self.ssl_truststore_location:
            props["ssl.truststore.location"] = str(self.ssl_truststore_location)
        if self.ssl_truststore_password:
            props["ssl.truststore.password"] = self.ssl_truststore_password.get_secret_value()
        props.update(self.extra)
        return props

    def librdkafka_config(self) -> dict[str, str]:
        """Configuration for confluent-kafka (librdkafka) clients."""
        conf = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol.lower()}
        if self.sasl_mechanism:
            conf["sasl.mechanisms"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password.get_secret_value() if self.sasl_password else ""
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = str(self.ssl_ca_location)
        return conf

    def to_environment(self) -> dict[str, str]:
        """``MODELSERVING_KAFKA_*`` variables for every non-secret setting, for a child job to read.

        Passwords and ``extra`` are left out: the child takes them from the same
        environment or ``--kafka-config`` file as the command that starts it.
        """
        env = {
            "MODELSERVING_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "MODELSERVING_KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "MODELSERVING_KAFKA_GROUP_ID": self.group_id,
            "MODELSERVING_KAFKA_TRANSACTIONAL_ID_PREFIX": self.transactional_id_prefix,
            "MODELSERVING_KAFKA_TRANSACTION_TIMEOUT_MS": str(self.transaction_timeout_ms),
            "MODELSERVING_KAFKA_MAX_MESSAGE_BYTES": str(self.max_message_bytes),
            "MODELSERVING_KAFKA_DATA_TOPIC_PREFIX": self.data_topic_prefix,
            "MODELSERVING_KAFKA_TOPICS": self.topics.model_dump_json(),
        }
        optional = {
            "MODELSERVING_KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "MODELSERVING_KAFKA_SASL_USERNAME": self.sasl_username,
            "MODELSERVING_KAFKA_SSL_TRUSTSTORE_LOCATION": self.ssl_truststore_location,
            "MODELSERVING_KAFKA_SCHEMA_REGISTRY_URL": self.schema_registry_url,
        }
        env.update({k: str(v) for k, v in optional.items() if v})
        return env

    def describe(self) -> str:
        """One loggable line: servers, protocol, group; never a secret."""
        return f"bootstrap={self.bootstrap_servers} protocol={self.security_protocol} group={self.group_id}"


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``; nested tables (``topics``, ``extra``) merge key by key, not wholesale."""
    merged = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
