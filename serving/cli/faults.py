"""``modelserving faults``: the fault campaign (see :mod:`serving.faults.run`).

``faults list`` names the scenarios, ``faults run SCENARIO`` runs one on a
broker and a standalone cluster of its own and judges it (C1-C9), and
``faults campaign`` runs them all in turn. Each run prints its progress, a
table of the checks and, with ``--json``, writes the verdict.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from serving.errors import ConfigError
from serving.paths import CACHE_DIR


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``faults list|run|campaign``."""
    faults = subparsers.add_parser(
        "faults",
        help="fault campaign: kill and pause the job's processes and the broker, then prove nothing was lost",
        description="Run fault scenarios against a local broker and a standalone Flink cluster at parallelism 2 "
        "(5 s checkpoints, ~200 records/s, a new model every 30 s), then check with read_committed readers "
        "that nothing was lost (C1), duplicated (C2) or invented (C3), that every score matches its model "
        "version offline (C4), and more (C5-C9). Takes minutes per scenario; wants an otherwise idle machine.",
    )
    verbs = faults.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("list", help="the scenarios").set_defaults(handler=list_command)
    run = verbs.add_parser("run", help="run one scenario and judge it")
    run.add_argument("scenario", help="a name from `faults list`")
    _run_options(run)
    run.set_defaults(handler=run_command)
    campaign = verbs.add_parser("campaign", help="run every scenario (or --only some) in turn")
    campaign.add_argument("--only", default=None, metavar="NAME[,NAME]", help="scenarios to run (default: all)")
    _run_options(campaign)
    campaign.set_defaults(handler=campaign_command)


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="run at least this long (s)")
    parser.add_argument("--count", type=int, default=None, metavar="N", help="faults to inject (scenario default)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short outages and waits (broker down 10 s, paused 5 s, worker stalled 20 s, 2 s checkpoints), "
        "as CI runs it",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the verdict(s) as JSON")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="logs, checkpoints and broker data (default .cache/faults/...)"
    )


def list_command(args: argparse.Namespace) -> int:
    """Print the scenarios, one per line."""
    from serving.faults.catalog import SCENARIOS

    for scenario in SCENARIOS.values():
        print(f"{scenario.name:14} {scenario.count}x  {scenario.summary}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run one scenario; exit 1 when a check failed."""
    verdict = _run_one(args.scenario, args)
    if args.json:
        _write(args.json, verdict)
    return 0 if verdict["passed"] else 1


def campaign_command(args: argparse.Namespace) -> int:
    """Run the chosen scenarios in turn; exit 1 when any failed."""
    from serving.faults.catalog import SCENARIOS

    names = [n.strip() for n in args.only.split(",")] if args.only else list(SCENARIOS)
    verdicts = []
    for name in names:
        try:
            verdicts.append(_run_one(name, args, own_dir=True))
        except ConfigError:
            raise
        except Exception as exc:  # one scenario that could not run must not cost the others their verdicts
            print(f"  {name}: could not run: {exc}", flush=True)
            verdicts.append({"scenario": name, "passed": False, "error": str(exc), "counts": _NO_COUNTS})
        if args.json:  # after each scenario: an interrupted campaign keeps what it has
            _write(args.json, verdicts)
    _print_summary(verdicts)
    return 0 if all(v["passed"] for v in verdicts) else 1


#: The counts of a scenario that could not run, for the summary table.
_NO_COUNTS = {"acked": 0, "lost": 0, "duplicated": 0, "restarts": None, "longest_recovery_s": None}


def _run_one(name: str, args: argparse.Namespace, own_dir: bool = False) -> dict:
    import dataclasses

    from serving.faults.catalog import SCENARIOS
    from serving.faults.judging import judge_run
    from serving.faults.run import RunPlan, run_scenario

    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ConfigError(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")
    if args.count is not None:
        if args.count < 1:
            raise ConfigError(f"--count must be at least 1, got {args.count}")
        scenario = dataclasses.replace(scenario, count=args.count)
    plan = RunPlan(duration_s=args.duration)
    if args.quick:
        plan = dataclasses.replace(
            plan,
            broker_down_s=10.0,
            broker_pause_s=5.0,
            worker_stall_s=20.0,
            warm_up_s=5.0,
            between_faults_s=3.0,
            checkpoint_interval_ms=2_000,
        )
    work_dir = args.work_dir or CACHE_DIR / "faults" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.work_dir and own_dir:  # a campaign: each scenario's broker, cluster and logs apart
        work_dir = args.work_dir / name
    print(f"faults run {name}: {scenario.summary}, {scenario.count}x (work dir {work_dir})", flush=True)
    verdict = run_scenario(scenario, plan, work_dir, judge_run, progress=lambda line: print(f"  {line}", flush=True))
    _print_verdict(verdict)
    return verdict


def _print_verdict(verdict: dict) -> None:
    for name, check in verdict["checks"].items():
        print(f"  {name:4} {check['status']:12} {check['detail']}")
    counts = verdict["counts"]
    print(
        f"  {verdict['scenario']}: {'PASSED' if verdict['passed'] else 'FAILED'}; acked {counts['acked']}, "
        f"results {counts['results']}, dead letters {counts['dead_letters']}, lost {counts['lost']}, "
        f"duplicated {counts['duplicated']}, restarts {counts['restarts']}, "
        f"longest recovery {_seconds(counts['longest_recovery_s'])}",
        flush=True,
    )


def _print_summary(verdicts: list[dict]) -> None:
    print("scenario        verdict  acked  lost  dup  restarts  longest recovery s")
    for v in verdicts:
        c = v["counts"]
        print(
            f"{v['scenario']:15} {'pass' if v['passed'] else 'FAIL':8} {c['acked']:6} {c['lost']:5} "
            f"{c['duplicated']:4} {c['restarts']!s:9} {c['longest_recovery_s']}"
        )


def _write(path: Path, content) -> None:
    if path.is_dir():
        raise ConfigError(f"--json {path} is a directory")
    path.write_text(json.dumps(content, indent=2) + "\n")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
