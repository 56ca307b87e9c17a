"""``watch DIR`` / ``watch --sqs-queue URL``: ingest, score and flag new recordings as they land (in a folder, or in
S3 as the queue's events say), until stopped."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from core.cli.options import acting_user, add_command, add_jobs


def cmd_watch(args: argparse.Namespace) -> int:
    """Poll the folder every ``--interval`` seconds (once with ``--once``); SIGTERM or Ctrl-C stops it."""
    import signal
    import threading

    from core.access import Action, require
    from core.workflows.notify import channels_from

    require(acting_user(args), Action.INGEST)  # what it ingests and scores is recorded as the operator's work
    channels = channels_from(args.webhook, args.sns_topic, webhook_option="--webhook")
    watcher, watched = _watcher(args, channels)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    where = ", ".join(c.describe() for c in channels) or "no notifications configured"  # no webhook secrets
    print(f"watching {watched} every {args.interval:g} s ({where}); Ctrl-C to stop", file=sys.stderr)

    def report(poll) -> None:
        _report_poll(poll, always=args.once)

    try:
        watcher.run(interval_s=args.interval, stop=stop, max_polls=1 if args.once else None, on_poll=report)
    except KeyboardInterrupt:
        stop.set()
    return 0


def _watcher(args: argparse.Namespace, channels) -> tuple[object, str]:
    """The folder's or the queue's watcher, and how to name what it watches."""
    from core.errors import BadInputError, Reason

    if (args.folder is None) == (args.sqs_queue is None):
        raise BadInputError(Reason.INVALID_PARAMETER, "give a folder (DIR) or --sqs-queue URL, not both")
    if args.sqs_queue is None:
        if args.dead_letter_queue is not None:
            raise BadInputError(Reason.INVALID_PARAMETER, "--dead-letter-queue goes with --sqs-queue")
        from core.workflows.watch import Watcher

        watcher = Watcher(args.folder, settle_s=args.settle, channels=channels, n_jobs=args.jobs)
        return watcher, str(watcher.folder)
    from core.workflows.sqs_watch import QueueWatcher

    wait_s = 0 if args.once else min(20, int(args.interval))
    queue = QueueWatcher(args.sqs_queue, dead_letter_queue=args.dead_letter_queue, max_receive=args.max_receive,
                         wait_s=wait_s, channels=channels, n_jobs=args.jobs)  # fmt: skip
    return queue, f"the SQS queue {args.sqs_queue} ({queue.describe()})"


def _report_poll(poll, always: bool) -> None:
    """One stderr line per busy pass (or every pass when ``always``), and each refused file."""
    if poll.busy or always:
        counts = (f"messages {poll.messages}, deleted {poll.deleted}, to retry {poll.retrying}, poison {poll.poison}"
                  if hasattr(poll, "messages") else f"still being written {poll.waiting}")  # fmt: skip
        print(f"{datetime.now():%H:%M:%S} ingested {poll.ingested}, already known {poll.already_known}, "
              f"refused {len(poll.rejected)}, scored {poll.scored}, new flags {len(poll.flagged)}, "
              f"{counts}", file=sys.stderr, flush=True)  # fmt: skip
    for item in poll.rejected:
        print(f"  refused {item['path']}: {item['detail']} [{item['reason']}]", file=sys.stderr)


def register_watch(commands) -> None:
    """``watch DIR | --sqs-queue URL [--dead-letter-queue URL --max-receive N] [--interval --settle --webhook
    --sns-topic --jobs --once]``."""
    watch = add_command(
        commands, "watch", cmd_watch,
        help="ingest, score and flag new recordings as they land in a folder",
        description="Watch DIR (recursively; field snippets as DIR/<type>/<id>/<file>.wav): ingest each "
        "complete new file, score it with its machine's active model, and announce new flags by webhook "
        "(NOTIFY_WEBHOOK_URL) or AWS SNS (NOTIFY_SNS_TOPIC_ARN), retried in the background. Safe to stop "
        "and restart at any time. With --sqs-queue instead of DIR: the S3 ObjectCreated events the queue "
        "delivers name the new clips (s3:// URIs).",
    )  # fmt: skip
    watch.add_argument("folder", metavar="DIR", nargs="?", help="folder the recorders write into")
    watch.add_argument("--sqs-queue", metavar="URL",
                       help="instead of DIR: the URL of an SQS queue receiving S3 ObjectCreated events; a message is "
                       "deleted only once its clips are stored, and poison messages are set aside")  # fmt: skip
    watch.add_argument("--dead-letter-queue", metavar="URL",
                       help="with --sqs-queue and no redrive policy on it: the SQS queue poison messages are moved to "
                       "(default: recorded as refused, then deleted)")  # fmt: skip
    watch.add_argument("--max-receive", type=int, default=5, metavar="N",
                       help="with --sqs-queue: a message whose clips still fail on its N-th receipt is poison "
                       "(default 5; a queue's redrive policy takes precedence)")  # fmt: skip
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")
    watch.add_argument("--settle", type=float, default=2.0,
                       help="seconds a file must stay unwritten before it is read (default 2)")  # fmt: skip
    watch.add_argument("--webhook", metavar="URL",
                       help="POST a JSON message per new flag to this http(s) URL (no user name or password in it; "
                       "redirects are not followed)")  # fmt: skip
    watch.add_argument("--sns-topic", metavar="ARN", help="publish a message per new flag to this SNS topic")
    add_jobs(watch, default=1, help="worker processes per pass (default 1)")
    watch.add_argument("--once", action="store_true", help="one pass, then exit (for cron and tests)")
