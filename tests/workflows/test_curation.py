"""core.workflows.curation: curated labels (verdict vs ground truth), curated clips from the database, per-machine
balancing
and a seeded train/test split that never separates near-duplicates (MIMII's SNR versions of one file)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.errors import BadInputError, Reason
from core.workflows.curation import (
    MIN_PER_CLASS,
    RECOMMENDED_PER_CLASS,
    CuratedClip,
    balance,
    curated_clips,
    curated_label,
    grouped_split,
)
from core.workflows.ingest import ingest
from core.workflows.triage import record_verdict, undo_last
from db.models import Annotation, Clip
from db.queries import add_annotation
from db.session import session_scope
from tests.conftest import tone, write_wav

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _clip(i: int, machine: str = "fan/id_00", label: str = "normal", name: str | None = None, snr: str = "6dB"):
    name = name or f"{i:08d}.wav"
    path = f"/data/{snr}/{machine}/{label}/{name}"
    return CuratedClip(i, path, machine, label, "ground truth", WHEN, False)


def _clips(machine: str, normal: int, abnormal: int, start: int = 0) -> list[CuratedClip]:
    out = [_clip(start + i, machine, "normal") for i in range(normal)]
    return out + [_clip(start + normal + i, machine, "abnormal") for i in range(abnormal)]


def _mimii(root: Path, layout: dict[str, dict[str, int]], snrs=("6dB",), seed: int = 0) -> Path:
    """Real WAVs in MIMII layout: ``{"fan/id_00": {"normal": 3, "abnormal": 2}}`` per SNR folder, distinct content."""
    k = seed
    for snr in snrs:
        for machine, per_label in layout.items():
            for label, n in per_label.items():
                for i in range(n):
                    k += 1
                    write_wav(root / snr / machine / label / f"{i:08d}.wav", tone(0.5, seed=k))
    return root


def _ingest(root: Path) -> None:
    report = ingest([str(root)], n_jobs=1)
    assert report.rejected == []


def _clip_ids() -> dict[tuple[str, str, str], int]:
    """``{(machine, label, file name): clip id}`` for the single-SNR trees."""
    with session_scope() as session:
        return {(c.machine.key, c.label, Path(c.path).name): c.id for c in session.scalars(select(Clip))}


# --- curated_label -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "truth", "prefer", "expected"),
    [
        # a verdict only (no usable ground truth): it is the label whatever is preferred
        ("abnormal", "unknown", "verdicts", ("abnormal", "verdict")),
        ("abnormal", "unknown", "ground-truth", ("abnormal", "verdict")),
        ("normal", "unknown", "ground-truth", ("normal", "verdict")),
        # ground truth only
        (None, "normal", "verdicts", ("normal", "ground truth")),
        (None, "abnormal", "ground-truth", ("abnormal", "ground truth")),
        # both, disagreeing: the preferred source wins
        ("abnormal", "normal", "verdicts", ("abnormal", "verdict")),
        ("abnormal", "normal", "ground-truth", ("normal", "ground truth")),
        ("normal", "abnormal", "verdicts", ("normal", "verdict")),
        ("normal", "abnormal", "ground-truth", ("abnormal", "ground truth")),
        # both, agreeing: same label, the preferred source is named
        ("normal", "normal", "verdicts", ("normal", "verdict")),
        ("normal", "normal", "ground-truth", ("normal", "ground truth")),
        # "unsure" is no label
        ("unsure", "normal", "verdicts", ("normal", "ground truth")),
        ("unsure", "abnormal", "ground-truth", ("abnormal", "ground truth")),
        ("unsure", "unknown", "verdicts", None),
        ("unsure", "unknown", "ground-truth", None),
        # nothing at all
        (None, "unknown", "verdicts", None),
        (None, "unknown", "ground-truth", None),
    ],
)
def test_curated_label(verdict, truth, prefer, expected):
    assert curated_label(verdict, truth, prefer) == expected


@pytest.mark.parametrize("prefer", ["verdict", "truth", "", None])
def test_curated_label_bad_prefer(prefer):
    with pytest.raises(BadInputError) as info:
        curated_label("normal", "normal", prefer)
    assert info.value.reason == Reason.INVALID_PARAMETER


# --- curated_clips -------------------------------------------------------------------------------------------


@pytest.fixture
def small_db(tmp_path) -> dict[tuple[str, str, str], int]:
    """fan/id_00: 3 normal + 2 abnormal; fan/id_02: 2 normal + 2 abnormal; a plain (unlabelled) folder of 2 clips."""
    root = _mimii(
        tmp_path / "src", {"fan/id_00": {"normal": 3, "abnormal": 2}, "fan/id_02": {"normal": 2, "abnormal": 2}}
    )
    write_wav(root / "line7" / "a.wav", tone(0.5, seed=100))
    write_wav(root / "line7" / "b.wav", tone(0.5, seed=101))
    _ingest(root)
    return _clip_ids()


def test_curated_clips_without_verdicts_is_the_ground_truth(small_db):
    with session_scope() as session:
        clips = curated_clips(session)
        ingested = {c.id: c.ingested_at for c in session.scalars(select(Clip))}
    assert len(clips) == 9  # the two unlabelled clips have no curated label
    assert all(c.source == "ground truth" and not c.conflict for c in clips)
    assert {c.clip_id for c in clips} == {v for k, v in small_db.items() if k[1] != "unknown"}
    for c in clips:
        assert (c.machine, c.label, Path(c.path).name) in small_db
        assert small_db[(c.machine, c.label, Path(c.path).name)] == c.clip_id
        assert c.labelled_at == ingested[c.clip_id]
    assert clips == sorted(clips, key=lambda c: (c.machine, c.path, c.clip_id))


def test_curated_clips_with_verdicts(small_db):
    ids = small_db
    flipped = ids[("fan/id_00", "normal", "00000000.wav")]  # truth normal, pilot says abnormal
    agreed = ids[("fan/id_00", "normal", "00000001.wav")]  # truth normal, pilot agrees
    unsure = ids[("fan/id_00", "abnormal", "00000000.wav")]  # truth abnormal, pilot unsure
    reviewed = ids[("line7/id_00", "unknown", "a.wav")]  # no truth, pilot says abnormal
    untouched = ids[("line7/id_00", "unknown", "b.wav")]  # no truth, no verdict
    record_verdict(flipped, "alice", "abnormal", anomaly_type="bearing")
    record_verdict(agreed, "alice", "normal")
    record_verdict(unsure, "bob", "unsure")
    with session_scope(write=True) as session:
        add_annotation(session, reviewed, "bob", "abnormal")
    with session_scope() as session:
        verdict_time = {a.clip_id: a.created_at for a in session.scalars(select(Annotation).order_by(Annotation.id))}
        ingested = {c.id: c.ingested_at for c in session.scalars(select(Clip))}
        by_verdicts = {c.clip_id: c for c in curated_clips(session, prefer="verdicts")}
        by_truth = {c.clip_id: c for c in curated_clips(session, prefer="ground-truth")}

    assert untouched not in by_verdicts and untouched not in by_truth
    assert len(by_verdicts) == len(by_truth) == 10

    c = by_verdicts[flipped]
    assert (c.label, c.source, c.conflict) == ("abnormal", "verdict", True)
    assert c.labelled_at == verdict_time[flipped]
    c = by_truth[flipped]
    assert (c.label, c.source, c.conflict) == ("normal", "ground truth", True)
    assert c.labelled_at == ingested[flipped]

    assert (by_verdicts[agreed].label, by_verdicts[agreed].source, by_verdicts[agreed].conflict) == (
        "normal",
        "verdict",
        False,
    )
    assert (by_truth[agreed].label, by_truth[agreed].source, by_truth[agreed].conflict) == (
        "normal",
        "ground truth",
        False,
    )

    for chosen in (by_verdicts, by_truth):  # unsure is no label: the ground truth stands, no conflict
        assert (chosen[unsure].label, chosen[unsure].source, chosen[unsure].conflict) == (
            "abnormal",
            "ground truth",
            False,
        )
        # a verdict on an unlabelled clip is its only label, never a conflict
        assert (chosen[reviewed].label, chosen[reviewed].source, chosen[reviewed].conflict) == (
            "abnormal",
            "verdict",
            False,
        )
        assert chosen[reviewed].machine == "line7/id_00"

    assert sum(c.conflict for c in by_verdicts.values()) == 1
    assert Counter(c.source for c in by_verdicts.values()) == {"ground truth": 7, "verdict": 3}
    assert Counter(c.source for c in by_truth.values()) == {"ground truth": 9, "verdict": 1}


def test_curated_clips_undone_verdict_no_longer_counts(small_db):
    clip_id = small_db[("fan/id_00", "normal", "00000002.wav")]
    record_verdict(clip_id, "carol", "abnormal")
    undo_last("carol")
    with session_scope() as session:
        (c,) = [c for c in curated_clips(session) if c.clip_id == clip_id]
    assert (c.label, c.source, c.conflict) == ("normal", "ground truth", False)


def test_curated_clips_latest_verdict_wins_and_dates_the_label(small_db):
    clip_id = small_db[("fan/id_02", "abnormal", "00000001.wav")]
    record_verdict(clip_id, "alice", "normal")
    second = record_verdict(clip_id, "alice", "abnormal")  # she changed her mind (two annotators would dispute)
    with session_scope() as session:
        (c,) = [c for c in curated_clips(session) if c.clip_id == clip_id]
        when = session.get(Annotation, second).created_at
    assert (c.label, c.source, c.conflict) == ("abnormal", "verdict", False)
    assert c.labelled_at == when


def test_curated_clips_label_date_is_the_standing_verdicts_not_a_later_undo(small_db):
    """alice's verdict stands after bob's later verdict is undone: the label dates from alice's verdict."""
    clip_id = small_db[("fan/id_02", "normal", "00000000.wav")]
    first = record_verdict(clip_id, "alice", "abnormal")
    record_verdict(clip_id, "bob", "normal")
    undo_last("bob")
    with session_scope() as session:
        (c,) = [c for c in curated_clips(session) if c.clip_id == clip_id]
        when = session.get(Annotation, first).created_at
    assert (c.label, c.source, c.conflict) == ("abnormal", "verdict", True)
    assert c.labelled_at == when


