"""Commands the product suggests (``python -m core train --machine fan/id_00``), safe to paste into a shell.

Their arguments are often names a file system supplied (a machine type is a folder name), so each is quoted
for a POSIX shell: a machine called ``fan; rm -rf ~`` or ``$(curl ...)`` stays one argument and runs
nothing.  Pure computation.
"""

from __future__ import annotations

import shlex

PROGRAM = "python -m core"


def core_command(*args: object) -> str:
    """``python -m core`` followed by ``args``, each quoted for the shell where it needs it
    (``core_command("train", "--machine", "fan/id_00")`` is ``python -m core train --machine fan/id_00``)."""
    return " ".join([PROGRAM, *(shlex.quote(str(arg)) for arg in args)])
