"""Choosing a detector per machine without peeking: from its training clips only.

The test split is never looked at.  Cross-validation on the machine's normal training clips
(leave-one-out up to 12 clips, else 5 folds) fits every candidate on the other folds and
scores the held-out normal clips against **pseudo-anomalies**: the held-out clips with
synthetic faults added in the log-mel domain (a tone in one band, impulses, band-limited
noise, a gain change) and, for machine types with two or more machines, clips of the other
machines, and, once the team has confirmed faults of this machine outside the test split,
those clips (``faults``).  Each candidate's pseudo-AUC is the share of (normal, pseudo-anomaly)
pairs it ranks right, with a standard error over folds.  Candidates are ranked by a **weighted
pseudo-AUC**: each synthetic fault kind counts alike, and, when the type has other machines,
their clips (real sounds of the same type) weigh :data:`OTHER_WEIGHT` of that; confirmed faults,
the machine's own real faults, weigh :data:`FAULT_WEIGHT` of the whole.  With other-machine
evidence the best candidate is chosen alone; without it, the best is chosen when it beats the
runner-up by more than twice their standard errors combined, otherwise the close ones form a
rank-averaged :class:`~core.detection.ensemble.EnsembleDetector`.

Pseudo-anomalies are not real faults: the evidence says which detector separates
*plausible* changes from this machine's normal variation, which on few clips is a guess,
and :class:`Choice` says so.  Confirmed faults are real, but a first day's few; they inform
the choice, and the test split stays unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.detection.base import FrontEnd
from core.detection.ensemble import fit_detector, rank_against
from core.detection.metrics import roc_auc
from core.detection.registry import detector_class
from core.errors import BadInputError, Reason
from core.signal.features import FeatureParams, stack_frames, unstack_frames

# label -> (registered detector, hyper-parameters): the fast candidates of the automatic choice
CANDIDATES: dict[str, tuple[str, dict]] = {
    "mahalanobis": ("mahalanobis", {}),
    "band_deviation_max": ("band_deviation", {"pooling": "max"}),
    "band_deviation_mean": ("band_deviation", {"pooling": "mean"}),
    "frame_knn_top10": ("frame_knn", {"pooling": "top10"}),
    "frame_gmm_top10": ("frame_gmm", {"pooling": "top10"}),
    # on PCEN columns (steady sound levelled, short events lifted: what tells a noisy valve or slider); not band
    # deviation, which compares the levels PCEN takes out, nor frame GMM, never chosen on PCEN in 60 real few-shot
    # splits and the dearest to cross-validate
    "mahalanobis_pcen": ("mahalanobis", {"front_end": "pcen"}),
    "frame_knn_top10_pcen": ("frame_knn", {"pooling": "top10", "front_end": "pcen"}),
}
MACHINE_ID_CANDIDATE = ("machine_id", {"epochs": 10})  # added when the type has other machines
FAULT_KINDS = ("tone", "impulses", "band_noise", "gain")
MIN_CLIPS = 4  # cross-validation needs 3 clips to fit on and 1 to hold out
FEW_CLIPS = 8  # below this, say that the choice is a guess
MAX_OTHER_CLIPS = 20  # per other machine, as pseudo-anomalies
OTHER_WEIGHT = 0.75  # share of the other machines' clips in the weighted pseudo-AUC (the synthetic kinds: the rest)
FAULT_WEIGHT = 0.5  # share of this machine's confirmed faults, when there are some (the rest as above)
MAX_FAULT_CLIPS = 20  # confirmed faults used as pseudo-anomalies
FAULTS = "confirmed_faults"  # the evidence kind of the confirmed faults


DETECTOR_NAMES = {"mahalanobis": "Mahalanobis", "band_deviation": "band deviation", "frame_knn": "frame k-NN",
                  "frame_gmm": "frame GMM", "machine_id": "machine-ID classifier", "autoencoder": "autoencoder",
                  "ensemble": "ensemble", "spectrogram_cnn": "spectrogram CNN", "auto": "automatic choice"}  # fmt: skip
POOLING_NAMES = {"max": "max", "mean": "mean", "top10": "top 10%"}
FRONT_END_NAMES = {"log_mel": "log-mel levels", "pcen": "PCEN (steady sound levelled, short events lifted)"}


def detector_name(detector: str) -> str:
    """A registered detector as people read it (``frame_gmm`` -> ``frame GMM``; ``auto`` -> ``automatic choice``);
    the name itself stays what the CLI, the database and the JSON say."""
    return DETECTOR_NAMES.get(detector, detector.replace("_", " "))


def model_name(detector: str, version: int, scope: str | None = None, *, front_end: str | None = None) -> str:
    """A trained model as people read it, the one way pages and reports name one: ``Mahalanobis v2 (fan/id_00)``,
    the brackets saying what it learned from (``scope``; left out when None); a model on PCEN columns says so
    (``Mahalanobis (PCEN) v3 (fan/id_00)``, ``front_end``).  The CLI's ``--detector`` and the JSON keep the code
    name (``mahalanobis``)."""
    pcen = " (PCEN)" if front_end == FrontEnd.PCEN else ""
    name = f"{detector_name(detector)}{pcen} v{version}"
    return f"{name} ({scope})" if scope else name


def name_of(model: Any, *, scope: bool = True) -> str:
    """:func:`model_name` of a stored model (anything with ``detector``, ``version``, ``scope`` and ``front_end``,
    such as a ``DetectorModel`` row); ``scope=False`` leaves the brackets out."""
    return model_name(model.detector, model.version, model.scope if scope else None, front_end=model.front_end)


def candidate_name(label: str) -> str:
    """A candidate of the automatic choice as people read it (``frame_gmm_top10`` -> ``frame GMM (top 10%)``,
    ``frame_knn_top10_pcen`` -> ``frame k-NN (top 10%, PCEN)``); the label itself stays what the JSON says, and
    the choice's note names candidates so."""
    detector, hyper = (CANDIDATES | {"machine_id": MACHINE_ID_CANDIDATE}).get(label, (label, {}))
    pooling = hyper.get("pooling")
    details = [POOLING_NAMES.get(pooling, pooling)] if pooling else []
    details += ["PCEN"] if hyper.get("front_end") == FrontEnd.PCEN else []
    return f"{detector_name(detector)} ({', '.join(details)})" if details else detector_name(detector)


