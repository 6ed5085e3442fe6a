"""``modelserving train``: train the wine models and export them in every format."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand; its handler is set as ``handler`` in the defaults."""
    parser = subparsers.add_parser(
        "train",
        help="train small wine-quality models and export them in every supported format",
        description=(
            "Train a Keras MLP classifier (exported as a frozen GraphDef and a SavedModel), "
            "a linear regression and a decision tree (each exported as PMML and ONNX) on a wine CSV, "
            "and write a manifest.json listing them. The same data and seed give the same models."
        ),
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="CSV",
        help="';'-separated wine CSV with a quality column (default: the shipped UCI red-wine data)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write the models into")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--epochs", type=_positive_int, default=30, help="training epochs of the Keras MLP (default: %(default)s)"
    )
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Train and export; progress goes to stderr, the artifact table to stdout.

    Returns:
        0 on success; a ``ServingError`` reaches ``serving.cli.main``, which
        prints it as one line and exits non-zero.
    """
    # Keep TensorFlow's C++ log lines out of the progress output unless asked for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.records.wine import reference_csv
    from serving.training.examples import MANIFEST_NAME, train_models

    data = args.data if args.data is not None else reference_csv()
    started = time.perf_counter()

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    artifacts = train_models(data, args.out, seed=args.seed, epochs=args.epochs, progress=progress)

    rows = [("TYPE", "KIND", "NAME", "PATH")]
    rows += [(a.model_type, a.kind, a.name, str(a.path)) for a in artifacts]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
    print(f"manifest: {Path(args.out) / MANIFEST_NAME}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
