"""core.workflows.training: one model per machine (or type) on normal training clips only, versions, thresholds,
activation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from core.access import Action, Actor, Role
from core.detection.base import META_FILE
from core.detection.thresholds import DEFAULT_QUANTILE, gamma_threshold
from core.errors import BadInputError, NoModelError, PermissionDeniedError, Reason
from core.workflows.audit import audit_events
from core.workflows.ingest import ingest
from core.workflows.model_store import artifact_dir, load_detector
from core.workflows.training import (
    MIN_TRAINING_CLIPS,
    activate,
    one_sample_rate,
    train,
    train_and_score,
    train_settings,
)
from db.models import Clip, DetectorModel, Machine, Score, Threshold
from db.queries import machines_matching
from db.session import session_scope
from tests.conftest import tone, write_wav

MACHINES = ["fan/id_00", "fan/id_02"]
N_CLIPS = 2 * (20 + 6)


def _models() -> list[DetectorModel]:
    with session_scope() as session:
        return list(session.scalars(select(DetectorModel).order_by(DetectorModel.id)))


def _active() -> dict[str, int | None]:
    with session_scope() as session:
        return {m.key: m.active_model_id for m in machines_matching(session)}


def _training_clip_ids(machine: str) -> set[int]:
    machine_type, machine_id = machine.split("/")
    with session_scope() as session:
        return set(
            session.scalars(
                select(Clip.id)
                .join(Clip.machine)
                .where(Machine.machine_type == machine_type, Machine.machine_id == machine_id)
                .where(Clip.label == "normal", Clip.split == "train")
            )
        )


def test_one_model_per_machine_trained_on_normal_training_clips_only(plant, data_dir):
    """The "splits never leak" test: no test clip and no abnormal clip ever reaches a model."""
    lines = []
    report = train(detector="mahalanobis", user="ana", log=lines.append)

    assert report.skipped == []
    assert [(t.scope, t.detector, t.version) for t in report.trained] == [(m, "mahalanobis", 1) for m in MACHINES]
    models = _models()
    assert [(m.scope, m.version) for m in models] == [(m, 1) for m in MACHINES]
    assert len(lines) == 2 and all(line.startswith("trained mahalanobis v1 for fan/id_0") for line in lines)

    with session_scope() as session:
        for model, trained in zip(models, report.trained, strict=True):
            assert model.id == trained.model_id
            clip_ids = model.provenance["clip_ids"]
            assert len(clip_ids) == len(set(clip_ids)) == model.provenance["n_train"] == trained.n_train
            clips = [session.get(Clip, clip_id) for clip_id in clip_ids]
            assert all(c is not None for c in clips)
            assert {(c.label, c.split) for c in clips} == {("normal", "train")}
            assert {c.machine.key for c in clips} == {model.scope}
            # every normal training clip of the machine is used, and nothing else
            assert set(clip_ids) == _training_clip_ids(model.scope)
            assert model.provenance["trained_by"] == "ana"
            assert model.provenance["unreadable"] == {}
            assert model.provenance["n_from_verdicts"] == trained.n_from_verdicts == 0

    test_or_abnormal = 0
    with session_scope() as session:
        for clip in session.scalars(select(Clip)):
            if clip.split == "test" or clip.label == "abnormal":
                test_or_abnormal += 1
                assert all(clip.id not in m.provenance["clip_ids"] for m in models)
    assert test_or_abnormal >= 12  # every abnormal clip is a test clip, plus some normal ones

    for model in models:
        folder = Path(model.artifact_path)
        assert folder == artifact_dir("mahalanobis", model.scope, 1)
        assert folder.is_relative_to(data_dir / "models")
        assert folder.is_dir()
        meta = json.loads((folder / META_FILE).read_text())
        assert meta["detector"] == "mahalanobis"
        assert meta["provenance"]["clip_ids"] == model.provenance["clip_ids"]
        assert len(meta["decision_scores"]) == model.provenance["n_train"]


def test_field_clips_with_a_standing_normal_verdict_are_trained_on(plant, tmp_path, monkeypatch):
    """Snippets that `watch` ingests (label unknown, split none) join the training clips once pilots confirm them
    normal, so that retraining after drift learns their sound; any other verdict, and a test clip, never.
    (``TRAIN_FROM_VERDICTS=any``: one annotator's word is enough; the trusted default is tested below.)"""
    from core.workflows.triage import record_verdict, undo_last

    monkeypatch.setenv("TRAIN_FROM_VERDICTS", "any")
    folder = tmp_path / "field" / "fan" / "id_00"
    paths = [
        str(write_wav(folder / f"snippet_{k}.wav", tone(3.0, freq=900.0 + 40 * k, seed=k)).resolve()) for k in range(6)
    ]
    assert ingest([str(tmp_path / "field")]).ingested == len(paths)
    with session_scope() as session:
        field = {c.path: c for c in session.scalars(select(Clip).where(Clip.path.in_(paths)))}
        test_normal = session.scalar(
            select(Clip.id).join(Clip.machine)
            .where(Machine.machine_id == "id_00", Clip.split == "test", Clip.label == "normal").limit(1)
        )  # fmt: skip
    assert {(c.label, c.split) for c in field.values()} == {("unknown", "none")} and test_normal is not None
    confirmed, undone, overruled, abnormal, unsure, unjudged = (field[p].id for p in paths)
    record_verdict(confirmed, "alice", "normal")
    record_verdict(undone, "bob", "normal")
    assert undo_last("bob").clip_id == undone
    record_verdict(overruled, "alice", "normal")
    record_verdict(overruled, "carol", "abnormal")  # the latest verdict stands
    record_verdict(abnormal, "carol", "abnormal", anomaly_type="bearing")
    record_verdict(unsure, "dan", "unsure")
    record_verdict(test_normal, "alice", "normal")  # the test split stays out of training, whatever the verdict
    lines: list[str] = []

    (trained,) = train("fan/id_00", detector="mahalanobis", log=lines.append).trained

    (model,) = _models()
    assert set(model.provenance["clip_ids"]) == _training_clip_ids("fan/id_00") | {confirmed}
    assert model.provenance["n_from_verdicts"] == trained.n_from_verdicts == 1
    assert trained.n_train == len(_training_clip_ids("fan/id_00")) + 1 == model.provenance["n_train"]
    assert "(1 of them labelled normal by the team)" in lines[-1]
    assert unjudged not in model.provenance["clip_ids"]
    assert model.provenance["train_from_verdicts"] == "any" and model.provenance["from_verdicts"] == {"single": 1}
    assert model.provenance["left_out"] == {"disputed": 1, "abnormal": 1, "unsure": 1}
    assert lines[0] == "fan/id_00: left out 3 judged clip(s): 1 disputed, 1 abnormal, 1 unsure"


def _field_clips(folder: Path, n: int) -> list[int]:
    """``n`` field snippets of fan/id_00 (label unknown, split none), ingested; their ids."""
    paths = [write_wav(folder / "fan" / "id_00" / f"f{k:02d}.wav", tone(1.0, freq=500.0 + 25 * k, seed=100 + k))
             for k in range(n)]  # fmt: skip
    assert ingest([str(folder)]).ingested == n
    with session_scope() as session:
        return list(session.scalars(select(Clip.id).where(Clip.path.in_([str(p.resolve()) for p in paths]))
                                    .order_by(Clip.id)))  # fmt: skip


def test_poisoning_one_annotators_normal_teaches_nothing_until_a_second_confirms(plant, tmp_path):
    """One annotator marks 20 abnormal field clips "normal": the default retraining (TRAIN_FROM_VERDICTS=trusted)
    learns none of them and says why, offering them to the review queue; once a second annotator confirms some,
    exactly those are learned."""
    from core.access import Actor, Role
    from core.workflows.review import SECOND_OPINION, review_queue
    from core.workflows.triage import record_verdict

    mallory, bob = Actor("mallory", Role.ANNOTATOR), Actor("bob", Role.ANNOTATOR)
    poisoned = _field_clips(tmp_path / "field", 20)
    for clip_id in poisoned:
        record_verdict(clip_id, "mallory", "normal", actor=mallory)
    lines: list[str] = []

    (first,) = train("fan/id_00", detector="mahalanobis", log=lines.append).trained

    (model,) = _models()
    assert not set(poisoned) & set(model.provenance["clip_ids"])
    assert set(model.provenance["clip_ids"]) == _training_clip_ids("fan/id_00")
    assert model.provenance["left_out"] == {"awaiting a second opinion": 20}
    assert model.provenance["awaiting_second_opinion"] == poisoned and first.awaiting_second_opinion == 20
    assert (model.provenance["train_from_verdicts"], first.n_from_verdicts) == ("trusted", 0)
    assert lines[0].startswith("fan/id_00: left out 20 judged clip(s): 20 awaiting a second opinion. 20 field "
                               "clip(s) are one annotator's \"normal\", not trusted under "
                               "TRAIN_FROM_VERDICTS=trusted")  # fmt: skip
    offered = review_queue("fan/id_00", second_opinions=True)
    assert [(i.clip_id, i.state) for i in offered] == [(c, SECOND_OPINION) for c in poisoned]
    assert review_queue("fan/id_00") == []  # not without asking: nobody disputed them

    confirmed = poisoned[:5]
    for clip_id in confirmed:
        record_verdict(clip_id, "bob", "normal", actor=bob)
    record_verdict(poisoned[5], "bob", "abnormal", anomaly_type="bearing", actor=bob)  # bob hears the fault

    (second,) = train("fan/id_00", detector="mahalanobis").trained

    learned = set(_models()[-1].provenance["clip_ids"])
    assert learned & set(poisoned) == set(confirmed)
    assert learned == _training_clip_ids("fan/id_00") | set(confirmed)
    provenance = _models()[-1].provenance
    assert provenance["from_verdicts"] == {"double": 5} and second.n_from_verdicts == 5
    assert provenance["left_out"] == {"awaiting a second opinion": 14, "disputed": 1}
    states = {i.clip_id: i.state for i in review_queue("fan/id_00", second_opinions=True)}
    assert states == {poisoned[5]: "disputed", **{c: SECOND_OPINION for c in poisoned[6:]}}


def test_one_engineers_normal_is_trusted_and_any_takes_every_normal(plant, tmp_path, monkeypatch):
    from core.access import Actor, Role
    from core.workflows.triage import record_verdict

    first, second, third = _field_clips(tmp_path / "field", 3)
    record_verdict(first, "eve", "normal", actor=Actor("eve", Role.ENGINEER))
    record_verdict(second, "ana", "normal", actor=Actor("ana", Role.ANNOTATOR))
    train("fan/id_00", detector="mahalanobis")
    assert set(_models()[-1].provenance["clip_ids"]) - _training_clip_ids("fan/id_00") == {first}
    monkeypatch.setenv("TRAIN_FROM_VERDICTS", "any")
    train("fan/id_00", detector="mahalanobis")
    assert set(_models()[-1].provenance["clip_ids"]) - _training_clip_ids("fan/id_00") == {first, second}
    assert third not in _models()[-1].provenance["clip_ids"]


def test_first_threshold_is_the_gamma_fit_of_the_saved_training_scores(plant):
    report = train(detector="mahalanobis")
    with session_scope() as session:
        for trained in report.trained:
            (row,) = session.scalars(select(Threshold).where(Threshold.model_id == trained.model_id))
            assert (row.method, row.set_by) == ("gamma", "system")
            saved = load_detector(session.get(DetectorModel, trained.model_id).artifact_path).decision_scores_
            expected = gamma_threshold(saved, DEFAULT_QUANTILE)
            assert row.value == pytest.approx(expected, rel=1e-9)
            assert trained.threshold == pytest.approx(expected, rel=1e-9)
            assert saved.min() < row.value  # a real fit, not a placeholder
            assert f"{trained.n_train} normal training scores" in row.reason


def test_a_frame_knn_first_threshold_passes_most_normal_test_clips(plant):
    """frame_knn's in-sample training scores are near zero (each column finds itself), so a threshold fitted to them
    flagged every clip; its training scores are out of fold, and its first threshold passes most normal clips."""
    from core.workflows.scoring import score

    report = train(detector="frame_knn")
    score()
    with session_scope() as session:
        for trained in report.trained:
            saved = load_detector(session.get(DetectorModel, trained.model_id).artifact_path).decision_scores_
            assert saved.min() > 0.1, saved  # in-sample they are below 1e-6
            normal_test = session.scalars(
                select(Score.score).join(Clip, Clip.id == Score.clip_id)
                .where(Score.model_id == trained.model_id, Clip.split == "test", Clip.label == "normal")
            ).all()  # fmt: skip
            assert normal_test, trained.scope
            assert sum(v > trained.threshold for v in normal_test) <= len(normal_test) / 2, (trained, normal_test)


def test_per_type_trains_one_model_for_the_whole_type(plant, data_dir):
    report = train(detector="mahalanobis", per_type=True)
    (trained,) = report.trained
    assert trained.scope == "fan"
    (model,) = _models()
    assert model.scope == "fan"
    expected = _training_clip_ids("fan/id_00") | _training_clip_ids("fan/id_02")
    assert set(model.provenance["clip_ids"]) == expected
    assert trained.n_train == len(expected)
    assert Path(model.artifact_path) == artifact_dir("mahalanobis", "fan", 1)
    assert _active() == {m: model.id for m in MACHINES}


def test_retraining_adds_a_version_and_moves_the_active_model(plant):
    first = train(detector="mahalanobis")
    assert _active() == {t.scope: t.model_id for t in first.trained}

    second = train("fan/id_00", detector="mahalanobis")
    (new,) = second.trained
    assert (new.scope, new.version) == ("fan/id_00", 2)
    assert _active() == {"fan/id_00": new.model_id, "fan/id_02": first.trained[1].model_id}

    third = train(detector="mahalanobis")
    assert [(t.scope, t.version) for t in third.trained] == [("fan/id_00", 3), ("fan/id_02", 2)]
    assert _active() == {t.scope: t.model_id for t in third.trained}

    models = _models()
    assert len(models) == 5
    folders = {m.artifact_path for m in models}
    assert len(folders) == 5 and all(Path(f).is_dir() for f in folders)
    assert {Path(m.artifact_path).name for m in models if m.scope == "fan/id_00"} == {"v1", "v2", "v3"}
    with session_scope() as session:
        # each version gets its own first threshold
        per_model = dict(
            session.execute(select(Threshold.model_id, func.count(Threshold.id)).group_by(Threshold.model_id)).all()
        )
    assert per_model == {m.id: 1 for m in models}


def test_the_audit_log_names_trained_and_activated_models_in_words(plant):
    """The Audit page shows these details: "Mahalanobis v1", as every page names a model, not "mahalanobis v1"."""
    (first, _) = train(detector="mahalanobis").trained
    (second,) = train("fan/id_00", detector="mahalanobis").trained
    activate("fan/id_00", model_id=first.model_id)
    events = audit_events(3)
    assert [e["action"] for e in events] == [Action.ACTIVATE_MODEL.value, Action.TRAIN.value, Action.TRAIN.value]
    assert events[0]["detail"] == f"model {first.model_id}: Mahalanobis v1 (fan/id_00)"
    assert events[1]["detail"] == (f"Mahalanobis v2 on {second.n_train} clips (model {second.model_id}, "
                                   f"threshold {second.threshold:.4g})")  # as the log says it, not 1.89072


def test_epochs_with_the_automatic_choice_are_refused_before_anything_is_trained(plant):
    with pytest.raises(BadInputError) as refused:
        train("fan/id_00", epochs=5)  # auto, the default: its candidates train with their own settings
    assert refused.value.reason is Reason.INVALID_PARAMETER and "--detector autoencoder" in refused.value.detail
    with session_scope() as session:
        assert session.scalar(select(func.count(DetectorModel.id))) == 0



def test_a_named_detector_trains_with_the_pooling_and_front_end_asked_for(plant):
    """``train --detector frame_knn --pooling max --front-end pcen``: what the evidence table of the automatic choice
    names (e.g. frame k-NN (top 10%, PCEN)) can be trained by hand and compared."""
    (knn,) = train("fan/id_00", detector="frame_knn", pooling="max", front_end="pcen").trained
    (maha,) = train("fan/id_00", detector="mahalanobis", front_end="pcen").trained
    with session_scope() as session:
        saved = session.get(DetectorModel, knn.model_id).params["detector"]
        assert (saved["pooling"], saved["front_end"]) == ("max", "pcen")
        assert session.get(DetectorModel, maha.model_id).params["detector"]["front_end"] == "pcen"
        loaded = load_detector(session.get(DetectorModel, knn.model_id).artifact_path)
    assert (loaded.params["pooling"], loaded.params["front_end"]) == ("max", "pcen")  # the saved model scores so


def test_a_model_with_another_front_end_does_not_replace_the_active_one(plant):
    """A PCEN Mahalanobis trained by hand is another kind of model, not a new version of the active log-mel one:
    it waits for Make active, as another detector does; a new log-mel version still takes over."""
    (first,) = train("fan/id_00", detector="mahalanobis").trained
    (pcen,) = train("fan/id_00", detector="mahalanobis", front_end="pcen").trained
    assert _active()["fan/id_00"] == first.model_id != pcen.model_id
    (again,) = train("fan/id_00", detector="mahalanobis").trained
    assert _active()["fan/id_00"] == again.model_id
    (knn_max,) = train("fan/id_00", detector="frame_knn", pooling="max").trained
    activate("fan/id_00", model_id=knn_max.model_id)
    train("fan/id_00", detector="frame_knn", pooling="mean")
    assert _active()["fan/id_00"] == knn_max.model_id  # another pooling waits too

def test_train_settings_name_each_detectors_choices_its_default_first():
    assert train_settings("auto") == {}  # the candidates bring their own
    assert train_settings("mahalanobis") == {"front_end": ["log_mel", "pcen"]}
    assert train_settings("band_deviation") == {"front_end": ["log_mel", "pcen"], "pooling": ["max", "mean"]}
    assert train_settings("frame_gmm")["pooling"] == ["top10", "mean", "max"]
    assert train_settings("autoencoder") == {"pooling": ["mean", "max", "top10"]}  # the seed's mean first

@pytest.mark.parametrize(("detector", "options", "said"), [
    ("auto", {"front_end": "pcen"}, "front_end: the automatic choice trains each candidate with its own settings"),
    ("auto", {"pooling": "max"}, "pooling: the automatic choice"),
    ("autoencoder", {"front_end": "pcen"}, "front_end: autoencoder takes none; mahalanobis, band_deviation, "
                                           "frame_knn, frame_gmm do"),
    ("mahalanobis", {"pooling": "top10"}, "pooling: mahalanobis takes none; autoencoder, band_deviation, frame_knn, "
                                          "frame_gmm, machine_id do"),
    ("frame_gmm", {"pooling": "top"}, "pooling must be mean, max or topN (e.g. top10), got 'top'"),
    ("band_deviation", {"pooling": "top10"}, "pooling: band_deviation takes max or mean, got 'top10'"),
    ("frame_knn", {"front_end": "mfcc"}, "front_end must be one of log_mel, pcen, got 'mfcc'"),
])  # fmt: skip
def test_a_setting_the_detector_does_not_take_is_refused_before_anything_is_trained(plant, detector, options, said):
    with pytest.raises(BadInputError) as refused:
        train("fan/id_00", detector=detector, **options)
    assert refused.value.reason is Reason.INVALID_PARAMETER and said in refused.value.detail
    with session_scope() as session:
        assert session.scalar(select(func.count(DetectorModel.id))) == 0

@pytest.mark.slow
def test_another_detector_keeps_the_active_model_until_activated(plant):
    maha = {t.scope: t.model_id for t in train(detector="mahalanobis").trained}

    (auto,) = train("fan/id_00", detector="autoencoder", epochs=5).trained
    assert auto.detector == "autoencoder"
    assert _active() == maha  # the user's (here: the first) choice is kept
    with session_scope() as session:
        row = session.get(DetectorModel, auto.model_id)
        assert row.params["detector"]["epochs"] == 5
        assert Path(row.artifact_path, "model.keras").is_file()

    assert activate("fan/id_00", detector="autoencoder") == auto.model_id
    assert _active() == {"fan/id_00": auto.model_id, "fan/id_02": maha["fan/id_02"]}

    # a new mahalanobis version does not take over from the chosen autoencoder
    newer = {t.scope: t.model_id for t in train(detector="mahalanobis").trained}
    assert _active() == {"fan/id_00": auto.model_id, "fan/id_02": newer["fan/id_02"]}

    # back by id (an older version), then by name (the newest version of that detector)
    assert activate("fan/id_00", model_id=maha["fan/id_00"]) == maha["fan/id_00"]
    assert _active()["fan/id_00"] == maha["fan/id_00"]
    assert activate("fan/id_00", detector="mahalanobis") == newer["fan/id_00"]
    assert _active()["fan/id_00"] == newer["fan/id_00"]


def test_activate_refuses_what_does_not_exist(plant):
    maha = {t.scope: t.model_id for t in train(detector="mahalanobis").trained}
    for kwargs in (
        dict(spec="fan/id_09", detector="mahalanobis"),  # unknown machine
        dict(spec="fan", detector="mahalanobis"),
    ):  # a type, not a machine
        with pytest.raises(BadInputError) as info:
            activate(kwargs.pop("spec"), **kwargs)
        assert info.value.reason is Reason.INVALID_PARAMETER
    for kwargs in (dict(spec="fan/id_00", detector="autoencoder"),  # never trained
                   dict(spec="fan/id_00", model_id=maha["fan/id_02"]),  # another machine's model
                   dict(spec="fan/id_00", model_id=10_000)):  # fmt: skip
        with pytest.raises(NoModelError, match="train it first"):
            activate(kwargs.pop("spec"), **kwargs)
    assert _active() == maha


def test_machine_with_too_few_training_clips_is_skipped_with_a_reason(plant_dir):
    root = plant_dir / "6dB" / "fan"
    two_normal = sorted((root / "id_02" / "normal").glob("*.wav"))[:2]
    paths = [root / "id_00", *two_normal, root / "id_02" / "abnormal"]
    assert ingest([str(p) for p in paths]).ingested == 26 + 2 + 6

    lines = []
    report = train(detector="mahalanobis", log=lines.append)
    assert [t.scope for t in report.trained] == ["fan/id_00"]
    (skipped,) = report.skipped
    assert skipped["scope"] == "fan/id_02"
    n = len(_training_clip_ids("fan/id_02"))
    assert n < MIN_TRAINING_CLIPS
    assert skipped["reason"] == f"{n} normal training clips; at least {MIN_TRAINING_CLIPS} are needed"
    assert f"skipped fan/id_02: {skipped['reason']}" in lines
    assert [m.scope for m in _models()] == ["fan/id_00"]
    assert _active()["fan/id_02"] is None


def test_unknown_detector_or_machine_raises(plant):
    with pytest.raises(BadInputError, match="unknown detector 'nope'") as info:
        train(detector="nope")
    assert info.value.reason is Reason.INVALID_PARAMETER
    with pytest.raises(BadInputError, match="no such machine 'pump/id_00' \\(known: fan/id_00, fan/id_02\\)"):
        train("pump/id_00", detector="mahalanobis")
    with pytest.raises(BadInputError, match="no such machine 'fan/id_09'"):
        train("fan/id_09", detector="mahalanobis")
    assert _models() == []


def test_machine_id_trains_by_name_on_the_types_other_machines_and_ensemble_is_only_chosen(plant):
    (trained,) = train("fan/id_00", "machine_id", epochs=1).trained  # learns fan/id_00 against fan/id_02
    assert (trained.detector, trained.scope) == ("machine_id", "fan/id_00")
    with pytest.raises(BadInputError, match="built by the automatic choice"):
        train("fan/id_00", "ensemble")
    assert [m.detector for m in _models()] == ["machine_id"]


def test_training_on_an_empty_database_raises():
    with pytest.raises(BadInputError, match="no machines"):
        train(detector="mahalanobis")


def test_an_unreadable_training_clip_is_left_out_and_recorded(plant_dir, tmp_path):
    copy = tmp_path / "plant"
    shutil.copytree(plant_dir, copy)
    ingest([str(copy)])
    with session_scope() as session:
        broken = session.get(Clip, min(_training_clip_ids("fan/id_00"))).path
    Path(broken).write_bytes(b"this is not a wav file" * 50)

    report = train(detector="mahalanobis")
    by_scope = {t.scope: t for t in report.trained}
    n = len(_training_clip_ids("fan/id_00"))
    assert by_scope["fan/id_00"].n_train == n - 1
    model = next(m for m in _models() if m.scope == "fan/id_00")
    assert list(model.provenance["unreadable"]) == [broken]
    assert len(model.provenance["clip_ids"]) == n - 1


def test_a_machine_with_too_few_readable_clips_does_not_stop_the_others(plant_dir, tmp_path):
    copy = tmp_path / "plant"
    shutil.copytree(plant_dir, copy)
    ingest([str(copy)])
    with session_scope() as session:
        ids = sorted(_training_clip_ids("fan/id_00"))
        for clip_id in ids[: len(ids) - 2]:  # leave 2 readable clips
            Path(session.get(Clip, clip_id).path).write_bytes(b"junk" * 100)

    report = train(detector="mahalanobis")
    assert [t.scope for t in report.trained] == ["fan/id_02"]
    assert [s["scope"] for s in report.skipped] == ["fan/id_00"]


def test_training_clips_at_another_sample_rate_are_left_out_and_named(plant_dir, tmp_path):
    """Features depend on the sample rate: a model learns from one rate, the machine's most common one."""
    copy = tmp_path / "plant"
    shutil.copytree(plant_dir, copy)
    odd = [
        write_wav(copy / "fan" / "train" / f"normal_id_00_{k:08d}.wav", tone(3.0, sr=8000, seed=k), sr=8000)
        for k in range(2)
    ]  # the DCASE layout puts them in fan/id_00's training split
    ingest([str(copy)])
    lines: list[str] = []

    report = train("fan/id_00", detector="mahalanobis", log=lines.append)

    (trained,) = report.trained
    assert trained.n_train == len(_training_clip_ids("fan/id_00")) - 2
    detail = "recorded at 8000 Hz; the fan/id_00 model works at 16000 Hz (resample the file to 16000 Hz)"
    assert report.left_out == [{"path": str(p), "reason": "wrong_sample_rate", "detail": detail} for p in odd]
    assert lines[0] == f"fan/id_00: left out 2 training clip(s) not at 16000 Hz, e.g. {odd[0]} (8000 Hz)"
    (model,) = _models()
    assert model.params["sample_rate"] == model.provenance["sample_rate"] == 16000
    with session_scope() as session:
        odd_ids = set(session.scalars(select(Clip.id).where(Clip.sample_rate == 8000)))
    assert len(odd_ids) == 2 and not odd_ids & set(model.provenance["clip_ids"])


def test_one_sample_rate_is_the_most_common_and_the_higher_on_a_tie():
    clips = [SimpleNamespace(sample_rate=rate) for rate in (8000, 16000, 16000, 44100, 44100)]
    rate, same, others = one_sample_rate(clips)
    assert (rate, len(same), [c.sample_rate for c in others]) == (44100, 2, [8000, 16000, 16000])
    assert one_sample_rate([]) == (None, [], [])


def test_train_and_score_trains_one_machine_and_scores_its_clips_for_the_queue(plant):
    bars = {"train": [], "score": []}
    done = train_and_score("fan/id_00", "mahalanobis", actor=Actor("eve", Role.ENGINEER),
                           progress=lambda d, t: bars["train"].append((d, t)),
                           scoring_progress=lambda d, t: bars["score"].append((d, t)))  # fmt: skip
    (trained,) = done.report.trained
    assert trained.scope == "fan/id_00" and done.active_model_id == trained.model_id  # the machine's first model
    assert done.scored.scored == N_CLIPS // 2 and done.queue_scored.scored == 0  # the active model is the new one
    assert bars["score"][-1] == (N_CLIPS // 2, N_CLIPS // 2)
    with session_scope() as session:
        model = session.get(DetectorModel, trained.model_id)
        assert model.provenance["trained_by"] == "eve"
        assert session.scalar(select(func.count(Score.clip_id)).where(Score.model_id == model.id)) == N_CLIPS // 2
    assert _active()["fan/id_02"] is None  # one machine only


def test_train_and_score_needs_an_engineer_and_one_machine(plant):
    with pytest.raises(PermissionDeniedError, match="train needs the engineer role"):
        train_and_score("fan/id_00", "mahalanobis", actor=Actor("ana", Role.ANNOTATOR))
    with pytest.raises(BadInputError, match="is a machine type"):
        train_and_score("fan", "mahalanobis")
    assert _models() == []
