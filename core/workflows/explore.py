"""Everything a page needs to show one clip: its facts, score, errors over time and band,
verdict history (with the final verdicts of adjudicators), and a typical normal clip of the same machine to compare
with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from core.vocabulary import Label, Split
from db.models import Clip
from db.queries import (
    active_threshold,
    adjudications_of_clips,
    clip_scores,
    score_details,
    scored_clips,
    verdict_history,
)
from db.session import session_scope


@dataclass(frozen=True)
class Verdict:
    annotator: str
    verdict: str
    anomaly_type: str | None
    note: str
    created_at: datetime
    is_undo: bool
    role: str | None = None  # the annotator's role when they gave it (None: recorded before roles were)


@dataclass(frozen=True)
class Ruling:
    """A final verdict on the clip (an adjudication, :mod:`core.workflows.review`): the latest one stands."""

    adjudicator: str
    role: str
    verdict: str
    anomaly_type: str | None
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class ClipDetails:
    clip_id: int
    path: str
    machine: str
    label: str
    split: str
    duration_s: float
    n_channels: int
    sample_rate: int
    model_id: int | None = None
    score: float | None = None
    threshold: float | None = None
    frame_errors: list[float] = field(default_factory=list)
    band_errors: list[float] = field(default_factory=list)
    history: list[Verdict] = field(default_factory=list)
    explanation_version: int = 1  # of the detector's explain() that computed the errors (stored before: 1)
    rulings: list[Ruling] = field(default_factory=list)  # oldest first: the last one stands

    @property
    def flagged(self) -> bool:
        return self.score is not None and self.threshold is not None and self.score > self.threshold


def clip_details(clip_id: int, *, url: str | None = None) -> ClipDetails | None:
    """The clip's facts with its active model's score and errors, or ``None`` if there is no such clip."""
    with session_scope(url) as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            return None
        model = clip.machine.active_model
        value = threshold = None
        details: dict = {}
        if model is not None:
            value = clip_scores(session, model.id, [clip_id]).get(clip_id)
            current = active_threshold(session, model.id)
            threshold = current.value if current else None
            details = score_details(session, model.id, clip_id) or {}
        history = [
            Verdict(a.annotator, a.verdict, a.anomaly_type, a.note, a.created_at, a.undoes_id is not None, a.role)
            for a in verdict_history(session, clip_id)
        ]
        rulings = [
            Ruling(r.adjudicator, r.role, r.verdict, r.anomaly_type, r.reason, r.created_at)
            for r in adjudications_of_clips(session, [clip_id])
        ]
        return ClipDetails(
            clip.id, clip.path, clip.machine.key, clip.label, clip.split, clip.duration_s, clip.n_channels,
            clip.sample_rate, model.id if model else None, value, threshold,
            details.get("frame_errors", []), details.get("band_errors", []), history,
            int(details.get("explanation_version", 1)), rulings,
        )  # fmt: skip


def typical_normal_clip(clip_id: int, *, url: str | None = None) -> int | None:
    """A normal training clip of the same machine whose score is the median of them (its typical sound)."""
    with session_scope(url) as session:
        clip = session.get(Clip, clip_id)
        if clip is None or clip.machine.active_model is None:
            return None
        rows = [
            (c.id, s)
            for c, s in scored_clips(session, clip.machine.active_model.id, [clip.machine_pk])
            if c.label == Label.NORMAL and c.split == Split.TRAIN and c.id != clip_id
        ]
    if not rows:
        return None
    scores = np.array([s for _, s in rows])
    return rows[int(np.argmin(np.abs(scores - np.median(scores))))][0]
