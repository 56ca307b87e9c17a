"""Saving uploaded recordings under ``DATA_DIR`` safely before they are ingested."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from db.session import data_dir

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class StoredUploads:
    paths: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason", "detail"}


def safe_name(name: str, default: str) -> str:
    """A file or folder name with only letters, digits, ``_ . -`` (no separators, no ``..``)."""
    cleaned = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).lstrip(".")
    return cleaned or default


def store_uploads(files: list[tuple[str, bytes]], machine: str, *, max_bytes: int) -> StoredUploads:
    """Write ``(file name, content)`` pairs to ``DATA_DIR/uploads/<type>/<id>/``.

    Names are made safe (a name such as ``../../x.wav`` lands inside that folder as
    ``x.wav``); a file over ``max_bytes`` is refused with its reason; an existing file
    of the same name is not overwritten (a numbered name is used).
    """
    machine_type, _, machine_id = machine.strip().partition("/")
    target = data_dir() / "uploads" / safe_name(machine_type, "uploads") / safe_name(machine_id, "id_00")
    target.mkdir(parents=True, exist_ok=True)
    result = StoredUploads()
    for name, content in files:
        if len(content) > max_bytes:
            detail = f"{len(content) / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit"
            result.refused.append({"path": name, "reason": "too_large", "detail": detail})
            continue
        path = target / safe_name(name, "upload.wav")
        stem, suffix, n = path.stem, path.suffix, 1
        while path.exists():
            path = target / f"{stem}_{n}{suffix}"
            n += 1
        path.write_bytes(content)
        result.paths.append(str(path))
    return result
