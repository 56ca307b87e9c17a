"""Command-line interface: ``python -m core COMMAND ...`` (``--help`` on every command).

Each command is a thin wrapper over the same ``core`` functions the dashboard calls;
its handler and its options sit together in one module of this package (``data``,
``models``, ``thresholds``, ``export``, ``supervised``, ``annotate``, ``review``,
``agreement``, ``watch``, ``drift``, ``users``, ``audit``), shared options in ``options``
and shared output in ``output``.
Progress bars go to stderr; ``--json`` output goes to stdout alone.

A command acts as :data:`core.access.OPERATOR` (an admin), or as the active user that the global
``--as NAME`` names (:func:`core.cli.options.acting_user`).
"""

from __future__ import annotations

import argparse
import sys

from core.cli import (
    agreement,
    annotate,
    audit,
    data,
    drift,
    export,
    models,
    review,
    supervised,
    thresholds,
    users,
    watch,
)
from core.cli.agreement import cmd_agreement
from core.cli.annotate import cmd_annotate
from core.cli.audit import cmd_audit
from core.cli.data import cmd_demo, cmd_info, cmd_ingest
from core.cli.drift import cmd_drift
from core.cli.export import cmd_export
from core.cli.models import cmd_activate, cmd_detectors, cmd_evaluate, cmd_score, cmd_train
from core.cli.options import add_acting_user
from core.cli.review import cmd_adjudicate, cmd_disputes
from core.cli.supervised import cmd_export_and_train, cmd_rekognition, cmd_train_supervised
from core.cli.thresholds import cmd_threshold
from core.cli.users import cmd_users
from core.cli.watch import cmd_watch
from core.errors import CloudError, MachineSoundError, environment_problem

__all__ = [
    "build_parser", "main", "cmd_demo", "cmd_ingest", "cmd_info", "cmd_detectors", "cmd_train", "cmd_score",
    "cmd_threshold", "cmd_evaluate", "cmd_activate", "cmd_export", "cmd_train_supervised", "cmd_rekognition",
    "cmd_export_and_train",
    "cmd_annotate", "cmd_disputes", "cmd_adjudicate", "cmd_agreement", "cmd_watch", "cmd_drift", "cmd_users",
    "cmd_audit",
]  # fmt: skip

# In the order `python -m core --help` lists the commands.
REGISTRARS = (
    data.register_demo, data.register_ingest, data.register_info,
    models.register_detectors, models.register_train, models.register_score,
    thresholds.register_threshold,
    models.register_evaluate, models.register_activate,
    export.register_export,
    supervised.register_train_supervised, supervised.register_export_and_train, supervised.register_rekognition,
    annotate.register_annotate,
    review.register_disputes, review.register_adjudicate, agreement.register_agreement,
    watch.register_watch,
    drift.register_drift,
    users.register_users, audit.register_audit,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m core`` parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Machine-sound anomaly triage: headless commands. "
        "The database is DATABASE_URL, or SQLite under DATA_DIR (default ./data).",
    )
    add_acting_user(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a product error prints one ``error:`` line on stderr, no traceback.

    Exit 3 for a failed cloud call, 2 for every other :class:`MachineSoundError`: bad input, a state
    the user can fix such as no trained model yet, a role that does not allow the command
    (:class:`~core.errors.PermissionDeniedError`) or a refused sign-in (:class:`~core.errors.SignInError`).
    Exit 1 with one line when the database or the file system refused (read-only, corrupt, full disk).
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CloudError as exc:  # before the root: a cloud failure has its own exit code
        return _fail(exc, 3)
    except MachineSoundError as exc:
        return _fail(exc, 2)
    except Exception as exc:  # the database or the disk refused: one line, never a traceback with SQL
        problem = environment_problem(exc)
        if problem is None:
            raise  # a bug: its traceback is what a report needs
        print(f"error: {problem}", file=sys.stderr)
        return 1


def _fail(exc: Exception, code: int) -> int:
    """Print ``error: ...`` on stderr and return the exit code."""
    print(f"error: {exc}", file=sys.stderr)
    return code
