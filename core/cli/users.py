"""``users add|set-role|disable|list``: who may sign in, and with which role (an admin's work).

A new user's password is read from standard input (asked twice without echo on a terminal, else
the first line), never taken as an argument, where it would show in the process list and the
shell's history.  ``--no-password`` adds a user who signs in with OpenID Connect, known by e-mail.
"""

from __future__ import annotations

import argparse
import sys

from core.access import Action, Role, require
from core.cli.options import acting_user, add_command, add_json
from core.cli.output import print_json
from core.errors import BadInputError, Reason

ROLES = [role.value for role in Role]


def _read_password(name: str) -> str:
    """The new user's password: typed twice without echo on a terminal, else the first line of standard input.
    Raises BadInputError when none is given or the two entries differ."""
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("the same password again: ") != password:
            raise BadInputError(Reason.INVALID_PARAMETER, "password: the two entries differ")
        return password
    password = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    if not password:
        raise BadInputError(Reason.INVALID_PARAMETER, "password: none on standard input (give it on the first "
                            "line, or use --no-password for a user who signs in with OpenID Connect)")  # fmt: skip
    return password


def _add(args: argparse.Namespace) -> int:
    from core.workflows.users import add_user

    actor = require(acting_user(args), Action.MANAGE_USERS)  # before asking for a password in vain
    password = None if args.no_password else _read_password(args.name)
    user = add_user(args.name, args.role, password, email=args.email, actor=actor)
    how = "OpenID Connect only" if password is None else "with a password"
    print(f"added {user['name']} ({user['role']}, {how})")
    return 0


def _set_role(args: argparse.Namespace) -> int:
    from core.workflows.users import set_role

    user = set_role(args.name, args.role, actor=acting_user(args))
    print(f"{user['name']}: role {user['role']}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    from core.workflows.users import disable_user

    user = disable_user(args.name, actor=acting_user(args))
    print(f"{user['name']}: disabled (can no longer sign in; what they did stays theirs)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from core.workflows.users import list_users

    found = list_users()
    if args.json:
        print_json({"users": found})
        return 0
    for user in found:
        print(f"{user['name']}\t{user['role']}\t{'active' if user['active'] else 'disabled'}")
    return 0


ACTIONS = {"add": _add, "set-role": _set_role, "disable": _disable, "list": _list}


def cmd_users(args: argparse.Namespace) -> int:
    """Run ``users ACTION``; 0 on success (a refusal raises a MachineSoundError, which main reports)."""
    return ACTIONS[args.action](args)


def register_users(commands) -> None:
    """``users add NAME --role R [--email E] [--no-password] | set-role NAME ROLE | disable NAME | list [--json]``."""
    users = add_command(
        commands, "users", cmd_users,
        help="add users, set their roles, disable them, list them",
        description="Who may sign in to the dashboard, and with which role (annotator, engineer, manager, admin). "
        "Changing users needs the admin role; each change is in the audit log.",
    )  # fmt: skip
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user", description="Add a user. The password is read from "
                             "standard input (asked twice on a terminal, else its first line), never from an "
                             "argument.")  # fmt: skip
    add.add_argument("name", metavar="NAME", help="what they sign in with, and what records show (1-128 characters)")
    add.add_argument("--role", required=True, choices=ROLES, help="their role")
    add.add_argument("--email", metavar="E", help="their e-mail (an OpenID Connect sign-in finds their role by it)")
    add.add_argument("--no-password", action="store_true",
                     help="no password: they sign in with OpenID Connect only (needs --email)")  # fmt: skip
    set_role = actions.add_parser("set-role", help="change a user's role", description="Change a user's role.")
    set_role.add_argument("name", metavar="NAME")
    set_role.add_argument("role", metavar="ROLE", choices=ROLES, help=", ".join(ROLES))
    disable = actions.add_parser("disable", help="disable a user", description="Disable a user: they can no "
                                 "longer sign in; what they did stays theirs.")  # fmt: skip
    disable.add_argument("name", metavar="NAME")
    listing = actions.add_parser("list", help="list the users", description="Every user: name, role, active.")
    add_json(listing, 'print {"users": [{"name", "role", "active"}]}')
