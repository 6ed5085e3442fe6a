"""How the bench publishes a configuration's model: a shipped file, or its own trained model (ONNX or remote)."""

from __future__ import annotations

from serving.bench.configs import BENCH_VERSION, BenchConfig, BenchError
from serving.bench.sklearn_model import SkModel, remote_model_descriptor
from serving.kafka.settings import KafkaSettings
from serving.records import wine


def publish_model(
    settings: KafkaSettings,
    config: BenchConfig,
    version: str = BENCH_VERSION,
    data_type: str = wine.DATA_TYPE,
    sk: SkModel | None = None,
    server_url: str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Publish ``config``'s model as ``version`` with ``created_at`` now; returns ``created_at``.

    ``metadata`` goes into the descriptor (a challenger's role) of a model
    published from a file.

    A ``trained`` configuration publishes ``sk``: its ONNX file (``onnx``), or
    an ``oip`` descriptor naming it on the MLServer at ``server_url``.

    Raises:
        BenchError: ``config`` has no model, or a trained one without ``sk`` (or ``server_url``).
        ServingError: the model could not be published (see ``serving.kafka.providers.models.publish_model``).
    """
    from serving.kafka.providers.models import publish_descriptor
    from serving.kafka.providers.models import publish_model as publish

    if config.trained:
        if sk is None or (config.model_type == "oip" and not server_url):
            raise BenchError(f"configuration {config.name} needs the trained model (and its server) to publish")
        if config.model_type == "oip":
            descriptor = remote_model_descriptor(sk, str(server_url), version, data_type)
            publish_descriptor(settings, descriptor)
            return descriptor.created_at
        return publish(
            settings, sk.onnx_path, "onnx", version=version, data_type=data_type, metadata=sk.metadata
        ).created_at
    if config.model_path is None or config.model_type is None:
        raise BenchError(f"configuration {config.name} has no model to publish")
    return publish(
        settings, config.model_path, config.model_type, version=version, data_type=data_type, metadata=metadata
    ).created_at
