"""Train/test splits without leakage.

A layout's hint (DCASE's ``train``/``test`` folders) is honoured as it is.  Where a
layout gives none (MIMII, plain folders), the split is a deterministic function of
the clip's content hash: a fixed share of the normal clips trains, every abnormal
clip is kept for testing, and unlabelled clips are in neither.  Pure computation.
"""

from __future__ import annotations

import hashlib

TRAIN_FRACTION = 0.8
SPLIT_SALT = "split-v1"


def assign_split(content_hash: str, label: str, layout_split: str, train_fraction: float = TRAIN_FRACTION) -> str:
    """``train``, ``test`` or ``none`` for one clip.

    Honours ``layout_split`` when it is ``train``/``test``; otherwise abnormal clips
    go to ``test``, unlabelled ones to ``none``, and normal ones to ``train`` with
    probability ``train_fraction``, decided by their content hash (same clip, same split).
    """
    if layout_split in ("train", "test"):
        return layout_split
    if label == "abnormal":
        return "test"
    if label != "normal":
        return "none"
    digest = hashlib.sha256(f"{SPLIT_SALT}:{content_hash}".encode()).digest()
    return "train" if int.from_bytes(digest[:8], "big") / 2**64 < train_fraction else "test"
