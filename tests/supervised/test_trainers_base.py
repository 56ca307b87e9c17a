"""core.supervised.base and core.supervised.jobs: what every supervised-training backend shares, on hand-made
exports and jobs (no training here; the local CNN trainer is tested in test_trainers_local.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.errors import BadInputError, Reason
from core.supervised import get_trainer, trainer_names
from core.supervised.base import (
    DECISION_THRESHOLD,
    FINAL_STATES,
    ExportRef,
    JobStatus,
    evaluation_record,
    export_scope,
    new_job,
    register_model,
    resolve_export,
    set_job,
)
from core.supervised.jobs import job_status, recent_jobs
from core.workflows.export import SUMMARY_FILE
from core.workflows.model_store import artifact_dir
from db.models import DetectorModel, Export, Threshold
from db.queries import ALL_MACHINES_SCOPE
from db.session import session_scope


def image(machine: str, clip_id: int, subset: str = "train", label: str = "normal") -> dict:
    """One image record of an export summary, as core.workflows.export writes it."""
    return {"file": f"{subset}/{label}/{clip_id}.png", "subset": subset, "clip_id": clip_id, "path": f"/{clip_id}.wav",
            "machine": machine, "label": label, "source": "ground truth"}  # fmt: skip


def summary_of(*machines: str) -> dict:
    return {"images": [image(m, i) for i, m in enumerate(machines)], "problems": []}


def write_export(folder, summary: dict, url: str | None = None, record: bool = True):
    """A hand-made export folder holding only ``summary.json``, optionally recorded in the database."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))
    if record:
        with session_scope(url, write=True) as session:
            row = Export(out_dir=str(folder.resolve()), params={}, summary=summary, created_by="t")
            session.add(row)
            session.flush()
            return row.id
    return None


# --- export_scope --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machines", "scope"),
    [
        (["fan/id_00"], "fan/id_00"),
        (["fan/id_00", "fan/id_00", "fan/id_00"], "fan/id_00"),
        (["fan/id_00", "fan/id_02"], "fan"),
        (["pump/id_00", "pump/id_02", "pump/id_00"], "pump"),
        (["fan/id_00", "pump/id_00"], ALL_MACHINES_SCOPE),
        (["fan/id_00", "fan/id_02", "valve/id_00"], "*"),
    ],
)
def test_export_scope_is_one_machine_one_type_or_every_machine(machines, scope):
    assert export_scope(summary_of(*machines)) == scope


# --- evaluation_record ---------------------------------------------------------------------------------------------


def test_evaluation_record_on_a_hand_made_example():
    #            abnormal ------------   normal -------------
    y_true = np.array([True, True, True, False, False, False])
    p_abnormal = np.array([0.9, 0.6, 0.4, 0.7, 0.2, 0.1])
    # flagged when p > 0.5: 0.9, 0.6 (abnormal) and 0.7 (normal) -> tp 2, fp 1, fn 1, tn 2
    # AUC: of the 9 (abnormal, normal) pairs, 7 rank the abnormal clip higher
    record = evaluation_record(y_true, p_abnormal)
    assert record == {
        "n": 6,
        "threshold": 0.5,
        "precision": round(2 / 3, 6),
        "recall": round(2 / 3, 6),
        "f1": round(2 / 3, 6),
        "accuracy": round(4 / 6, 6),
        "auc": round(7 / 9, 6),
        "confusion": {"tp": 2, "fp": 1, "tn": 2, "fn": 1},
    }
    assert DECISION_THRESHOLD == 0.5
    json.dumps(record)  # stored in a JSON column: plain Python numbers only


def test_evaluation_record_at_another_threshold_and_with_one_class():
    y_true = np.array([1, 1, 0, 0])
    p_abnormal = np.array([0.95, 0.8, 0.85, 0.1])
    record = evaluation_record(y_true, p_abnormal, threshold=0.9)
    assert record["threshold"] == 0.9
    assert record["confusion"] == {"tp": 1, "fp": 0, "tn": 2, "fn": 1}
    assert (record["precision"], record["recall"], record["accuracy"]) == (1.0, 0.5, 0.75)
    assert record["auc"] == 0.75

    only_normal = evaluation_record(np.zeros(3, bool), np.array([0.2, 0.6, 0.1]))
    assert only_normal["auc"] is None  # undefined, not NaN (NaN is not valid JSON)
    assert only_normal["confusion"] == {"tp": 0, "fp": 1, "tn": 2, "fn": 0}
    assert only_normal["precision"] == 0.0 and only_normal["recall"] == 0.0


def test_evaluation_record_of_no_images():
    record = evaluation_record(np.zeros(0, bool), np.zeros(0))
    assert record["n"] == 0
    assert record["auc"] is None
    assert record["confusion"] == {"tp": 0, "fp": 0, "tn": 0, "fn": 0}


