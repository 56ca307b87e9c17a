"""Feature extraction over many files at once, on every core, skipping and recording bad files."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

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


def file_features(path: str, params: FeatureParams = FeatureParams(), channel: int = 0) -> np.ndarray:
    """Read ``channel`` of ``path`` and return its log-mel frame features ``(n_vectors, params.dims)``.

    The samples go to this thread's reused buffer (``load_clip(reuse_buffer=True)``): only the features
    outlive the call."""
    clip = load_clip(path, channel, min_samples=params.min_samples, reuse_buffer=True)
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
) -> FeatureBatch:
    """Features for every file in ``paths``; a bad file is recorded in ``failures`` and the rest go on."""
    batch = FeatureBatch()
    work = partial(file_features, params=params, channel=channel)
    for index, result in map_guarded(work, paths, n_jobs=n_jobs, progress=progress):
        if isinstance(result, BadInputError):
            batch.failures[paths[index]] = result
        else:
            batch.features[paths[index]] = result
    return batch
