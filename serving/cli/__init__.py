"""The ``modelserving`` command: one subcommand per user task.

Each module in this package registers its subcommands with ``register``.
Errors a user can cause end as one readable line and a non-zero exit code,
never a traceback (set ``MODELSERVING_DEBUG=1`` to see it anyway).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from serving import logs
from serving.errors import ServingError
from serving.ops.processes import interrupt_on_sigterm
from serving.settings import environment

#: Subcommand modules, in the order ``--help`` lists them.
_COMMAND_MODULES = (
    "demo", "models", "train", "jobs", "kafka", "publish", "control", "audit", "keys", "stats", "cluster", "bench",
    "faults",
)  # fmt: skip

EXIT_USAGE = 2
EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the CLI tests)."""
    parser = argparse.ArgumentParser(prog="modelserving", description="Serve models as data on Flink and Kafka.")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING or ERROR")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"serving.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"serving.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def _debug() -> bool:
    """``MODELSERVING_DEBUG``: show tracebacks (a bad value of it counts as off)."""
    try:
        return environment().debug
    except ServingError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ banner is noise here
    parser = build_parser()
    args = parser.parse_args(argv)
    interrupt_on_sigterm()  # long-running commands clean up on SIGTERM as on Ctrl-C
    logs.configure(args.log_level)
    try:
        return int(args.handler(args) or 0)
    except ServingError as exc:
        if _debug():
            raise
        print(f"modelserving {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"modelserving {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