# --- jobs ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def export_ref(tmp_path) -> ExportRef:
    summary = summary_of("fan/id_00", "fan/id_02")
    export_id = write_export(tmp_path / "export", summary)
    return ExportRef(tmp_path / "export", summary, export_id)


def test_a_new_job_is_pending_and_remembers_its_export(export_ref):
    job_id = new_job("local", export_ref, trained_by="ana")
    status = job_status(job_id)
    assert isinstance(status, JobStatus)
    assert (status.job_id, status.backend, status.status) == (job_id, "local", "pending")
    assert status.export_id == export_ref.export_id
    assert status.external == {"export_dir": str(export_ref.root), "trained_by": "ana"}
    assert status.model_id is None
    assert status.finished_at is None
    assert not status.done
    assert status.progress is None


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_set_job_sets_finished_at_on_a_final_state(export_ref, final):
    job_id = new_job("local", export_ref)
    for state in ("uploading", "training", "trained", "evaluating"):
        set_job(job_id, status=state)
        status = job_status(job_id)
        assert status.status == state
        assert status.finished_at is None
        assert not status.done
    set_job(job_id, status=final, message="why")
    status = job_status(job_id)
    assert (status.status, status.message) == (final, "why")
    assert status.finished_at is not None
    assert status.done


def test_set_job_keeps_a_given_finished_at(export_ref):
    job_id = new_job("local", export_ref)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    set_job(job_id, status="failed", finished_at=when)
    assert job_status(job_id).finished_at.replace(tzinfo=UTC) == when


def test_set_job_merges_external_into_what_is_stored(export_ref):
    job_id = new_job("local", export_ref, trained_by="ana")
    set_job(job_id, external={"progress": 0.25})
    set_job(job_id, external={"progress": 0.5, "evaluation": {"n": 3}})
    status = job_status(job_id)
    assert status.external == {
        "export_dir": str(export_ref.root),
        "trained_by": "ana",
        "progress": 0.5,
        "evaluation": {"n": 3},
    }
    assert status.progress == 0.5
    assert status.status == "pending"  # only what was given changes


def test_updated_at_moves_with_each_change(export_ref):
    job_id = new_job("local", export_ref)
    before = job_status(job_id).updated_at
    set_job(job_id, status="training")
    assert job_status(job_id).updated_at >= before


def test_job_status_progress_and_done_read_the_fields():
    now = datetime.now(UTC)

    def status(state: str, external: dict) -> JobStatus:
        return JobStatus(1, "local", state, "", None, None, external, now, now, None)

    assert status("training", {"progress": 0.4}).progress == 0.4
    assert status("training", {}).progress is None
    assert status("completed", {"progress": 1.0}).done
    assert status("failed", {}).done and status("stopped", {}).done
    assert not status("trained", {}).done


def test_an_unknown_job_is_not_found():
    with pytest.raises(BadInputError) as err:
        job_status(12345)
    assert err.value.reason == Reason.NOT_FOUND


def test_recent_jobs_are_newest_first_and_filter_by_backend(export_ref):
    first = new_job("local", export_ref)
    second = new_job("rekognition", export_ref)
    third = new_job("local", export_ref)
    assert [j.job_id for j in recent_jobs()] == [third, second, first]
    assert [j.job_id for j in recent_jobs(2)] == [third, second]
    assert [j.job_id for j in recent_jobs(backend="local")] == [third, first]
    assert recent_jobs(backend="nothing") == []


# --- resolving an export -------------------------------------------------------------------------------------------


def test_resolve_export_reads_a_given_folder(tmp_path):
    summary = summary_of("fan/id_00")
    export_id = write_export(tmp_path / "export", summary)
    ref = resolve_export(tmp_path / "export")
    assert ref.root == tmp_path / "export"
    assert ref.summary == summary
    assert ref.export_id == export_id
    assert [r["clip_id"] for r in ref.records("train")] == [0]
    assert ref.records("test") == []


def test_resolve_export_of_an_unrecorded_folder_has_no_id(tmp_path):
    write_export(tmp_path / "copied", summary_of("fan/id_00"), record=False)
    ref = resolve_export(tmp_path / "copied")
    assert ref.export_id is None


def test_resolve_export_none_is_the_newest(tmp_path):
    write_export(tmp_path / "old", summary_of("fan/id_00"))
    newest = write_export(tmp_path / "new", summary_of("pump/id_00"))
    ref = resolve_export(None)
    assert ref.export_id == newest
    assert ref.root == (tmp_path / "new").resolve()
    assert export_scope(ref.summary) == "pump/id_00"


