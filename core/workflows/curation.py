"""Which clips a supervised dataset is made of: curated labels, balanced per machine, split by group.

A clip's curated label is its label under the label policy (:mod:`core.workflows.labels`): an
adjudication, the pilot team's verdict or the ground truth the dataset layout gives; ``prefer`` chooses
which wins when the team and the layout both give one, and every clip records which one did and how many
people stand behind it (its label quality: ground truth, single, double, adjudicated), and whether the
label is trusted; ``trusted_only`` keeps the trusted ones.  "Unsure" verdicts are no label and disputed
clips have none until adjudicated.  Each machine is then balanced by undersampling its
larger class (optionally capped), and split into train and test by *group*: versions of
one recording (MIMII ships each at -6, 0 and 6 dB under the same file name) share a
group, so near-duplicates never straddle the split.  The same seed gives the same result.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

import numpy as np
from sqlalchemy.orm import Session

from core.errors import BadInputError, Reason
from core.vocabulary import CLASSES, LabelQuality, Prefer
from core.workflows.catalogue import machines_named
from core.workflows.labels import decide, labels_for_machines
from db.queries import clips_newest_first

PREFER = tuple(p.value for p in Prefer)
MIN_PER_CLASS = 2  # per machine, after balancing: one image for train and one for test
RECOMMENDED_PER_CLASS = 20  # per machine: below this a supervised model learns little


@dataclass(frozen=True)
class CuratedClip:
    """A clip with its curated label; ``source`` is ``"verdict"``, ``"adjudication"`` or ``"ground truth"``,
    ``quality`` one of :class:`~core.vocabulary.LabelQuality` (``"single"``, ``"double"``, ``"adjudicated"``,
    ``"ground truth"``)."""

    clip_id: int
    path: str
    machine: str
    label: str
    source: str
    labelled_at: datetime
    conflict: bool  # the team's label and the ground truth disagree
    quality: str = LabelQuality.GROUND_TRUTH.value
    trusted: bool = True

    @property
    def group(self) -> str:
        """Near-duplicate group: same machine, label and file name (MIMII's SNR versions of one take)."""
        return f"{self.machine}|{self.label}|{PurePath(self.path).name}"

    @property
    def image_name(self) -> str:
        """A file name for its image, unique per clip and safe on every file system."""
        raw = f"{self.machine.replace('/', '_')}_{self.clip_id}_{PurePath(self.path).stem}"
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)
        return f"{stem[:120]}.png"


@dataclass(frozen=True)
class MachineCounts:
    """Curated clips of one machine per class, and how many the balanced dataset keeps."""

    machine: str
    available: dict[str, int]
    kept: dict[str, int]

    @property
    def sufficient(self) -> bool:
        return all(self.kept.get(c, 0) >= MIN_PER_CLASS for c in CLASSES)

    @property
    def advice(self) -> str:
        have = {c: self.available.get(c, 0) for c in CLASSES}
        short = {c: MIN_PER_CLASS - n for c, n in have.items() if n < MIN_PER_CLASS}
        if short:
            need = " and ".join(f"{n} more {c}" for c, n in short.items())
            return f"left out: needs {need} curated clip(s)"
        smallest = min(self.kept.values())
        if smallest < RECOMMENDED_PER_CLASS:
            return f"usable, but {smallest} per class is few; {RECOMMENDED_PER_CLASS}+ is recommended"
        return "enough"


def curated_label(verdict: str | None, truth: str, prefer: Prefer | str) -> tuple[str, str] | None:
    """``(label, source)`` from one verdict and a ground truth under the label policy, or None without a label.

    ``verdict`` is ``normal``/``abnormal``/``unsure`` or None; ``truth`` is the clip's layout label
    (``unknown`` when the layout says nothing).  See :func:`core.workflows.labels.decide`.
    """
    decision = decide(truth, [verdict] if verdict else [], _prefer(prefer))
    return (decision.label.value, decision.source.value) if decision.label else None


def _prefer(prefer: str) -> Prefer:
    try:
        return Prefer(prefer)
    except ValueError:
        raise BadInputError(Reason.INVALID_PARAMETER, f"prefer must be one of {PREFER}, got {prefer!r}") from None


