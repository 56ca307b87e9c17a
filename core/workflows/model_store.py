"""Where trained detectors live on disk, and loading them once per process."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from core.detection.registry import Detector
from db.session import data_dir


def artifact_dir(detector: str, scope: str, version: int) -> Path:
    """``DATA_DIR/models/<detector>/<scope>-<hash>/v<version>``.

    The scope (``fan/id_00``) is made safe as one folder name (``fan__id_00``) and
    followed by 8 hex digits of its hash, so two scopes that read alike once made
    safe (``fan/id 00``, ``fan/id_00``) never share a folder.
    """
    safe_scope = re.sub(r"[^A-Za-z0-9_.-]", "_", scope.replace("/", "__"))
    digest = hashlib.sha256(scope.encode()).hexdigest()[:8]
    return data_dir() / "models" / detector / f"{safe_scope}-{digest}" / f"v{version}"


STAGING_PREFIX = ".staging-"
STALE_STAGING_S = 3600.0  # a staging folder this old belongs to a run that died


def stage_artifact(detector: str, scope: str, save: Callable[[Path], object]) -> Path:
    """Write a model's files with ``save(folder)`` into a new hidden folder beside its future versions.

    Nothing refers to it until :func:`publish_artifact` renames it, so a run killed while
    writing leaves only a staging folder, never a half-written version.  Staging folders
    of runs that died over an hour ago are removed here.
    """
    parent = artifact_dir(detector, scope, 0).parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f"{STAGING_PREFIX}*"):
        if time.time() - stale.stat().st_mtime > STALE_STAGING_S:
            shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
    try:
        save(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def publish_artifact(staging: Path, folder: Path) -> Path:
    """Move a staged model to ``folder`` in one rename (call it in the transaction that registers the model).

    A folder already there was left by a run killed between this rename and its commit:
    no model row refers to it (versions are numbered from committed rows), so it is replaced.
    """
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return folder


@contextmanager
def staged_artifact(detector: str, scope: str, save: Callable[[Path], object]) -> Iterator[Callable[[int], Path]]:
    """Stage a model's files (:func:`stage_artifact`), and yield ``publish(version) -> folder`` to call in
    the transaction that registers the version; the staging folder is removed if it was not published."""
    staging = stage_artifact(detector, scope, save)
    try:
        yield lambda version: publish_artifact(staging, artifact_dir(detector, scope, version))
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # still there only when publishing failed


@lru_cache(maxsize=16)
def load_detector(artifact_path: str) -> Detector:
    """The detector saved in ``artifact_path`` (cached: Keras models take a while to load)."""
    return Detector.load(artifact_path)
