"""``watch DIR``: ingest, score and flag new recordings as they land, until stopped."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from core.cli.options import add_command, add_jobs


def cmd_watch(args: argparse.Namespace) -> int:
    """Poll the folder every ``--interval`` seconds (once with ``--once``); SIGTERM or Ctrl-C stops it."""
    import signal
    import threading

    from core.workflows.notify import channels_from
    from core.workflows.watch import Watcher

    channels = channels_from(args.webhook, args.sns_topic, webhook_option="--webhook")
    watcher = Watcher(args.folder, settle_s=args.settle, channels=channels, n_jobs=args.jobs)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    where = ", ".join(c.describe() for c in channels) or "no notifications configured"  # no webhook secrets
    print(f"watching {watcher.folder} every {args.interval:g} s ({where}); Ctrl-C to stop", file=sys.stderr)

    def report(poll) -> None:
        _report_poll(poll, always=args.once)

    try:
        watcher.run(interval_s=args.interval, stop=stop, max_polls=1 if args.once else None, on_poll=report)
    except KeyboardInterrupt:
        stop.set()
    return 0


def _report_poll(poll, always: bool) -> None:
    """One stderr line per busy pass (or every pass when ``always``), and each refused file."""
    if poll.busy or always:
        print(f"{datetime.now():%H:%M:%S} ingested {poll.ingested}, already known {poll.already_known}, "
              f"refused {len(poll.rejected)}, scored {poll.scored}, new flags {len(poll.flagged)}, "
              f"still being written {poll.waiting}", file=sys.stderr, flush=True)  # fmt: skip
    for item in poll.rejected:
        print(f"  refused {item['path']}: {item['detail']} [{item['reason']}]", file=sys.stderr)


def register_watch(commands) -> None:
    """``watch DIR [--interval --settle --webhook --sns-topic --jobs --once]``."""
    watch = add_command(
        commands, "watch", cmd_watch,
        help="ingest, score and flag new recordings as they land in a folder",
        description="Watch DIR (recursively; field snippets as DIR/<type>/<id>/<file>.wav): ingest each "
        "complete new file, score it with its machine's active model, and announce new flags by webhook "
        "(NOTIFY_WEBHOOK_URL) or AWS SNS (NOTIFY_SNS_TOPIC_ARN), retried in the background. Safe to stop "
        "and restart at any time.",
    )  # fmt: skip
    watch.add_argument("folder", metavar="DIR", help="folder the recorders write into")
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")
    watch.add_argument("--settle", type=float, default=2.0,
                       help="seconds a file must stay unwritten before it is read (default 2)")  # fmt: skip
    watch.add_argument("--webhook", metavar="URL",
                       help="POST a JSON message per new flag to this http(s) URL (no user name or password in it; "
                       "redirects are not followed)")  # fmt: skip
    watch.add_argument("--sns-topic", metavar="ARN", help="publish a message per new flag to this SNS topic")
    add_jobs(watch, default=1, help="worker processes per pass (default 1)")
    watch.add_argument("--once", action="store_true", help="one pass, then exit (for cron and tests)")