def curated_clips(
    session: Session, machine: str | None = None, prefer: Prefer | str = Prefer.VERDICTS, trusted_only: bool = False
) -> list[CuratedClip]:
    """Every clip of the matching machines that has a label under the label policy (with ``prefer``
    deciding between the team's label and ground truth), trusted labels only with ``trusted_only``, ordered by
    machine then path.

    Disputed clips (annotators say normal and abnormal: the review queue) have no label until an adjudication
    settles them; :func:`disputed_clips` names them.
    """
    out = []
    for m in machines_named(session, machine):
        clips = clips_newest_first(session, m.id)
        labels = labels_for_machines(session, clips, [m.id], _prefer(prefer))
        for clip in clips:
            found = labels[clip.id]
            if found.label is None or (trusted_only and not found.trusted):
                continue
            when = found.labelled_at or clip.ingested_at
            out.append(CuratedClip(clip.id, clip.path, m.key, found.label.value, found.source.value, when,
                                   found.conflict, found.quality.value, found.trusted))  # fmt: skip
    return sorted(out, key=lambda c: (c.machine, c.path, c.clip_id))


def disputed_clips(session: Session, machine: str | None = None) -> list[int]:
    """Ids of the matching machines' disputed clips (see :mod:`core.workflows.labels`)."""
    out = []
    for m in machines_named(session, machine):
        clips = clips_newest_first(session, m.id)
        out += [clip_id for clip_id, found in labels_for_machines(session, clips, [m.id]).items() if found.disputed]
    return sorted(out)


def balance(
    clips: list[CuratedClip], *, seed: int = 0, cap: int | None = None
) -> tuple[list[CuratedClip], list[MachineCounts]]:
    """Per machine, the same number of clips of each class: the smaller class's count (at most
    ``cap``), drawn at random with ``seed`` from the larger.  Machines lacking
    :data:`MIN_PER_CLASS` clips of a class are left out and say so in their counts."""
    if cap is not None and cap < MIN_PER_CLASS:
        raise BadInputError(Reason.INVALID_PARAMETER, f"cap must be at least {MIN_PER_CLASS}, got {cap}")
    rng = np.random.default_rng(seed)
    by_machine: dict[str, dict[str, list[CuratedClip]]] = defaultdict(lambda: {c: [] for c in CLASSES})
    for clip in clips:
        by_machine[clip.machine][clip.label].append(clip)
    kept, counts = [], []
    for machine in sorted(by_machine):
        classes = by_machine[machine]
        available = {c: len(classes[c]) for c in CLASSES}
        n = min(available.values()) if cap is None else min(*available.values(), cap)
        if n < MIN_PER_CLASS:
            counts.append(MachineCounts(machine, available, {c: 0 for c in CLASSES}))
            continue
        for label in CLASSES:
            chosen = rng.choice(len(classes[label]), size=n, replace=False)
            kept += [classes[label][i] for i in sorted(chosen)]
        counts.append(MachineCounts(machine, available, {c: n for c in CLASSES}))
    return kept, counts


def grouped_split(
    clips: list[CuratedClip], *, test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[CuratedClip], list[CuratedClip]]:
    """``(train, test)``: per machine and class, whole groups go to one side, about
    ``test_fraction`` of the groups to test and at least one group to each side when
    there are two or more."""
    if not 0.0 < test_fraction < 1.0:
        raise BadInputError(Reason.INVALID_PARAMETER, f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    cells: dict[tuple[str, str], dict[str, list[CuratedClip]]] = defaultdict(lambda: defaultdict(list))
    for clip in clips:
        cells[(clip.machine, clip.label)][clip.group].append(clip)
    train, test = [], []
    for cell in sorted(cells):
        groups = sorted(cells[cell])
        order = rng.permutation(len(groups))
        n_test = int(round(test_fraction * len(groups)))
        if len(groups) >= 2:
            n_test = min(max(n_test, 1), len(groups) - 1)
        for rank, index in enumerate(order):
            (test if rank < n_test else train).extend(cells[cell][groups[index]])
    return train, test
