"""``audit``: the audit log, who did what and when, the newest first (managers and admins)."""

from __future__ import annotations

import argparse

from core.cli.options import acting_user, add_command, add_json
from core.cli.output import print_json


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the latest ``--limit`` events, as lines or as ``{"events": [...]}``; returns 0."""
    from core.workflows.audit import audit_events

    events = audit_events(args.limit, actor=acting_user(args))
    if args.json:
        print_json({"events": events})
        return 0
    for event in events:
        detail = f" - {event['detail']}" if event["detail"] else ""
        print(f"{event['at']}  {event['user']} ({event['role']})  {event['action']}  {event['target']}{detail}")
    return 0


def register_audit(commands) -> None:
    """``audit [--limit N] [--json]``."""
    audit = add_command(
        commands, "audit", cmd_audit,
        help="show the audit log",
        description="The audit log, the newest first: who (and with which role) did what to what, and when "
        "(UTC). Needs the manager or admin role.",
    )  # fmt: skip
    audit.add_argument("--limit", type=int, default=100, metavar="N", help="how many events (1-10000, default 100)")
    add_json(audit, 'print {"events": [{"at", "user", "role", "action", "target", "detail"}]}')
