"""``threshold suggest|set``: a machine's alarm threshold, suggested or recorded with who and why."""

from __future__ import annotations

import argparse

from core.cli.options import acting_user, add_command, add_json, add_machine, add_who
from core.cli.output import print_json
from core.detection.thresholds import METHODS as THRESHOLD_METHODS


def _options(args: argparse.Namespace):
    """The suggestion settings given on the command line."""
    from core.workflows.tuning import SuggestOptions

    return SuggestOptions(
        method=args.method, quantile=args.quantile, target=args.target, cost_miss=args.cost_miss,
        cost_false_alarm=args.cost_false_alarm, use_test=args.use_test,
    )  # fmt: skip


def cmd_threshold(args: argparse.Namespace) -> int:
    """``suggest`` prints a threshold; ``set`` records the given VALUE or the suggestion."""
    from core.workflows.tuning import suggest

    if args.action == "set":
        return _set(args)
    suggestion = suggest(args.machine, _options(args))
    if args.json:
        print_json(vars(suggestion))
    else:
        print(f"{suggestion.machine}: {suggestion.value:.6g} ({suggestion.reason})")
    return 0


def _set(args: argparse.Namespace) -> int:
    """``threshold set``: record VALUE (by hand) or the suggestion of ``--method``, with who and why."""
    from core.workflows.tuning import set_threshold, suggest

    if args.value is not None:
        value, method, reason = args.value, "manual", args.reason or "set by hand"
    else:
        suggestion = suggest(args.machine, _options(args))
        value, method = suggestion.value, suggestion.method
        reason = f"{args.reason + '; ' if args.reason else ''}{suggestion.reason}"
    row = set_threshold(args.machine, value, set_by=args.by, reason=reason, method=method, actor=acting_user(args))
    print(f"{args.machine}: threshold {value:.6g} set by {args.by} ({reason}) [record {row}]")
    return 0


def register_threshold(commands) -> None:
    """``threshold {suggest,set} [VALUE] --machine TYPE/ID [--method ... --by --reason --json]``."""
    threshold = add_command(
        commands, "threshold", cmd_threshold,
        help="suggest or set a machine's threshold",
        description="suggest: compute a threshold; set: record one (a VALUE, or "
        "the suggestion of --method) with who and why.",
    )  # fmt: skip
    threshold.add_argument("action", choices=["suggest", "set"])
    threshold.add_argument("value", nargs="?", type=float, help="with set: the threshold value")
    add_machine(threshold, "TYPE/ID", required=True)
    threshold.add_argument(
        "--method",
        default="gamma",
        choices=list(THRESHOLD_METHODS),
        help="gamma (no labels), max_f1, target_recall, target_precision, min_cost",
    )
    threshold.add_argument("--quantile", type=float, default=0.9, help="gamma quantile (default 0.9)")
    threshold.add_argument("--target", type=float, default=0.9, help="target recall or precision (default 0.9)")
    threshold.add_argument("--cost-miss", type=float, default=10.0, help="cost of a missed anomaly (default 10)")
    threshold.add_argument("--cost-false-alarm", type=float, default=1.0, help="cost of a false alarm (default 1)")
    threshold.add_argument("--use-test", action="store_true", help="also fit on the test split (off by default)")
    add_who(threshold, "with set: who sets it", flag="--by")
    threshold.add_argument("--reason", default="", help="with set: why")
    add_json(threshold, "with suggest: print JSON")