@dataclass
class Choice:
    """The automatic choice for one machine and its evidence (JSON-ready with :meth:`as_dict`).

    ``chosen``: the candidate label (or ``"ensemble"``); ``detector``/``params``: what to train;
    ``evidence``: per candidate ``{"auc", "se", "by_kind": {kind: auc}, "weighted"}`` (pseudo-AUC on held-out
    training clips; ``se`` None from one figure; ``weighted``: :func:`weighted_auc`, what ranks them);
    ``n_fault_clips``: the confirmed faults among the pseudo-anomalies; ``held_out_normal``: the chosen one's
    scores of held-out normal clips (for the first threshold); ``clear``: whether one candidate beat the rest
    beyond the uncertainty; ``note``: the result in words.
    """

    chosen: str
    detector: str
    params: dict[str, Any]
    evidence: dict[str, dict[str, Any]]
    held_out_normal: list[float]
    n_clips: int
    folds: int
    n_other_clips: int
    clear: bool
    note: str
    members: list[str] = field(default_factory=list)
    n_fault_clips: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _power_add(columns: np.ndarray, level_db: np.ndarray | float) -> np.ndarray:
    """``columns`` (dB) with a sound of ``level_db`` (dB, broadcast) added in power."""
    return 10.0 * np.log10(10.0 ** (columns / 10.0) + 10.0 ** (np.asarray(level_db) / 10.0))


def synthetic_fault(features: np.ndarray, kind: str, rng: np.random.Generator, params: FeatureParams) -> np.ndarray:
    """One clip's feature vectors ``(n_vectors, n_mels * frames)`` (dB) with a synthetic fault of ``kind`` added:
    ``tone`` (one band 6 dB above its median level), ``impulses`` (5% of the columns 10 dB louder in every band),
    ``band_noise`` (8 adjacent bands 3 dB above their median level), ``gain`` (every level up or down 3 dB)."""
    n_mels, frames = params.n_mels, params.frames
    columns = unstack_frames(features, n_mels)
    median = np.median(columns, axis=0)
    if kind == "tone":
        band = rng.integers(n_mels)
        columns[:, band] = _power_add(columns[:, band], median[band] + 6.0)
    elif kind == "impulses":
        hit = rng.random(len(columns)) < 0.05
        hit[rng.integers(len(columns))] = True
        columns[hit] = _power_add(columns[hit], columns[hit] + 10.0)
    elif kind == "band_noise":
        low = rng.integers(n_mels - 8)
        columns[:, low : low + 8] = _power_add(columns[:, low : low + 8], median[low : low + 8] + 3.0)
    elif kind == "gain":
        columns += rng.choice([-3.0, 3.0])
    else:
        raise BadInputError(Reason.INVALID_PARAMETER, f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
    return stack_frames(columns.astype(np.float32), frames)


def _folds(n: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i :: n if n <= 12 else 5] for i in range(n if n <= 12 else 5)]