def test_curated_clips_machine_filter(small_db):
    with session_scope() as session:
        one = curated_clips(session, "fan/id_02")
        fans = curated_clips(session, "fan")
        with pytest.raises(BadInputError, match=r"no such machine 'pump' \(known: fan/id_00, fan/id_02, line7/id_00\)"):
            curated_clips(session, "pump")
    assert {c.machine for c in one} == {"fan/id_02"} and len(one) == 4
    assert {c.machine for c in fans} == {"fan/id_00", "fan/id_02"} and len(fans) == 9


def test_curated_clips_empty_database():
    with session_scope() as session:
        assert curated_clips(session) == []


# --- CuratedClip ---------------------------------------------------------------------------------------------


def test_group_joins_snr_versions_and_separates_the_rest():
    a = _clip(1, name="00000007.wav", snr="-6dB")
    b = _clip(2, name="00000007.wav", snr="0dB")
    c = _clip(3, name="00000007.wav", snr="6dB")
    assert a.group == b.group == c.group
    assert _clip(4, name="00000008.wav").group != a.group  # another file
    assert _clip(5, label="abnormal", name="00000007.wav").group != a.group  # another label
    assert _clip(6, machine="fan/id_02", name="00000007.wav").group != a.group  # another machine


def test_image_name_unique_and_safe():
    a = CuratedClip(7, "/x/6dB/fan/id_00/normal/weird name (1).wav", "fan/id_00", "normal", "verdict", WHEN, False)
    b = CuratedClip(8, "/y/0dB/fan/id_00/normal/weird name (1).wav", "fan/id_00", "normal", "verdict", WHEN, False)
    assert a.image_name != b.image_name
    for name in (a.image_name, b.image_name):
        assert name.endswith(".png") and "/" not in name and " " not in name and "(" not in name
    long = CuratedClip(9, "/d/" + "x" * 300 + ".wav", "fan/id_00", "normal", "verdict", WHEN, False)
    assert len(long.image_name) <= 124