def test_resolve_export_refuses_no_export_a_non_export_and_one_with_problems(tmp_path):
    with pytest.raises(BadInputError) as err:
        resolve_export(None)
    assert err.value.reason == Reason.NOT_FOUND
    assert "export" in err.value.detail

    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError) as err:
        resolve_export(tmp_path / "empty")
    assert err.value.reason == Reason.NOT_FOUND

    write_export(tmp_path / "bad", {**summary_of("fan/id_00"), "problems": ["train.manifest: line 1 is broken"]})
    with pytest.raises(BadInputError) as err:
        resolve_export(tmp_path / "bad")
    assert err.value.reason == Reason.INVALID_PARAMETER
    assert "line 1 is broken" in err.value.detail


# --- registering a model -------------------------------------------------------------------------------------------


def test_register_model_without_files_is_an_external_model_with_the_default_threshold(tmp_path):
    summary = {"images": [image("fan/id_00", 7), image("fan/id_02", 8), image("fan/id_00", 9, subset="test")]}
    ref = ExportRef(tmp_path / "export", summary, None)
    model_id = register_model("rekognition", ref, save=None, params={"arn": "x"}, provenance={"job_id": 3})
    again = register_model("rekognition", ref, save=None, params={}, provenance={})
    with session_scope() as session:
        model = session.get(DetectorModel, model_id)
        assert (model.detector, model.scope, model.version) == ("rekognition", "fan", 1)
        assert model.artifact_path is None
        assert model.status == "external"
        assert model.params == {"arn": "x"}
        assert model.provenance["clip_ids"] == [7, 8]  # the training images only
        assert model.provenance["job_id"] == 3
        assert model.provenance["export_dir"] == str(ref.root)
        assert session.get(DetectorModel, again).version == 2
        (threshold,) = session.scalars(select(Threshold).where(Threshold.model_id == model_id))
        assert threshold.value == DECISION_THRESHOLD
        assert threshold.method == "default"


def test_register_model_with_files_saves_them_under_data_dir(tmp_path, data_dir):
    saved = []
    ref = ExportRef(tmp_path / "export", summary_of("fan/id_00"), None)

    def save(folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "weights").write_text("w")
        saved.append(folder)

    model_id = register_model("spectrogram_cnn", ref, save=save, params={}, provenance={})
    with session_scope() as session:
        model = session.get(DetectorModel, model_id)
        assert model.status == "ready"
        folder = Path(model.artifact_path)
    assert folder == artifact_dir("spectrogram_cnn", "fan/id_00", 1) and folder.is_relative_to(data_dir.resolve())
    assert (folder / "weights").read_text() == "w"
    assert saved[0] != folder and not saved[0].exists()  # written aside, then renamed into place
    assert [p.name for p in folder.parent.iterdir()] == ["v1"]  # no staging folder left


# --- the registry of backends --------------------------------------------------------------------------------------


def test_trainer_registry():
    assert trainer_names()[0] == "local"
    assert "rekognition" in trainer_names()
    local = get_trainer("local", epochs=3)
    assert local.name == "local"
    assert local.epochs == 3
    assert local.availability().ok
    with pytest.raises(BadInputError) as err:
        get_trainer("sagemaker")
    assert err.value.reason == Reason.INVALID_PARAMETER
    assert "local" in err.value.detail


def test_a_cross_type_model_is_offered_only_on_the_machines_it_learned_from(tmp_path, data_dir):
    from db.queries import get_or_create_machine, models_for

    with session_scope(write=True) as session:
        fan, pump, valve = (get_or_create_machine(session, t, "id_00") for t in ("fan", "pump", "valve"))
    ref = ExportRef(tmp_path / "export", summary_of("fan/id_00", "pump/id_00"), None)
    model_id = register_model("rekognition", ref, save=None, params={}, provenance={})
    with session_scope() as session:
        offered = {m.key: [model.id for model in models_for(session, m)] for m in (fan, pump, valve)}
    assert offered == {"fan/id_00": [model_id], "pump/id_00": [model_id], "valve/id_00": []}


def test_a_local_job_without_progress_for_ten_minutes_reads_interrupted(tmp_path, data_dir):
    """A SIGKILLed local training cannot record its end; its silence says it (a live one writes every epoch)."""
    from datetime import UTC, datetime, timedelta

    from core.supervised.jobs import job_status
    from db.models import TrainingJob

    ref = ExportRef(tmp_path / "export", summary_of("fan/id_00"), None)
    job_id = new_job("local", ref)
    set_job(job_id, status="training")
    assert job_status(job_id).status == "training"
    with session_scope(write=True) as session:
        session.get(TrainingJob, job_id).updated_at = datetime.now(UTC) - timedelta(minutes=11)
    status = job_status(job_id)
    assert (status.status, status.done) == ("interrupted", True)
    assert status.message == "no progress for 11 min: its process stopped; train again"
