"""``python -m core users ...``, ``audit`` and the global ``--as``, run as a user runs them (subprocesses), on
SQLite and PostgreSQL: passwords come from standard input and never show anywhere."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import core.cli.users as cli_users
from core.access import Actor, Role
from core.errors import BadInputError
from core.workflows.audit import EVENT_KEYS
from core.workflows.users import add_user, authenticate, list_users
from tests.workflows.test_users import dump

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # noqa: S105 (a test password)


def run_cli(url: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """``python -m core ARGS`` on the database ``url``, with ``input`` on its standard input."""
    env = os.environ | {"PYTHONPATH": str(REPO), "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=REPO, env=env, input=input or "", capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line of a command that exited 2 and printed nothing else."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_users_from_the_command_line_and_no_password_anywhere(any_db_url):
    outputs = [
        ok(run_cli(any_db_url, "users", "add", "ana", "--role", "admin", input=f"{PASSWORD}\nnot this line\n")),
        ok(run_cli(any_db_url, "users", "add", "Bo Li", "--role", "engineer", "--email", "bo@x.org", "--no-password")),
        ok(run_cli(any_db_url, "users", "set-role", "Bo Li", "manager")),
        ok(run_cli(any_db_url, "users", "disable", "Bo Li")),
    ]
    assert outputs == [
        "added ana (admin, with a password)\n",
        "added Bo Li (engineer, OpenID Connect only)\n",
        "Bo Li: role manager\n",
        "Bo Li: disabled (can no longer sign in; what they did stays theirs)\n",
    ]
    listed = ok(run_cli(any_db_url, "users", "list", "--json"))
    assert json.loads(listed) == {
        "users": [
            {"name": "Bo Li", "role": "manager", "active": False},
            {"name": "ana", "role": "admin", "active": True},
        ]
    }
    assert authenticate("ana", PASSWORD, url=any_db_url) == Actor("ana", Role.ADMIN)  # the first line of stdin
    events = ok(run_cli(any_db_url, "audit"))
    shown = "".join(outputs) + listed + events
    assert PASSWORD not in shown and "argon2" not in shown
    assert PASSWORD not in dump(any_db_url)


def test_as_a_non_admin_users_add_is_refused_with_one_error_line(any_db_url):
    add_user("bo", "manager", PASSWORD, url=any_db_url)
    line = one_error_line(run_cli(any_db_url, "--as", "bo", "users", "add", "eve", "--role", "admin", input=PASSWORD))
    assert line == "error: bo may not manage users: manage users needs the admin role (you are manager)"
    assert [user["name"] for user in list_users(url=any_db_url)] == ["bo"]
    assert one_error_line(run_cli(any_db_url, "--as", "nobody", "audit")) == "error: no active user nobody [not_found]"
    add_user("root", "admin", PASSWORD, url=any_db_url)
    ok(run_cli(any_db_url, "--as", "root", "users", "set-role", "bo", "engineer"))
    listed = json.loads(ok(run_cli(any_db_url, "--as", "bo", "users", "list", "--json")))
    assert listed["users"][0]["role"] == "engineer"


def test_audit_json_as_a_manager_and_refused_to_an_annotator(any_db_url):
    add_user("mo", "manager", PASSWORD, url=any_db_url)
    add_user("al", "annotator", PASSWORD, actor=Actor("root", Role.ADMIN), url=any_db_url)
    found = json.loads(ok(run_cli(any_db_url, "--as", "mo", "audit", "--json", "--limit", "1")))
    assert list(found) == ["events"] and len(found["events"]) == 1
    (event,) = found["events"]
    assert tuple(event) == EVENT_KEYS == ("at", "user", "role", "action", "target", "detail")
    assert (event["user"], event["role"], event["action"], event["target"]) == ("root", "admin", "add user", "al")
    assert event["at"].endswith("+00:00")
    line = one_error_line(run_cli(any_db_url, "--as", "al", "audit"))
    assert line == "error: al may not view audit: view audit needs the manager role (you are annotator)"
    assert "error: limit must be" in one_error_line(run_cli(any_db_url, "audit", "--limit", "0"))


def test_a_missing_or_short_password_is_refused_without_echoing_it(db_url):
    line = one_error_line(run_cli(db_url, "users", "add", "ana", "--role", "admin"))
    assert "password: none on standard input" in line
    line = one_error_line(run_cli(db_url, "users", "add", "ana", "--role", "admin", input="s3cr\n"))
    assert "password must be 8 to 1024 characters long" in line and "s3cr" not in line
    assert list_users(url=db_url) == []


# --- the terminal prompt, in-process --------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_password_is_asked_twice_without_echo(monkeypatch):
    import getpass

    answers = iter([PASSWORD, PASSWORD, PASSWORD, "another one"])
    prompts = []
    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or next(answers))
    assert cli_users._read_password("ana") == PASSWORD
    with pytest.raises(BadInputError, match="password: the two entries differ"):
        cli_users._read_password("ana")
    assert prompts[:2] == ["password for ana: ", "the same password again: "]