# --- balance -------------------------------------------------------------------------------------------------


def test_balance_undersamples_the_larger_class_per_machine():
    clips = _clips("fan/id_00", normal=10, abnormal=4) + _clips("fan/id_02", normal=3, abnormal=7, start=100)
    kept, counts = balance(clips, seed=0)
    per = Counter((c.machine, c.label) for c in kept)
    assert per == {
        ("fan/id_00", "normal"): 4,
        ("fan/id_00", "abnormal"): 4,
        ("fan/id_02", "normal"): 3,
        ("fan/id_02", "abnormal"): 3,
    }
    assert len({c.clip_id for c in kept}) == len(kept)  # no clip twice
    assert {c.clip_id for c in kept} <= {c.clip_id for c in clips}
    # the smaller class is kept whole
    assert {c.clip_id for c in kept if c.machine == "fan/id_00" and c.label == "abnormal"} == set(range(10, 14))
    assert {c.clip_id for c in kept if c.machine == "fan/id_02" and c.label == "normal"} == {100, 101, 102}
    by_machine = {m.machine: m for m in counts}
    assert by_machine["fan/id_00"].available == {"normal": 10, "abnormal": 4}
    assert by_machine["fan/id_00"].kept == {"normal": 4, "abnormal": 4}
    assert by_machine["fan/id_02"].kept == {"normal": 3, "abnormal": 3}
    assert all(m.sufficient for m in counts)
    assert "few" in by_machine["fan/id_00"].advice and str(RECOMMENDED_PER_CLASS) in by_machine["fan/id_00"].advice


