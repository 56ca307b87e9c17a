"""``annotate CLIP``: a pilot's verdict on a clip, appended beside every other annotator's."""

from __future__ import annotations

import argparse
import sys

from core.cli.options import acting_user, add_clip, add_command, add_json
from core.cli.output import print_json
from core.errors import BadInputError, Reason


def cmd_annotate(args: argparse.Namespace) -> int:
    """Record the verdict; mention (on stderr) other annotators' verdicts on the same clip."""
    from core.workflows.triage import other_verdicts, record_verdict, resolve_clip

    if args.type and args.verdict != "abnormal":
        raise BadInputError(Reason.INVALID_PARAMETER, "--type names the fault of an abnormal clip: use it with "
                            "--verdict abnormal")  # fmt: skip
    clip_id = resolve_clip(args.clip)
    annotation = record_verdict(clip_id, args.annotator, args.verdict, anomaly_type=args.type, note=args.note,
                                actor=acting_user(args))
    others = other_verdicts(clip_id, args.annotator)
    if args.json:
        print_json({"annotation_id": annotation, "clip_id": clip_id, "verdict": args.verdict,
                    "annotator": args.annotator.strip(), "type": args.type, "note": args.note,
                    "other_verdicts": others})  # fmt: skip
        return 0
    print(f"clip {clip_id}: {args.verdict} by {args.annotator.strip()} [annotation {annotation}]")
    if others:
        said = ", ".join(f"{who}: {verdict}" for who, verdict in others.items())
        print(f"  others judged it too ({said}); every verdict is kept", file=sys.stderr)
    return 0


def register_annotate(commands) -> None:
    """``annotate CLIP --verdict V --annotator NAME [--type --note --json]``."""
    annotate = add_command(
        commands, "annotate", cmd_annotate,
        help="record a pilot's verdict on a clip",
        description="Record a verdict on a clip, as the Triage page does: appended, never overwriting "
        "another annotator's; safe to run from many processes at once.",
    )  # fmt: skip
    add_clip(annotate)
    annotate.add_argument("--verdict", required=True, choices=["normal", "abnormal", "unsure"],
                          help="abnormal confirms a flag, normal rejects it")  # fmt: skip
    annotate.add_argument("--annotator", required=True, metavar="NAME", help="who gives the verdict")
    annotate.add_argument("--type", metavar="T", help="anomaly type (with abnormal; new types join the list)")
    annotate.add_argument("--note", metavar="N", default="", help="why")
    add_json(annotate, "print the stored annotation as JSON")
