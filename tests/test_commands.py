"""core/commands.py: a suggested command pasted into a shell runs ``python -m core`` with exactly the arguments
meant, whatever a folder (so a machine) is called, and nothing else.

Each command runs in a real ``bash -c`` whose ``PATH`` holds only a stand-in ``python``: a script that records
the arguments it was given and exits 0.  A hostile name tries to run ``touch MARKER`` (or to redirect into it);
the marker must not appear and the stand-in must see the name as one argument.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.commands import core_command
from core.workflows.drift import DriftReport

BASH = shutil.which("bash")
TOUCH = shutil.which("touch")
pytestmark = pytest.mark.skipif(BASH is None or TOUCH is None, reason="needs bash and touch")


MARKER = "PWNED"  # created in the working directory by the hostile names below if they ever run
# Machine types (folder names: no slash) that would run ``touch PWNED`` if pasted unquoted.
HOSTILE = [
    "fan; touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "fan' ; touch PWNED; echo '",
    'fan" ; touch PWNED; echo "',
    "fan\ntouch PWNED",
    "fan && touch PWNED",
    "fan | touch PWNED",
    "fan > PWNED",
    "fan $IFS & touch PWNED #",
    "*",
    "~",
    "",
]


def run_pasted(command: str, tmp_path: Path) -> list[str]:
    """Run ``command`` in ``tmp_path`` as a user pasting it into bash would, with a stand-in ``python`` first on
    ``PATH`` (then ``touch``'s folder, so that a hostile ``touch`` would run); returns the arguments the stand-in
    received."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    received = tmp_path / "argv"
    stub = bin_dir / "python"
    stub.write_text(f'#!{BASH}\nfor a in "$@"; do printf "%s\\0" "$a"; done > {received}\nexit 0\n')
    stub.chmod(0o755)
    received.unlink(missing_ok=True)
    env = {"PATH": f"{bin_dir}{os.pathsep}{Path(TOUCH).parent}", "HOME": str(tmp_path), "LC_ALL": "C"}
    subprocess.run([BASH, "-c", command], cwd=tmp_path, env=env, check=True, timeout=30)
    return received.read_bytes().decode().split("\0")[:-1]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_machine_name_stays_one_argument_and_runs_nothing(tmp_path, name):
    marker = tmp_path / MARKER
    machine = name + "/id_00"
    for command, args in [
        (core_command("train", "--machine", machine), ["train", "--machine", machine]),
        (DriftReport(machine=machine, detector="mahalanobis").retrain_command,
         ["train", "--machine", machine, "--detector", "mahalanobis"]),
    ]:  # fmt: skip
        assert run_pasted(command, tmp_path) == ["-m", "core", *args], command
        assert not marker.exists(), f"pasting {command!r} ran something else"
    assert not [p.name for p in tmp_path.iterdir() if p.name not in ("bin", "argv")]


def test_plain_arguments_stay_as_they_read():
    assert core_command("train", "--machine", "fan/id_00", "--detector", "mahalanobis") == (
        "python -m core train --machine fan/id_00 --detector mahalanobis"
    )
    assert core_command("score", "--machine", "my fan/id_00") == "python -m core score --machine 'my fan/id_00'"
    assert DriftReport(machine="pump/id_02").retrain_command == "python -m core train --machine pump/id_02"


def test_the_stand_in_is_what_runs(tmp_path):
    """The harness itself: an unquoted hostile command does create the marker (so the test above can fail)."""
    run_pasted("python -m core train --machine fan; touch PWNED", tmp_path)
    assert (tmp_path / MARKER).exists()