def _split_others(others: Sequence[Sequence[np.ndarray]]) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
    """Each other machine's clips (at most :data:`MAX_OTHER_CLIPS`): the even ones to fit on (machine-ID), the
    odd ones as pseudo-anomalies, so no detector is graded on clips it learned from."""
    groups = [list(g)[:MAX_OTHER_CLIPS] for g in others if len(g) >= 2]
    return [g[0::2] for g in groups], [c for g in groups for c in g[1::2]]


def cross_validate(
    clips: Sequence[np.ndarray],
    candidates: dict[str, tuple[str, dict]],
    *,
    others: Sequence[Sequence[np.ndarray]] = (),
    faults: Sequence[np.ndarray] = (),
    params: FeatureParams = FeatureParams(),
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per candidate label: ``{"normal": [held-out normal scores], "pseudo": [scores], "kinds": [kind per pseudo
    score], "fold_aucs": [pseudo-AUC per fold]}`` from cross-validation on the normal ``clips`` (and ``faults``,
    this machine's confirmed faults, scored by every fold as pseudo-anomalies; no detector learns from them).
    A detector with ``fit_folds`` fits every fold before the folds are scored, more cheaply than a ``fit`` per
    fold (machine_id: one Keras model for all folds; frame_knn: no scores of the training clips)."""
    rng = np.random.default_rng(seed)
    others_fit, others_test = _split_others(others)
    folds = _folds(len(clips), seed)
    out = {label: {"normal": [], "pseudo": [], "kinds": [], "fold_aucs": []} for label in candidates}
    at_once = {label: detector_class(name)(params, **hyper).fit_folds(clips, folds, others=others_fit)
               for label, (name, hyper) in candidates.items()
               if hasattr(detector_class(name), "fit_folds")}  # fmt: skip
    for index, fold in enumerate(folds):
        held = [clips[i] for i in fold]
        train = [c for i, c in enumerate(clips) if i not in set(fold.tolist())]
        pseudo = [(kind, synthetic_fault(c, kind, rng, params)) for c in held for kind in FAULT_KINDS]
        pseudo += [("other_machines", c) for c in others_test] + [(FAULTS, c) for c in faults[:MAX_FAULT_CLIPS]]
        y = np.r_[np.zeros(len(held), bool), np.ones(len(pseudo), bool)]
        queries = held + [p for _, p in pseudo]
        for label, (name, hyper) in candidates.items():
            if label in at_once:  # fitted for every fold above
                scores = at_once[label].fold_decision_function(index, queries)
            else:
                detector = fit_detector(detector_class(name)(params, **hyper), train, others_fit)
                scores = detector.decision_function(queries)
            record = out[label]
            record["normal"] += scores[: len(held)].tolist()
            record["pseudo"] += scores[len(held) :].tolist()
            record["kinds"] += [kind for kind, _ in pseudo]
            record["fold_aucs"].append(roc_auc(y, scores))
        if progress:
            progress(index + 1, len(folds))
    return out


def _evidence(record: dict[str, Any]) -> dict[str, Any]:
    """``{"auc", "se", "by_kind"}`` of one candidate's cross-validation record."""
    aucs = np.asarray(record["fold_aucs"], dtype=np.float64)
    normal, pseudo, kinds = np.asarray(record["normal"]), np.asarray(record["pseudo"]), np.asarray(record["kinds"])
    by_kind = {}
    for kind in dict.fromkeys(record["kinds"]):
        part = pseudo[kinds == kind]
        by_kind[kind] = round(roc_auc(np.r_[np.zeros(normal.size, bool), np.ones(part.size, bool)],
                                      np.r_[normal, part]), 3)  # fmt: skip
    se = round(float(aucs.std(ddof=1) / np.sqrt(aucs.size)), 3) if aucs.size > 1 else None  # None: one figure
    return {"auc": round(float(aucs.mean()), 3), "se": se, "by_kind": by_kind,
            "weighted": round(weighted_auc(by_kind), 3)}  # fmt: skip


def weighted_auc(by_kind: dict[str, float], other_weight: float = OTHER_WEIGHT, fault_weight: float = FAULT_WEIGHT,
                 ) -> float:  # fmt: skip
    """The weighted pseudo-AUC of one candidate from its pseudo-AUC per evidence kind: the mean over the synthetic
    fault kinds, or, with ``other_machines`` evidence, ``other_weight`` (:data:`OTHER_WEIGHT`) times that plus the
    rest times the synthetic mean (a candidate that tells this machine from real sounds of its type counts most);
    with :data:`FAULTS` evidence (confirmed faults of this machine), ``fault_weight`` (:data:`FAULT_WEIGHT`) times
    that plus the rest times the figure without it."""
    synthetic = [auc for kind, auc in by_kind.items() if kind not in ("other_machines", FAULTS)]
    figure = float(np.mean(synthetic)) if synthetic else 0.5
    if "other_machines" in by_kind:
        figure = other_weight * float(by_kind["other_machines"]) + (1.0 - other_weight) * figure
    if FAULTS in by_kind:
        figure = fault_weight * float(by_kind[FAULTS]) + (1.0 - fault_weight) * figure
    return figure


def _ranks_left_out(reference: Sequence[float]) -> np.ndarray:
    """Each reference score's rank among the *other* reference scores, float64 ``(m,)``: how a new normal clip
    ranks.  (Ranked among themselves the references are exactly uniform, and their mean over members bunches at
    0.5, so a threshold fitted to them would flag new normal clips far more often than stated.)"""
    ref = np.asarray(reference, dtype=np.float64)
    return np.array([rank_against(ref[i : i + 1], np.delete(ref, i))[0] for i in range(ref.size)])


def _ensemble_record(records: dict[str, dict[str, Any]], members: list[str]) -> dict[str, Any]:
    """The cross-validation record of the rank-averaged ensemble of ``members`` (ranked against each member's
    held-out normal scores; each held-out normal clip against the others only), pseudo-AUC per fold recomputed
    from the members' fold scores."""
    normal = np.mean([_ranks_left_out(records[m]["normal"]) for m in members], axis=0)
    pseudo = np.mean([rank_against(records[m]["pseudo"], records[m]["normal"]) for m in members], axis=0)
    first = records[members[0]]
    n_folds = len(first["fold_aucs"])
    n_normal, n_pseudo = len(normal) // n_folds, len(pseudo) // n_folds  # every fold holds as many of each
    fold_aucs = []
    if n_normal * n_folds == len(normal) and n_pseudo * n_folds == len(pseudo):
        for f in range(n_folds):
            s = np.r_[normal[f * n_normal : (f + 1) * n_normal], pseudo[f * n_pseudo : (f + 1) * n_pseudo]]
            fold_aucs.append(roc_auc(np.r_[np.zeros(n_normal, bool), np.ones(n_pseudo, bool)], s))
    else:  # uneven folds: one pooled figure
        fold_aucs.append(roc_auc(np.r_[np.zeros(normal.size, bool), np.ones(pseudo.size, bool)], np.r_[normal, pseudo]))
    return {"normal": normal.tolist(), "pseudo": pseudo.tolist(), "kinds": first["kinds"], "fold_aucs": fold_aucs}


def _pick(evidence: dict[str, dict[str, Any]]) -> tuple[list[str], bool]:
    """``(members, clear)``, candidates ranked by weighted pseudo-AUC: the best alone when it beats the runner-up by
    more than twice their combined standard error (``clear``) or when other machines' clips are evidence (on the
    real few-shot splits an ensemble never beat the best single candidate there); else the candidates within
    that margin of the best (2 or 3 of them)."""
    ranked = sorted(evidence, key=lambda label: -evidence[label]["weighted"])
    if len(ranked) < 2:
        return ranked, True
    best, second = evidence[ranked[0]], evidence[ranked[1]]
    noise = 2.0 * float(np.sqrt(np.nan_to_num(best["se"] or 0.0) ** 2 + np.nan_to_num(second["se"] or 0.0) ** 2))
    clear = best["weighted"] - second["weighted"] > noise
    if clear or "other_machines" in best["by_kind"]:
        return ranked[:1], clear
    close = [label for label in ranked if evidence[label]["weighted"] >= best["weighted"] - noise]
    return close[: max(2, min(3, len(close)))], False


def _figure(evidence: dict[str, dict[str, Any]], label: str) -> str:
    """``"frame GMM (top 10%) 0.912 (pseudo-AUC 0.884 ± 0.021)"``: the candidate's name, the weighted figure
    that ranks, then the pooled one and its standard error over folds (left out when there was one figure only);
    three decimals, as the Compare page's table, so that a reader can check the margin rule of :func:`_pick`."""
    e = evidence[label]
    spread = f" ± {e['se']:.3f}" if e["se"] is not None and np.isfinite(e["se"]) else ""
    return f"{candidate_name(label)} {e['weighted']:.3f} (pseudo-AUC {e['auc']:.3f}{spread})"


def _note(n: int, chosen: str, evidence: dict[str, dict[str, Any]], members: list[str], clear: bool,
          n_other: int = 0) -> str:  # fmt: skip
    """The choice in words: what won on which figure, how sure, and what the pseudo-anomalies were."""
    ranked = sorted((k for k in evidence if k != "ensemble"), key=lambda k: -evidence[k]["weighted"])
    if chosen != "ensemble":
        text = (f"{candidate_name(chosen)} separates held-out normal training clips from pseudo-anomalies best "
                f"(weighted pseudo-AUC {_figure(evidence, chosen)}")  # fmt: skip
        text += f"; next {_figure(evidence, ranked[1])})" if len(ranked) > 1 else ")"
        if not clear:
            text += (", not beyond twice their combined standard error; with other machines of its type to compare "
                     "with, the best is chosen alone (its pseudo-AUC on their clips: "
                     f"{evidence[chosen]['by_kind']['other_machines']:.2f})")  # fmt: skip
    else:
        text = (f"No candidate is clearly best ({', '.join(_figure(evidence, m) for m in members)} are within twice "
                f"their combined standard error of the best): a rank-averaged ensemble of them (weighted pseudo-AUC "
                f"{_figure(evidence, 'ensemble')})")  # fmt: skip
    if n < FEW_CLIPS:
        text += f". Only {n} normal training clips: this choice is a guess; label clips and retrain to firm it up"
    kinds = "synthetic faults" + (" and other machines' clips" if n_other else "")
    if FAULTS in evidence[chosen]["by_kind"]:
        return text + (f". The team's confirmed faults of this machine weigh {FAULT_WEIGHT:.0%} (pseudo-AUC "
                       f"{evidence[chosen]['by_kind'][FAULTS]:.2f} on them); the other pseudo-anomalies are {kinds}, "
                       "not real faults")  # fmt: skip
    return text + f". Pseudo-anomalies are {kinds}, not real faults"


def choose_detector(
    clips: Sequence[np.ndarray],
    others: Sequence[Sequence[np.ndarray]] = (),
    *,
    faults: Sequence[np.ndarray] = (),
    params: FeatureParams = FeatureParams(),
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Choice:
    """Choose a detector for one machine from its normal training ``clips`` (feature arrays) and ``others`` (per
    other machine of the same type, its normal training clips), by cross-validation against pseudo-anomalies
    (module docstring), and ``faults`` (this machine's confirmed faults outside the test split, at most
    :data:`MAX_FAULT_CLIPS`, as pseudo-anomalies).  Never sees a test clip: the caller passes training data only."""
    n = len(clips)
    if n < MIN_CLIPS:
        return Choice("mahalanobis", "mahalanobis", {}, {}, [], n, 0, 0, False,
                      f"only {n} normal training clips: too few to cross-validate, so mahalanobis by default "
                      "(a guess); add normal clips and retrain")  # fmt: skip
    candidates = dict(CANDIDATES) | ({"machine_id": MACHINE_ID_CANDIDATE} if _split_others(others)[1] else {})
    records = cross_validate(clips, candidates, others=others, faults=faults, params=params, seed=seed,
                             progress=progress)
    evidence = {label: _evidence(record) for label, record in records.items()}
    members, clear = _pick(evidence)
    n_other, n_faults = len(_split_others(others)[1]), min(len(faults), MAX_FAULT_CLIPS)
    if len(members) == 1:
        label = members[0]
        name, hyper = candidates[label]
        return Choice(label, name, dict(hyper), evidence, records[label]["normal"], n, len(records[label]["fold_aucs"]),
                      n_other, clear, _note(n, label, evidence, members, clear, n_other),
                      n_fault_clips=n_faults)  # fmt: skip
    records["ensemble"] = _ensemble_record(records, members)
    evidence["ensemble"] = _evidence(records["ensemble"])
    hyper = {"members": [{"label": m, "detector": candidates[m][0], "params": candidates[m][1]} for m in members],
             "references": [records[m]["normal"] for m in members]}  # fmt: skip
    return Choice("ensemble", "ensemble", hyper, evidence, records["ensemble"]["normal"], n,
                  len(records[members[0]]["fold_aucs"]), n_other, False,
                  _note(n, "ensemble", evidence, members, False, n_other), members, n_faults)  # fmt: skip
