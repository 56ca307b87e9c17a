"""Train/test splits without leakage.

A layout's hint (DCASE's ``train``/``test`` folders) is honoured as it is.  Where a
layout gives none (MIMII, plain folders), the split is a deterministic function of
the clip's recording (MIMII's SNR versions of one take share it) or content hash: a
fixed share of the normal clips trains, every abnormal clip is kept for testing, and
unlabelled clips are in neither.  Pure computation.
"""

from __future__ import annotations

import hashlib

from core.vocabulary import Label, Split

TRAIN_FRACTION = 0.8
SPLIT_SALT = "split-v1"


def split_key(content_hash: str, layout: str, machine: str, label: str, file_name: str) -> str:
    """What decides a clip's assigned split: its recording, not its bytes, where the layout says so.

    MIMII ships each recording at -6, 0 and 6 dB under the same file name: those versions
    share a key (machine, label, file name), so they never straddle train and test.  Other
    layouts use the content hash.
    """
    return f"mimii:{machine}/{label}/{file_name}" if layout == "mimii" else content_hash


def assign_split(key: str, label: str, layout_split: str, train_fraction: float = TRAIN_FRACTION) -> str:
    """``train``, ``test`` or ``none`` for one clip.

    Honours ``layout_split`` when it is ``train``/``test``; otherwise abnormal clips
    go to ``test``, unlabelled ones to ``none``, and normal ones to ``train`` with
    probability ``train_fraction``, decided by ``key`` (:func:`split_key`: same
    recording, same split).
    """
    if layout_split in (Split.TRAIN, Split.TEST):
        return Split(layout_split)
    if label == Label.ABNORMAL:
        return Split.TEST
    if label != Label.NORMAL:
        return Split.NONE
    digest = hashlib.sha256(f"{SPLIT_SALT}:{key}".encode()).digest()
    return Split.TRAIN if int.from_bytes(digest[:8], "big") / 2**64 < train_fraction else Split.TEST
