"""Where trained detectors live on disk, and loading them once per process."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from core.detectors import Detector
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


@lru_cache(maxsize=16)
def load_detector(artifact_path: str) -> Detector:
    """The detector saved in ``artifact_path`` (cached: Keras models take a while to load)."""
    return Detector.load(artifact_path)
