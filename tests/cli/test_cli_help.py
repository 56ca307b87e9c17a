"""The CLI's parser in-process: every command is registered and its ``--help`` renders; errors exit cleanly."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import core.cli.models
from core.cli import build_parser, main
from core.errors import BadInputError, CloudError, NoModelError, PermissionDeniedError, Reason, SignInError

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {
    "demo", "ingest", "info", "detectors", "train", "score", "threshold", "evaluate", "activate", "export",
    "train-supervised", "export-and-train", "rekognition", "annotate", "disputes", "adjudicate", "agreement",
    "watch", "drift", "users", "audit",
}  # fmt: skip


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_commands_are_exactly_these():
    assert set(_subparsers()) == COMMANDS


def test_every_command_help_renders(capsys):
    for name in sorted(COMMANDS):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([name, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: python -m core {name}"), name
        assert "-h, --help" in out


def test_every_command_runs_a_handler():
    for name, parser in _subparsers().items():
        assert callable(parser.get_default("func")), name


def test_shared_options_keep_one_form():
    for name, parser in _subparsers().items():
        for action in parser._actions:
            if "--json" in action.option_strings:
                assert isinstance(action, argparse._StoreTrueAction), name
            if "--jobs" in action.option_strings:
                assert action.type is int and action.default in (None, 1), name
            if "--user" in action.option_strings:
                assert action.default == "cli", name


def test_building_the_parser_loads_no_heavy_library():
    code = "import sys, core.cli; core.cli.build_parser(); print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    loaded = {name.split(".")[0] for name in out.split()}
    assert not loaded & {"tensorflow", "keras", "streamlit", "boto3", "botocore"}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadInputError(Reason.INVALID_PARAMETER, "no such thing"), 2),
        (NoModelError("fan/id_00 has no trained model yet"), 2),
        (CloudError("s3 put failed: Denied"), 3),
        (PermissionDeniedError("ana may not manage users: manage users needs the admin role (you are manager)"), 2),
        (SignInError("wrong username or password"), 2),
    ],
)
def test_errors_exit_with_one_error_line(monkeypatch, capsys, error, code):
    def fail(args):
        raise error

    monkeypatch.setattr(core.cli.models, "cmd_detectors", fail)
    assert main(["detectors"]) == code
    captured = capsys.readouterr()
    assert captured.err == f"error: {error}\n" and captured.out == ""


def test_every_users_action_renders_its_help(capsys):
    for action in ("add", "set-role", "disable", "list"):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(["users", action, "--help"])
        assert exit_.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: python -m core users {action}")


def test_as_is_a_global_option_given_before_the_command():
    args = build_parser().parse_args(["--as", "ana", "audit", "--limit", "5"])
    assert (args.as_user, args.command, args.limit) == ("ana", "audit", 5)
    assert build_parser().parse_args(["users", "list"]).as_user is None


def test_a_password_is_never_an_argument():
    (users,) = [p for name, p in _subparsers().items() if name == "users"]
    (actions,) = [a for a in users._actions if isinstance(a, argparse._SubParsersAction)]
    flags = {flag for parser in actions.choices.values() for a in parser._actions for flag in a.option_strings}
    assert not {flag for flag in flags if "pass" in flag} - {"--no-password"}
