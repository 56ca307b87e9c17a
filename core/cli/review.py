"""``disputes`` and ``adjudicate``: the review queue, and an engineer's final verdict on a clip."""

from __future__ import annotations

import argparse

from core.cli.options import acting_user, add_clip, add_command, add_json, add_machine
from core.cli.output import print_json
from core.errors import BadInputError, Reason


def cmd_disputes(args: argparse.Namespace) -> int:
    """List the review queue, as lines or as ``{"clips": [...]}``; returns 0."""
    from core.workflows.review import review_queue

    items = review_queue(args.machine, settled=not args.open, second_opinions=args.second_opinions,
                         actor=acting_user(args))  # fmt: skip
    if args.json:
        print_json({"clips": [item.as_json() for item in items]})
        return 0
    if not items:
        print("nothing to review")
    for item in items:
        said = ", ".join(f"{v['annotator']}: {v['verdict']}" + (f" ({v['anomaly_type']})" if v["anomaly_type"] else "")
                         for v in item.verdicts)  # fmt: skip
        ruled = item.adjudication
        final = f"  -> {ruled['verdict']} by {ruled['adjudicator']}: {ruled['reason']}" if ruled else ""
        print(f"clip {item.clip_id} ({item.machine}) {item.state}: {said or 'no standing verdict'}{final}")
    return 0


def register_disputes(commands) -> None:
    """``disputes [--machine M] [--open] [--second-opinions] [--json]``."""
    disputes = add_command(
        commands, "disputes", cmd_disputes,
        help="list the review queue: disputed, unsure and settled clips",
        description="The review queue: clips whose annotators say normal and abnormal (disputed), clips judged "
        "only unsure, and clips an adjudication settled, each with every standing verdict. Needs the engineer "
        "role or higher.",
    )  # fmt: skip
    add_machine(disputes)
    disputes.add_argument("--open", action="store_true", help="leave out the settled clips")
    disputes.add_argument("--second-opinions", action="store_true",
                          help="also list the field clips retraining left out for want of a second opinion "
                          "(state 'awaiting second opinion')")  # fmt: skip
    add_json(disputes, 'print {"clips": [{"clip_id", "machine", "path", "state", "verdicts": [{"annotator", '
             '"verdict", "anomaly_type", "note", "role", "at"}], "adjudication"}]}')  # fmt: skip


def cmd_adjudicate(args: argparse.Namespace) -> int:
    """Record the final verdict; print it (or JSON); returns 0."""
    from core.workflows.review import adjudicate
    from core.workflows.triage import resolve_clip

    if args.type and args.verdict != "abnormal":
        raise BadInputError(Reason.INVALID_PARAMETER, "--type names the fault of an abnormal clip: use it with "
                            "--verdict abnormal")  # fmt: skip
    actor = acting_user(args)
    clip_id = resolve_clip(args.clip)
    adjudication = adjudicate(clip_id, args.verdict, args.reason, anomaly_type=args.type, actor=actor)
    if args.json:
        print_json({"adjudication_id": adjudication, "clip_id": clip_id, "verdict": args.verdict,
                    "type": args.type, "reason": args.reason.strip(), "adjudicator": actor.name})  # fmt: skip
        return 0
    print(f"clip {clip_id}: settled as {args.verdict} by {actor.name} [adjudication {adjudication}]")
    return 0


def register_adjudicate(commands) -> None:
    """``adjudicate CLIP --verdict normal|abnormal --reason TEXT [--type T] [--json]``."""
    adjudicate = add_command(
        commands, "adjudicate", cmd_adjudicate,
        help="record the final verdict on a clip (engineer or higher)",
        description="Settle a clip: a final verdict, above every annotator's, with the reason; appended (earlier "
        "ones are kept) and audited. Recorded as the operator, or as the user --as names (before the command).",
    )  # fmt: skip
    add_clip(adjudicate)
    adjudicate.add_argument("--verdict", required=True, choices=["normal", "abnormal"], help="the final verdict")
    adjudicate.add_argument("--reason", required=True, metavar="TEXT", help="why (kept with the verdict)")
    adjudicate.add_argument("--type", metavar="T", help="anomaly type (with abnormal; new types join the list)")
    add_json(adjudicate, "print the stored adjudication as JSON")
