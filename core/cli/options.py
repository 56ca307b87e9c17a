"""Options shared by several commands, each declared once here.

Every helper adds one option to a command's parser; the caller gives the help text
(it says what the option means for that command), the helper keeps the flag, type and
default the same everywhere.  The global ``--as NAME`` (given before the command) says whom
a command acts as; :func:`acting_user` turns it into the :class:`~core.access.Actor` to pass on.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from core.access import OPERATOR, Actor

EVERY_MACHINE = "TYPE/ID or TYPE (default: every machine)"
ALL_CORES = "worker processes (default: all cores)"

Handler = Callable[[argparse.Namespace], int]


def add_command(commands, name: str, handler: Handler, *, help: str, description: str) -> argparse.ArgumentParser:
    """A new subcommand ``name`` that runs ``handler``."""
    parser = commands.add_parser(name, help=help, description=description)
    parser.set_defaults(func=handler)
    return parser


def add_json(parser: argparse.ArgumentParser, help: str) -> None:
    """``--json``: print machine-readable output on stdout."""
    parser.add_argument("--json", action="store_true", help=help)


def add_clip(parser: argparse.ArgumentParser) -> None:
    """``CLIP``: a clip by id, or by a file registered under that path or with the same content."""
    parser.add_argument("clip", metavar="CLIP", help="clip id, or a file registered under that path or with the same "
                        "content")  # fmt: skip


def add_machine(parser: argparse.ArgumentParser, help: str = EVERY_MACHINE, required: bool = False) -> None:
    """``--machine TYPE/ID`` (or ``TYPE`` where the help says so)."""
    parser.add_argument("--machine", required=required, help=help)


def add_jobs(parser: argparse.ArgumentParser, default: int | None = None, help: str = ALL_CORES) -> None:
    """``--jobs N``: worker processes."""
    parser.add_argument("--jobs", type=int, default=default, help=help)


def add_engine(parser: argparse.ArgumentParser, work: str) -> None:
    """``--engine process|ray`` and ``--address ADDR``: where ``work`` runs (a process pool, or Ray)."""
    from core.vocabulary import Engine

    parser.add_argument(
        "--engine", choices=[e.value for e in Engine], default=Engine.PROCESS.value,
        help=f"where {work} runs: process (a pool of worker processes here, the default) or ray (Ray tasks: a "
        "local Ray instance, or the cluster --address or RAY_ADDRESS names)",
    )  # fmt: skip
    parser.add_argument(
        "--address", metavar="ADDR",
        help="with --engine ray: the Ray cluster to run on, e.g. ray://head:10001, head:6379 or auto "
        "(default: RAY_ADDRESS, else a local instance)",
    )  # fmt: skip


def add_who(parser: argparse.ArgumentParser, help: str, flag: str = "--user") -> None:
    """``--user`` (or ``flag``): who does it, recorded with the result (default ``cli``)."""
    parser.add_argument(flag, default="cli", help=help)


def add_acting_user(parser: argparse.ArgumentParser) -> None:
    """``--as NAME`` on the main parser (before the command): act as that active user."""
    parser.add_argument(
        "--as", dest="as_user", metavar="NAME",
        help="act as this active user, with their role (default: the operator, an admin); "
        "given before the command, e.g. python -m core --as ana audit",
    )  # fmt: skip


def acting_user(args: argparse.Namespace) -> Actor:
    """The actor a command acts as: :data:`core.access.OPERATOR`, or the active user ``--as`` names.

    Raises :class:`core.errors.BadInputError` ("no active user NAME") when no active user has that name.
    """
    name = getattr(args, "as_user", None)
    if name is None:
        return OPERATOR
    from core.workflows.users import actor_for  # the database only when --as is given

    return actor_for(name)