def test_balance_cap():
    clips = _clips("fan/id_00", normal=10, abnormal=8)
    kept, (counts,) = balance(clips, cap=3)
    assert Counter(c.label for c in kept) == {"normal": 3, "abnormal": 3}
    assert counts.kept == {"normal": 3, "abnormal": 3} and counts.available == {"normal": 10, "abnormal": 8}
    kept, _ = balance(clips, cap=100)  # a cap above the smaller class changes nothing
    assert Counter(c.label for c in kept) == {"normal": 8, "abnormal": 8}


@pytest.mark.parametrize("cap", [MIN_PER_CLASS - 1, 0, -5])
def test_balance_cap_below_minimum_refused(cap):
    with pytest.raises(BadInputError) as info:
        balance(_clips("fan/id_00", 5, 5), cap=cap)
    assert info.value.reason == Reason.INVALID_PARAMETER


def test_balance_leaves_out_machines_short_of_a_class_with_advice():
    clips = (
        _clips("fan/id_00", normal=6, abnormal=6)
        + _clips("fan/id_02", normal=9, abnormal=1, start=100)
        + _clips("fan/id_04", normal=5, abnormal=0, start=200)
        + _clips("fan/id_06", normal=0, abnormal=3, start=300)
    )
    kept, counts = balance(clips)
    assert {c.machine for c in kept} == {"fan/id_00"}
    by_machine = {m.machine: m for m in counts}
    assert list(by_machine) == ["fan/id_00", "fan/id_02", "fan/id_04", "fan/id_06"]  # every machine is reported
    for machine, short in [
        ("fan/id_02", "1 more abnormal"),
        ("fan/id_04", "2 more abnormal"),
        ("fan/id_06", "2 more normal"),
    ]:
        m = by_machine[machine]
        assert not m.sufficient
        assert m.kept == {"normal": 0, "abnormal": 0}
        assert m.advice.startswith("left out") and short in m.advice
    assert by_machine["fan/id_02"].available == {"normal": 9, "abnormal": 1}
    assert by_machine["fan/id_00"].sufficient


def test_balance_cap_can_leave_nothing_but_minimum_is_kept():
    kept, (counts,) = balance(_clips("fan/id_00", normal=2, abnormal=9), cap=MIN_PER_CLASS)
    assert Counter(c.label for c in kept) == {"normal": 2, "abnormal": 2}
    assert counts.sufficient


def test_balance_advice_enough_with_many_clips():
    n = RECOMMENDED_PER_CLASS
    _, (counts,) = balance(_clips("fan/id_00", normal=n + 5, abnormal=n))
    assert counts.advice == "enough"


def test_balance_empty():
    assert balance([]) == ([], [])


def test_balance_reproducible_with_seed_and_varies_with_it():
    clips = _clips("fan/id_00", normal=30, abnormal=5) + _clips("fan/id_02", normal=4, abnormal=25, start=100)
    first, _ = balance(clips, seed=7)
    again, _ = balance(clips, seed=7)
    assert [c.clip_id for c in first] == [c.clip_id for c in again]
    draws = {tuple(c.clip_id for c in balance(clips, seed=s)[0]) for s in range(5)}
    assert len(draws) == 5  # C(30,5) * C(25,4) possibilities: five seeds give five different draws
    assert balance(clips, seed=0)[0] != balance(clips, seed=1)[0]


# --- grouped_split -------------------------------------------------------------------------------------------


def _snr_versions(machine: str, label: str, names: int, start: int) -> list[CuratedClip]:
    """Each file name at -6, 0 and 6 dB: three near-duplicates per group."""
    out, k = [], start
    for i in range(names):
        for snr in ("-6dB", "0dB", "6dB"):
            out.append(_clip(k, machine, label, name=f"{i:08d}.wav", snr=snr))
            k += 1
    return out


