"""How far the annotators agree, per machine and per pair of annotators, and how often an adjudication
overruled each of them: a report for managers (:attr:`core.access.Action.VIEW_AUDIT`).

The figures read each annotator's standing verdict (:mod:`core.workflows.labels`), ``normal``, ``abnormal``
and ``unsure`` as three nominal categories, on the clips that two or more annotators judged:

* **raw agreement**: the share of pairs of verdicts on one clip that say the same;
* **Cohen's kappa** (:func:`sklearn.metrics.cohen_kappa_score`): per annotator pair on the clips both judged
  (the first name in alphabetical order as rater one); per machine over every pair of verdicts on a clip
  (the earlier verdict as rater one), so a machine's figure pools its pairs;
* **Krippendorff's alpha** (:func:`krippendorff.alpha`, nominal) over all annotators of a machine, a clip a
  unit and each annotator a coder, with the verdicts a coder did not give missing.

Each figure comes with the number of clips (and pairs) behind it, and is None where it is undefined (fewer
than two clips, or a single category used by everyone: chance agreement is then total).  Per annotator: on
how many adjudicated clips their standing verdict said normal or abnormal, and how often the adjudication
said otherwise (an ``unsure`` is never overruled).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from itertools import combinations

import numpy as np

from core.access import Action, Actor, require
from core.vocabulary import Verdict
from core.workflows.labels import ClipLabel, labels_for_machines
from db.queries import clips_newest_first, machines_matching
from db.session import session_scope

CATEGORIES = tuple(Verdict)  # normal, abnormal, unsure: nominal codes 0, 1, 2 for Krippendorff's alpha
Table = Mapping[int, Mapping[str, str]]  # {clip_id: {annotator: standing verdict}}


def cohen_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two raters' verdicts on the same clips (scikit-learn's), or None when undefined."""
    if len(first) < 2 or len(set(first) | set(second)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score  # scikit-learn only when a report is asked for

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(first, second))
    return None if math.isnan(value) else value


def krippendorff_alpha(table: Table) -> float | None:
    """Krippendorff's alpha (nominal) of the annotators (coders) over the clips (units), or None when undefined."""
    import krippendorff

    coders = sorted({who for verdicts in table.values() for who in verdicts})
    units = sorted(table)
    data = np.full((len(coders), len(units)), np.nan)
    for j, clip_id in enumerate(units):
        for i, who in enumerate(coders):
            if who in table[clip_id]:
                data[i, j] = CATEGORIES.index(Verdict(table[clip_id][who]))
    pairable = sum(np.count_nonzero(~np.isnan(data[:, j])) >= 2 for j in range(len(units)))
    if pairable < 2 or len(set(data[~np.isnan(data)].tolist())) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return None if math.isnan(value) else value


def _raw(pairs: list[tuple[str, str]]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def pair_figures(table: Table) -> list[dict]:
    """Per annotator pair (names in alphabetical order): the clips both judged, raw agreement, Cohen's kappa."""
    names = sorted({who for verdicts in table.values() for who in verdicts})
    out = []
    for a, b in combinations(names, 2):
        both = [(v[a], v[b]) for _, v in sorted(table.items()) if a in v and b in v]
        if both:
            out.append({"annotators": [a, b], "n_clips": len(both), "agreement": _raw(both),
                        "kappa": cohen_kappa([x for x, _ in both], [y for _, y in both])})  # fmt: skip
    return out


def agreement_figures(table: Table, order: Mapping[int, list[str]] | None = None) -> dict:
    """The machine-level figures of a verdict table (clips judged by fewer than two annotators are ignored):
    ``{"n_double", "n_pairs", "agreement", "kappa", "alpha", "pairs"}``.  ``order`` gives each clip's
    annotators in the order they judged it (default: alphabetical), rater one of each pair being the earlier."""
    double = {clip_id: dict(v) for clip_id, v in table.items() if len(v) >= 2}
    pairs = []
    for clip_id, verdicts in sorted(double.items()):
        who = (order or {}).get(clip_id) or sorted(verdicts)
        pairs += [(verdicts[a], verdicts[b]) for a, b in combinations(who, 2)]
    return {
        "n_double": len(double),
        "n_pairs": len(pairs),
        "agreement": _raw(pairs),
        "kappa": cohen_kappa([a for a, _ in pairs], [b for _, b in pairs]),
        "alpha": krippendorff_alpha(double),
        "pairs": pair_figures(double),
    }


def overruled(labels: Mapping[int, ClipLabel]) -> list[dict]:
    """Per annotator: their verdicts (normal, abnormal, unsure), how many said normal or abnormal on an
    adjudicated clip, and how many of those the adjudication overruled."""
    stats: dict[str, dict] = {}
    for found in labels.values():
        for who, verdict in found.verdicts.items():
            row = stats.setdefault(who, {"annotator": who, "n_verdicts": 0, "n_adjudicated": 0, "n_overruled": 0})
            row["n_verdicts"] += 1
            if found.ruling is not None and verdict.verdict != Verdict.UNSURE:
                row["n_adjudicated"] += 1
                row["n_overruled"] += verdict.verdict != found.ruling.verdict
    for row in stats.values():
        row["overruled_rate"] = row["n_overruled"] / row["n_adjudicated"] if row["n_adjudicated"] else None
    return [stats[who] for who in sorted(stats)]


def agreement_report(machine: str | None = None, *, actor: Actor | None = None, url: str | None = None) -> list[dict]:
    """Per matching machine (``type/id``, ``type`` or all): ``{"machine", "n_double", "n_pairs", "agreement",
    "kappa", "alpha", "pairs": [{"annotators", "n_clips", "agreement", "kappa"}], "annotators":
    [{"annotator", "n_verdicts", "n_adjudicated", "n_overruled", "overruled_rate"}]}``.

    Needs :attr:`~core.access.Action.VIEW_AUDIT` (managers and admins)."""
    require(actor, Action.VIEW_AUDIT)
    out = []
    with session_scope(url) as session:
        for m in machines_matching(session, machine):
            labels = labels_for_machines(session, clips_newest_first(session, m.id), [m.id])
            table = {c: {who: v.verdict.value for who, v in found.verdicts.items()} for c, found in labels.items()}
            order = {c: [v.annotator for v in sorted(found.verdicts.values(), key=lambda v: v.annotation_id)]
                     for c, found in labels.items()}  # fmt: skip
            out.append({"machine": m.key, **agreement_figures(table, order), "annotators": overruled(labels)})
    return out
