"""core.workflows.agreement: raw agreement, Cohen's kappa and Krippendorff's alpha on hand-made tables, checked
against scikit-learn and ``krippendorff`` themselves (and one kappa by hand), then over a real database."""

from __future__ import annotations

from itertools import combinations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select

from core.access import Actor, Role
from core.errors import PermissionDeniedError
from core.workflows.agreement import CATEGORIES, agreement_figures, agreement_report, cohen_kappa, krippendorff_alpha
from core.workflows.review import adjudicate
from core.workflows.triage import record_verdict
from db.models import Clip, Machine
from db.session import session_scope

N, A, U = "normal", "abnormal", "unsure"
# two annotators, ten clips: 7 agree; kappa by hand: p_o 0.7, p_e 0.6*0.5 + 0.3*0.4 + 0.1*0.1 = 0.43 -> 9/19
ANA = [N, N, N, A, A, U, N, A, N, N]
BO = [N, A, N, A, N, U, N, A, A, N]
# three annotators, eight clips, each clip judged by two or three of them (None: not judged)
THREE = {
    "ana": [N, A, A, N, None, U, N, A],
    "bo": [N, A, N, None, A, U, N, N],
    "cy": [None, A, A, N, A, None, A, None],
}


def _table(columns: dict[str, list]) -> dict[int, dict[str, str]]:
    n = len(next(iter(columns.values())))
    return {k: {who: v[k] for who, v in columns.items() if v[k] is not None} for k in range(n)}


def _matrix(columns: dict[str, list]) -> np.ndarray:
    return np.array([[np.nan if v is None else CATEGORIES.index(v) for v in columns[who]] for who in sorted(columns)])


def test_two_annotators_match_scikit_learn_krippendorff_and_the_hand_computation():
    figures = agreement_figures(_table({"ana": ANA, "bo": BO}))
    assert (figures["n_double"], figures["n_pairs"], figures["agreement"]) == (10, 10, 0.7)
    assert figures["kappa"] == pytest.approx(cohen_kappa_score(ANA, BO)) == pytest.approx(9 / 19)
    assert figures["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=_matrix({"ana": ANA, "bo": BO}), level_of_measurement="nominal")
    )
    (pair,) = figures["pairs"]
    assert pair == {"annotators": ["ana", "bo"], "n_clips": 10, "agreement": 0.7, "kappa": pytest.approx(9 / 19)}


def test_three_annotators_with_gaps_match_the_libraries():
    table = _table(THREE)
    figures = agreement_figures(table)
    assert figures["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=_matrix(THREE), level_of_measurement="nominal")
    )
    pooled = [(v[a], v[b]) for _, v in sorted(table.items()) for a, b in combinations(sorted(v), 2)]
    assert figures["n_double"] == 8 and figures["n_pairs"] == len(pooled) == 14
    assert figures["agreement"] == pytest.approx(sum(a == b for a, b in pooled) / 14)
    assert figures["kappa"] == pytest.approx(cohen_kappa_score([a for a, _ in pooled], [b for _, b in pooled]))
    for pair in figures["pairs"]:
        a, b = pair["annotators"]
        both = [(x, y) for x, y in zip(THREE[a], THREE[b], strict=True) if x is not None and y is not None]
        assert pair["n_clips"] == len(both)
        assert pair["kappa"] == pytest.approx(cohen_kappa_score([x for x, _ in both], [y for _, y in both]))
    assert [p["annotators"] for p in figures["pairs"]] == [["ana", "bo"], ["ana", "cy"], ["bo", "cy"]]


def test_undefined_figures_are_none_and_single_judgements_are_ignored():
    assert cohen_kappa([N, N, N], [N, N, N]) is None  # one category: chance agreement is total
    assert cohen_kappa([N], [A]) is None
    assert krippendorff_alpha({1: {"ana": N, "bo": N}, 2: {"ana": N, "bo": N}}) is None
    figures = agreement_figures({1: {"ana": N}, 2: {"bo": A}})
    assert figures == {"n_double": 0, "n_pairs": 0, "agreement": None, "kappa": None, "alpha": None, "pairs": []}


# --- over the database ---------------------------------------------------------------------------------------------


def _clips(n: int) -> list[int]:
    with session_scope() as session:
        query = select(Clip.id).join(Clip.machine).where(Machine.machine_type == "fan", Machine.machine_id == "id_00")
        query = query.order_by(Clip.id).limit(n)
        return list(session.scalars(query))


def test_the_report_per_machine_pair_and_annotator(seeded):
    clips = _clips(10)
    for who, verdicts in (("ana", ANA), ("bo", BO)):
        for clip_id, verdict in zip(clips, verdicts, strict=True):
            record_verdict(clip_id, who, verdict, actor=Actor(who, Role.ANNOTATOR))
    record_verdict(clips[0], "cy", N, actor=Actor("cy", Role.ANNOTATOR))  # cy judged one clip, with ana and bo
    engineer = Actor("eve", Role.ENGINEER)
    adjudicate(clips[1], A, "bearing", actor=engineer)  # ana said normal (overruled), bo abnormal
    adjudicate(clips[4], N, "the conveyor", actor=engineer)  # ana said abnormal (overruled), bo normal
    adjudicate(clips[5], A, "rubbing", actor=engineer)  # both unsure: nobody overruled

    fan, other = agreement_report(actor=Actor("max", Role.MANAGER))
    assert (fan["machine"], other["machine"]) == ("fan/id_00", "fan/id_02")
    assert (other["n_double"], other["kappa"], other["alpha"], other["pairs"], other["annotators"]) == (
        0, None, None, [], [])  # fmt: skip
    assert (fan["n_double"], fan["n_pairs"]) == (10, 12)
    pairs = {tuple(p["annotators"]): p for p in fan["pairs"]}
    assert pairs[("ana", "bo")]["kappa"] == pytest.approx(cohen_kappa_score(ANA, BO))
    assert pairs[("ana", "bo")]["n_clips"] == 10 and pairs[("ana", "cy")]["n_clips"] == 1
    columns = {"ana": ANA, "bo": BO, "cy": [N] + [None] * 9}
    assert fan["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=_matrix(columns), level_of_measurement="nominal")
    )
    judged_order = [(ANA[k], BO[k]) for k in range(10)] + [(ANA[0], N), (BO[0], N)]
    assert fan["kappa"] == pytest.approx(cohen_kappa_score([a for a, _ in judged_order], [b for _, b in judged_order]))
    assert fan["annotators"] == [
        {"annotator": "ana", "n_verdicts": 10, "n_adjudicated": 2, "n_overruled": 2, "overruled_rate": 1.0},
        {"annotator": "bo", "n_verdicts": 10, "n_adjudicated": 2, "n_overruled": 0, "overruled_rate": 0.0},
        {"annotator": "cy", "n_verdicts": 1, "n_adjudicated": 0, "n_overruled": 0, "overruled_rate": None},
    ]
    assert agreement_report("fan/id_00") == [fan]  # the operator may too


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.ENGINEER])
def test_the_report_is_for_managers(seeded, role):
    with pytest.raises(PermissionDeniedError, match="view audit needs the manager role"):
        agreement_report(actor=Actor("x", role))
