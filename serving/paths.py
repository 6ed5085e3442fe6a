"""The one place that knows where this checkout keeps things: jars, state, savepoints.

Everything under ``.cache/`` is made by the set-up (``make setup``) or by the
commands themselves, and is git-ignored; ``savepoints/`` is the default
savepoint and checkpoint target.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout (or installed tree) this package runs from.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = PROJECT_ROOT / ".cache"
JARS_DIR = CACHE_DIR / "jars"
#: The Flink Kafka connector (``make jars``).
CONNECTOR_DIR = JARS_DIR / "connector"
#: The Kafka broker's jars (``make jars``).
KAFKA_JARS_DIR = JARS_DIR / "kafka"
#: The project's Java helpers from ``scripts/java`` (``make jars``).
SERVING_JAR = JARS_DIR / "serving" / "modelserving-flink.jar"
#: The local broker's data, config, log and pid file.
KAFKA_STATE_DIR = CACHE_DIR / "kafka"
#: The local standalone Flink cluster's conf, logs and pid files.
FLINK_STATE_DIR = CACHE_DIR / "flink"
#: The demo's job logs and checkpoints.
DEMO_DIR = CACHE_DIR / "demo"
SAVEPOINTS_DIR = PROJECT_ROOT / "savepoints"
