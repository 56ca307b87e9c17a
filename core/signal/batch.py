"""Feature extraction over many files at once, on every core, skipping and recording bad files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

import numpy as np

from core.errors import BadInputError
from core.parallel import Progress, map_guarded
from core.signal.audio import load_clip
from core.signal.features import FeatureParams, features_for


@dataclass
class FeatureBatch:
    """Features per readable file, ``(n_vectors, n_mels * frames)`` float32 each, and the files refused."""

    features: dict[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, BadInputError] = field(default_factory=dict)


Opener = Callable[[str], BinaryIO | None]
"""Called with a clip's stored path: an open binary file of its bytes (closed after use), or ``None`` to read the
path from disk.  It must be picklable (a module-level function) to run in worker processes."""


def file_features(
    path: str, params: FeatureParams = FeatureParams(), channel: int = 0, opener: Opener | None = None
) -> np.ndarray:
    """Read ``channel`` of ``path`` (through ``opener`` when given: clips stored elsewhere than on disk, e.g.
    ``s3://`` URIs) and return its log-mel frame features ``(n_vectors, params.dims)`` float32.

    The samples go to this thread's reused buffer (``load_clip(reuse_buffer=True)``): only the features
    outlive the call."""
    fileobj = opener(path) if opener is not None else None
    try:
        clip = load_clip(path, channel, min_samples=params.min_samples, reuse_buffer=True, fileobj=fileobj)
    finally:
        if fileobj is not None:
            fileobj.close()
    try:
        return features_for(clip.signal, clip.sr, params)
    except BadInputError as exc:
        raise exc.with_path(path) from None


def extract_features(
    paths: list[str],
    params: FeatureParams = FeatureParams(),
    *,
    channel: int = 0,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    opener: Opener | None = None,
) -> FeatureBatch:
    """Features for every file in ``paths`` (read through ``opener`` when given, see :func:`file_features`);
    a bad file is recorded in ``failures`` and the rest go on."""
    batch = FeatureBatch()
    work = partial(file_features, params=params, channel=channel, opener=opener)
    for index, result in map_guarded(work, paths, n_jobs=n_jobs, progress=progress):
        if isinstance(result, BadInputError):
            batch.failures[paths[index]] = result
        else:
            batch.features[paths[index]] = result
    return batch
