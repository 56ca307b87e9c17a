"""``drift``: each machine's recent clips against the clips its active model learned from."""

from __future__ import annotations

import argparse

from core.cli.options import add_command, add_jobs, add_json, add_machine
from core.cli.output import print_json


def cmd_drift(args: argparse.Namespace) -> int:
    """The drift state of each machine, as a table (with retrain commands) or JSON."""
    from core.workflows.drift import drift_reports

    reports = drift_reports(args.machine, recent=args.recent, n_jobs=args.jobs)
    if args.json:
        print_json({"machines": [r.as_json() for r in reports]})
    elif not reports:
        print("no machines yet: ingest clips first")
    else:
        _print_table(reports)
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_table(reports) -> None:
    """One row per machine with its reasons, then a retrain command per machine that needs one."""
    from core.workflows.drift import RETRAIN

    print(f"{'machine':<16} {'state':<18} {'score PSI':>9} {'level PSI':>9} {'recent':>6} {'reference':>9}")
    for r in reports:
        print(f"{r.machine:<16} {r.state:<18} {_fmt(r.score_psi):>9} {_fmt(r.level_psi):>9} {r.n_recent:>6} "
              f"{r.n_reference:>9}")  # fmt: skip
        for reason in r.reasons:
            print(f"    {reason}")
    for r in reports:
        if r.state == RETRAIN:
            print(f"retrain suggested for {r.machine}: {r.retrain_command}")


def register_drift(commands) -> None:
    """``drift [--machine --recent --jobs --json]``."""
    drift = add_command(
        commands, "drift", cmd_drift,
        help="compare each machine's recent clips with its training clips",
        description="Compare each machine's newest clips with the clips its active model learned from "
        "(anomaly scores and per-band log-mel levels, by population stability index and Kolmogorov-Smirnov "
        "tests): stable, watch, retrain suggested, or not enough data.",
    )  # fmt: skip
    add_machine(drift)
    drift.add_argument("--recent", type=int, default=50, help="newest clips per machine to compare (default 50)")
    add_jobs(drift)
    add_json(drift, 'print {"machines": [...]} as JSON')