def _grouped_fixture() -> list[CuratedClip]:
    return (
        _snr_versions("fan/id_00", "normal", 8, 0)
        + _snr_versions("fan/id_00", "abnormal", 4, 100)
        + _snr_versions("fan/id_02", "normal", 2, 200)
        + _snr_versions("fan/id_02", "abnormal", 3, 300)
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_grouped_split_keeps_groups_whole(seed):
    clips = _grouped_fixture()
    train, test = grouped_split(clips, seed=seed)
    train_ids, test_ids = {c.clip_id for c in train}, {c.clip_id for c in test}
    assert not train_ids & test_ids
    assert train_ids | test_ids == {c.clip_id for c in clips}
    assert len(train) + len(test) == len(clips)
    assert not {c.group for c in train} & {c.group for c in test}  # no near-duplicate straddles the split
    for subset in (train, test):  # every group arrives whole (all three SNR versions)
        assert set(Counter(c.group for c in subset).values()) == {3}
    for cell in {(c.machine, c.label) for c in clips}:  # every cell has at least one group on each side
        assert any((c.machine, c.label) == cell for c in train)
        assert any((c.machine, c.label) == cell for c in test)
    test_groups = Counter((c.machine, c.label) for c in test)
    assert test_groups == {  # groups (x3 versions) sent to test: round(0.25 * groups), at least 1
        ("fan/id_00", "normal"): 2 * 3,
        ("fan/id_00", "abnormal"): 1 * 3,
        ("fan/id_02", "normal"): 1 * 3,
        ("fan/id_02", "abnormal"): 1 * 3,
    }


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_grouped_split_two_groups_one_each_side(fraction):
    clips = _snr_versions("fan/id_00", "normal", 2, 0)
    train, test = grouped_split(clips, test_fraction=fraction)
    assert len({c.group for c in train}) == 1 and len({c.group for c in test}) == 1
    assert {c.group for c in train} != {c.group for c in test}


def test_grouped_split_single_group_stays_on_one_side():
    clips = _snr_versions("fan/id_00", "normal", 1, 0)
    train, test = grouped_split(clips, test_fraction=0.25)
    assert (len(train), len(test)) == (3, 0)


def test_grouped_split_fraction_follows_groups_not_clips():
    clips = _clips("fan/id_00", normal=40, abnormal=40)  # every clip its own group
    for fraction, n_test in [(0.25, 10), (0.5, 20), (0.1, 4)]:
        _, test = grouped_split(clips, test_fraction=fraction)
        assert Counter(c.label for c in test) == {"normal": n_test, "abnormal": n_test}


def test_grouped_split_reproducible_with_seed_and_varies_with_it():
    clips = _grouped_fixture()
    first = grouped_split(clips, seed=11)
    again = grouped_split(clips, seed=11)
    assert [c.clip_id for c in first[1]] == [c.clip_id for c in again[1]]
    assert [c.clip_id for c in first[0]] == [c.clip_id for c in again[0]]
    tests = {frozenset(c.clip_id for c in grouped_split(clips, seed=s)[1]) for s in range(6)}
    assert len(tests) > 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_grouped_split_bad_fraction_refused(fraction):
    with pytest.raises(BadInputError) as info:
        grouped_split(_clips("fan/id_00", 4, 4), test_fraction=fraction)
    assert info.value.reason == Reason.INVALID_PARAMETER
    assert "test_fraction" in info.value.detail


def test_grouped_split_empty():
    assert grouped_split([]) == ([], [])


def test_near_duplicates_from_a_real_mimii_tree_never_straddle(tmp_path):
    """MIMII ships each take at -6, 0 and 6 dB under one file name: ingested, curated, split -- still together."""
    root = _mimii(
        tmp_path / "mimii", {"fan/id_00": {"normal": 4, "abnormal": 3}}, snrs=("-6_dB_fan", "0_dB_fan", "6_dB_fan")
    )
    _ingest(root)
    with session_scope() as session:
        clips = curated_clips(session)
    assert len(clips) == 21
    assert len({c.group for c in clips}) == 7  # 4 normal + 3 abnormal takes
    for seed in range(4):
        train, test = grouped_split(clips, seed=seed)
        assert not {c.group for c in train} & {c.group for c in test}
        assert not {c.clip_id for c in train} & {c.clip_id for c in test}
        assert {c.label for c in train} == {c.label for c in test} == {"normal", "abnormal"}
        for subset in (train, test):
            assert set(Counter(c.group for c in subset).values()) == {3}


def test_clips_the_annotators_dispute_are_left_out_until_settled(plant):
    from core.workflows.curation import disputed_clips
    from core.workflows.triage import record_verdict, undo_last

    with session_scope() as session:
        clip_id = session.scalars(select(Clip.id).where(Clip.label == "normal")).first()
    record_verdict(clip_id, "ana", "abnormal")
    record_verdict(clip_id, "bob", "normal")
    with session_scope() as session:
        assert clip_id not in {c.clip_id for c in curated_clips(session)}
        assert disputed_clips(session) == [clip_id]
    undo_last("bob")  # settled: only ana's verdict stands
    with session_scope() as session:
        [clip] = [c for c in curated_clips(session) if c.clip_id == clip_id]
        assert (clip.label, clip.source, clip.conflict) == ("abnormal", "verdict", True)
        assert disputed_clips(session) == []
