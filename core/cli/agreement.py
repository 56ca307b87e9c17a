"""``agreement``: how far the annotators agree, per machine and pair, and how often each was overruled."""

from __future__ import annotations

import argparse

from core.cli.options import acting_user, add_command, add_json, add_machine
from core.cli.output import print_json


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def cmd_agreement(args: argparse.Namespace) -> int:
    """Print the report, as lines or as ``{"machines": [...]}``; returns 0."""
    from core.workflows.agreement import agreement_report

    machines = agreement_report(args.machine, actor=acting_user(args))
    if args.json:
        print_json({"machines": machines})
        return 0
    for m in machines:
        print(f"{m['machine']}: {m['n_double']} clip(s) judged twice or more ({m['n_pairs']} pairs): agreement "
              f"{_figure(m['agreement'])}, kappa {_figure(m['kappa'])}, alpha {_figure(m['alpha'])}")  # fmt: skip
        for pair in m["pairs"]:
            print(f"  {' & '.join(pair['annotators'])}: {pair['n_clips']} clip(s), agreement "
                  f"{_figure(pair['agreement'])}, kappa {_figure(pair['kappa'])}")  # fmt: skip
        for who in m["annotators"]:
            if who["n_adjudicated"]:
                print(f"  {who['annotator']}: overruled on {who['n_overruled']} of {who['n_adjudicated']} "
                      "adjudicated clip(s)")  # fmt: skip
    return 0


def register_agreement(commands) -> None:
    """``agreement [--machine M] [--json]``."""
    agreement = add_command(
        commands, "agreement", cmd_agreement,
        help="inter-annotator agreement: raw, Cohen's kappa, Krippendorff's alpha",
        description="Per machine, on the clips two or more annotators judged: raw agreement, Cohen's kappa and "
        "Krippendorff's alpha (nominal: normal, abnormal, unsure), each with the clips behind it; per annotator "
        "pair, agreement and kappa; per annotator, how often an adjudication overruled them. Needs the manager "
        "or admin role.",
    )  # fmt: skip
    add_machine(agreement)
    add_json(agreement, 'print {"machines": [{"machine", "n_double", "n_pairs", "agreement", "kappa", "alpha", '
             '"pairs": [{"annotators", "n_clips", "agreement", "kappa"}], "annotators": [{"annotator", "n_verdicts", '
             '"n_adjudicated", "n_overruled", "overruled_rate"}]}]}')  # fmt: skip
