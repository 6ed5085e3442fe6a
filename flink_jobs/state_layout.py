"""What a savepoint of each serving job depends on: operator uids, state descriptors, max parallelism.

A savepoint maps operator state to operators by uid, and keyed or broadcast
state to a function by descriptor name and type. ``state_layout.json`` next
to this module records the layout the code declares;
``tests/flink/test_state_layout.py`` fails when the two differ. A difference
is a decision, not a detail: read ``docs/state-compatibility.md``, then
record the new layout with::

    python -m flink_jobs.state_layout --write

The layout is read from the Kafka jobs as ``flink run`` submits them
(``build_job`` on ``KafkaIO``), from the Java StreamGraph after PyFlink's
operator chaining, so fused Python operators show the uid they really get.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

LAYOUT_FILE = Path(__file__).with_name("state_layout.json")
JOBS = ("keyed", "partitioned")
#: Per job: the uid of its stateful serving operator and the module whose module-level descriptors it uses.
STATEFUL_OPERATORS = {
    "keyed": ("serve-keyed", "flink_jobs.functions.keyed"),
    "partitioned": ("serve-partitioned", "flink_jobs.functions.partitioned"),
}
#: Stateful Python operators both jobs have, beside the serving one: uid -> the module of their descriptors.
SHARED_STATEFUL_OPERATORS = {"compare-pairs": "flink_jobs.functions.pairs"}


def state_descriptors(module_name: str) -> dict[str, dict[str, str]]:
    """Module-level state descriptors of ``module_name``: name -> kind and type information."""
    from pyflink.datastream.state import StateDescriptor

    module = importlib.import_module(module_name)
    found: dict[str, dict[str, str]] = {}
    for value in vars(module).values():
        if isinstance(value, StateDescriptor):
            found[value.name] = {"kind": type(value).__name__, "type": str(value.type_info)}
    return dict(sorted(found.items()))


def declared_descriptor_count(module_name: str) -> int:
    """How many ``...StateDescriptor(`` calls the module's source has (all must be module-level)."""
    module = importlib.import_module(module_name)
    return Path(module.__file__).read_text().count("StateDescriptor(")


def operators(job: str) -> dict[str, Any]:
    """Uids of the job's operators as submitted, and the names of operators without one.

    Operators without a uid get a hash of the graph's shape, which changes
    with the graph: they must hold no state.
    """
    from flink_jobs import environment
    from flink_jobs.io.kafka import KafkaIO
    from flink_jobs.jobs import build_job
    from serving.kafka.settings import KafkaSettings
    from serving.settings import JobSettings

    settings = JobSettings(job=job)
    # The jars main.py --local adds: the connector and, where the job has them, the project's helpers.
    jars = getattr(environment, "kafka_jars", lambda: [environment.connector_jar()])()
    env = environment.create_environment(settings, jars=jars)
    build_job(env, settings, KafkaIO(KafkaSettings(bootstrap_servers="localhost:9092"), job))
    graph = env._generate_stream_graph(clear_transformations=True)  # what execute() submits
    with_uid: dict[str, str] = {}
    without_uid: list[str] = []
    for node in graph.getStreamNodes().toArray():
        uid, name = node.getTransformationUID(), node.getOperatorName()
        if uid:
            with_uid[uid] = name
        else:
            without_uid.append(name)
    return {"uids": dict(sorted(with_uid.items())), "without_uid": sorted(without_uid)}


def current_layout() -> dict[str, Any]:
    """The layout the code declares now (builds both job graphs in this process's JVM)."""
    from serving.settings import JobSettings

    layout: dict[str, Any] = {
        "max_parallelism": JobSettings().max_parallelism,
        "python_execution_mode": "process",
        "jobs": {},
    }
    for job in JOBS:
        uid, module = STATEFUL_OPERATORS[job]
        state = {uid: state_descriptors(module)}
        state.update({shared: state_descriptors(m) for shared, m in SHARED_STATEFUL_OPERATORS.items()})
        layout["jobs"][job] = {"operators": operators(job), "state": state}
    return layout


def render(layout: dict[str, Any]) -> str:
    """The layout as the checked-in JSON text."""
    return json.dumps(layout, indent=2, sort_keys=True) + "\n"


def diff(recorded: dict[str, Any], current: dict[str, Any]) -> str:
    """A unified diff from the recorded layout to the current one ('' when equal)."""
    lines = difflib.unified_diff(
        render(recorded).splitlines(), render(current).splitlines(), "recorded", "code", lineterm="", n=2
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Compare the code with ``state_layout.json`` (exit 1 on a difference), or ``--write`` it."""
    parser = argparse.ArgumentParser(prog="flink_jobs.state_layout", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the current layout (a deliberate change)")
    args = parser.parse_args(argv)
    current = current_layout()
    if args.write:
        LAYOUT_FILE.write_text(render(current))
        print(f"wrote {LAYOUT_FILE}")
        return 0
    recorded = json.loads(LAYOUT_FILE.read_text())
    changes = diff(recorded, current)
    if changes:
        print(changes)
        return 1
    print("state layout unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
