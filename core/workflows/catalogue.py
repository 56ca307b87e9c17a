"""What the database holds, for pages and commands that list it: machines, clip counts, refused files.

:func:`machines_named` and :func:`machine_named` turn what a user typed (``--machine``) into machines, and
are the one place that refuses a name that matches none: ``no such machine 'X' (known: fan/id_00, ...)``.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.errors import BadInputError, Reason, shown
from db.models import Machine
from db.queries import ClipCount, active_threshold, machine_by_key, machine_scores, machines_matching
from db.queries import clip_counts as _clip_counts
from db.queries import recent_rejections as _recent_rejections
from db.session import database_url, session_scope

KNOWN_SHOWN = 10  # machines an error names before "and N more"


def _known(session: Session) -> str:
    """The machines there are, for an error message: ``known: fan/id_00, ...`` (the first few)."""
    keys = [m.key for m in machines_matching(session)]
    if not keys:
        return "no machines yet: ingest clips first"
    more = f" and {len(keys) - KNOWN_SHOWN} more" if len(keys) > KNOWN_SHOWN else ""
    return f"known: {', '.join(keys[:KNOWN_SHOWN])}{more}"


def machines_named(session: Session, spec: str | None) -> list[Machine]:
    """The machines ``spec`` names, sorted by key: one machine (``type/id``), every machine of a ``type``,
    or every machine when ``spec`` is None or empty.  Names are compared exactly (``%`` and ``_`` are
    plain characters).  Raises :class:`BadInputError` ``no such machine 'X' (known: ...)`` when a given
    ``spec`` names none."""
    found = machines_matching(session, spec)
    if spec and not found:
        raise BadInputError(Reason.INVALID_PARAMETER, f"no such machine {shown(spec, 60)} ({_known(session)})")
    return found


def machine_named(session: Session, spec: str) -> Machine:
    """The one machine ``spec`` (``type/id``) names.  Raises :class:`BadInputError` ``no such machine 'X'
    (known: ...)`` when none has that name, and says so when ``spec`` names a whole type instead."""
    found = machine_by_key(session, spec)
    if found is not None:
        return found
    if spec and "/" not in spec.rstrip("/") and machines_matching(session, spec):
        problem = f"{shown(spec, 60)} is a machine type; give one machine as TYPE/ID"
    else:
        problem = f"no such machine {shown(spec, 60)}"
    raise BadInputError(Reason.INVALID_PARAMETER, f"{problem} ({_known(session)})")


def machine_keys(*, require_model: bool = False, url: str | None = None) -> list[str]:
    """Every machine's ``type/id``, sorted; with ``require_model`` only those with an active model."""
    with session_scope(url) as session:
        return [m.key for m in machines_matching(session) if m.active_model_id or not require_model]


def clip_choices(machine: str, *, blind: bool = False, by_score: bool = False, url: str | None = None,
                 ) -> dict[int, str]:  # fmt: skip
    """``{clip_id: "#id · score 12.3, flagged · label · split · file name"}`` of a machine's clips (empty for an
    unknown machine), in clip-id order or, ``by_score``, the highest score first (unscored clips last); the score
    is the active model's and "flagged" says it is above the active threshold.  ``blind`` (blind review) leaves
    out the label and the file name."""
    with session_scope(url) as session:
        found = machine_by_key(session, machine)
        if found is None:
            return {}
        model_id = found.active_model_id
        scores = machine_scores(session, model_id, found.id) if model_id else {}
        threshold = active_threshold(session, model_id) if model_id else None
        clips = sorted(found.clips, key=lambda c: (-scores.get(c.id, float("-inf")), c.id) if by_score else c.id)
        return {c.id: " · ".join([f"#{c.id}", _scored(scores.get(c.id), threshold)]
                                 + ([] if blind else [c.label, c.split, c.path.rsplit("/", 1)[-1]])) for c in clips}


def _scored(score: float | None, threshold) -> str:
    """``"score 12.3, flagged"``, ``"score 4.1"`` or ``"not scored"``."""
    if score is None:
        return "not scored"
    return f"score {score:.4g}" + (", flagged" if threshold is not None and score > threshold.value else "")


def database_shown() -> str:
    """The database's URL as it may be shown: its password hidden."""
    return make_url(database_url()).render_as_string(hide_password=True)


def clip_counts(*, url: str | None = None) -> list[ClipCount]:
    """Clips per machine type, machine id, label and split, sorted."""
    with session_scope(url) as session:
        return _clip_counts(session)


def recent_rejections(limit: int = 50, *, url: str | None = None) -> list[dict]:
    """The latest files refused at ingest, newest first: ``{"path", "reason", "detail", "seen at"}``."""
    with session_scope(url) as session:
        return [{"path": r.path, "reason": r.reason, "detail": r.detail, "seen at": r.seen_at}
                for r in _recent_rejections(session, limit)]  # fmt: skip
