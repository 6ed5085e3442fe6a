"""``modelserving stats``: which model serves each data type, since when, how much and how fast.

``stats serve`` runs the stats service (HTTP, dashboard, Prometheus metrics);
``stats`` asks a running one and prints the answers as tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

from serving.cli.kafka import add_kafka_args, kafka_settings_from_args
from serving.errors import ServingError

DEFAULT_URL = "http://127.0.0.1:5500"


class StatsServiceError(ServingError):
    """The stats service could not be reached or refused the question."""

    reason = "stats service error"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``stats`` (tables from a running service) and ``stats serve``."""
    stats = subparsers.add_parser(
        "stats",
        help="show which model serves each data type, or run the stats service",
        description="Without an action: ask a running stats service (--url) which model serves each data "
        "type, since when, how many records it scored and how fast, and print it as tables. "
        "`stats serve` runs that service.",
    )
    stats.add_argument("--data-type", default=None, metavar="T", help="one data type: its state and history")
    stats.add_argument("--url", default=DEFAULT_URL, help=f"the stats service (default {DEFAULT_URL})")
    stats.add_argument("--json", action="store_true", help="print the service's JSON answers instead of tables")
    stats.set_defaults(handler=run_stats)
    actions = stats.add_subparsers(dest="stats_command", metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="run the stats service: HTTP answers, live dashboard, Prometheus metrics",
        description="Read the stats and model-events topics and answer over HTTP: /models, "
        "/state/{data_type}, /history/{data_type}, /series/{data_type}, /overview, /metrics, /health, "
        "/openapi.json, and the live dashboard at /. Starts even when Kafka or the topics are missing.",
    )
    serve.add_argument("--port", type=_port, default=5500, help="HTTP port (default 5500)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add_kafka_args(serve)
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Run the service in the foreground until interrupted."""
    from serving.observability.service.app import serve

    settings = kafka_settings_from_args(args)
    print(f"stats service on http://{args.host}:{args.port}/ (Kafka {settings.bootstrap_servers}); Ctrl-C stops it")
    serve(settings, host=args.host, port=args.port)
    return 0


def run_stats(args: argparse.Namespace) -> int:
    """Print the models (and the state and history of ``--data-type``) from a running service."""
    if args.data_type is not None:
        quoted = urllib.parse.quote(args.data_type, safe="")
        state = fetch_json(args.url, f"/state/{quoted}")
        history = fetch_json(args.url, f"/history/{quoted}")
        if args.json:
            print(json.dumps({"state": state, "history": history}, indent=2))
            return 0
        print_state(state)
        print_history(history)
        return 0
    models = fetch_json(args.url, "/models")
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    print_models(models)
    return 0


def fetch_json(base_url: str, path: str, timeout: float = 10.0) -> dict:
    """GET ``base_url + path`` as JSON.

    Raises:
        StatsServiceError: no service answers, or it answers an error (its JSON
            ``detail`` is the message: an unknown data type, Kafka unreachable).
    """
    url = base_url.rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read().decode("utf-8"))
            detail = body.get("detail") or body.get("error") or str(exc)
        except (ValueError, AttributeError):
            detail = str(exc)
        raise StatsServiceError(f"{url}: {exc.code} {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatsServiceError(
            f"no stats service answered at {base_url} ({reason}); start one with `modelserving stats serve`"
        ) from exc
    except ValueError as exc:
        raise StatsServiceError(f"{url} did not answer JSON: {exc}") from exc


def _time(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        # Names are what a reader looks for: never folded; the other columns give way.
        table.add_column(
            column,
            justify="right" if column in _NUMERIC else "left",
            overflow="fold",
            no_wrap=column in _NAMES,
            min_width=len(column) if column in _NAMES else None,
        )
    for row in rows:
        table.add_row(*row)
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160).print(table)


_NUMERIC = {"records", "records/s", "mean", "min", "max"}
_NAMES = {"data type", "name", "version", "status"}


def print_models(answer: dict) -> None:
    """The ``/models`` answer as a table."""
    rows = [
        [
            m["data_type"],
            m["name"],
            m["version"],
            m["model_type"] or "-",
            m["status"],
            _time(m["since"]),
            _time(m["retired_at"]),
            f"{m['usage']:,}",
            m["reason"] or "",
        ]
        for m in answer["models"]
    ]
    columns = ["data type", "name", "version", "type", "status", "since", "retired", "records", "reason"]
    _table("models", columns, rows)
    if not rows:
        print("no model known yet")


def print_state(state: dict) -> None:
    """The ``/state/{data_type}`` answer as a table."""
    model = state["model"]
    if model is None:
        print(f"{state['data_type']}: no model serving yet ({state['models_known']} known)")
        return
    columns = ["data type", "name", "version", "type", "since", "records", "records/s", "mean", "min", "max"]
    row = [
        state["data_type"],
        model["name"],
        model["version"],
        model["model_type"] or "-",
        _time(model["since"]),
        f"{model['usage']:,}",
        f"{model['records_per_second']:.1f}",
        _ns(model["mean_duration_ns"]),
        _ns(model["min_duration_ns"]),
        _ns(model["max_duration_ns"]),
    ]
    _table(f"serving {state['data_type']}", columns, [row])


def print_history(history: dict) -> None:
    """The ``/history/{data_type}`` answer as a table."""
    rows = [
        [
            str(i),
            h["name"],
            h["version"],
            h["status"],
            _time(h["deployed_at"]),
            _time(h["retired_at"]),
            f"{h['usage']:,}",
            h["reason"] or "",
        ]
        for i, h in enumerate(history["models"], 1)
    ]
    columns = ["#", "name", "version", "status", "deployed", "retired", "records", "reason"]
    _table(f"history of {history['data_type']}", columns, rows)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port
