"""dashboard/pages/supervised.py through AppTest: the curated clips per machine, the balanced export, local
training that ends in a comparable model, why Rekognition cannot train (bucket, credentials), and the cost
that must be accepted before a Rekognition model is evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from core.supervised.base import new_job, register_model, resolve_export, set_job
from core.workflows.audit import audit_events
from core.workflows.export import default_export_dir, export_dataset, read_summary
from core.workflows.training import active_model_id
from dashboard.components.annotator import UNNAMED
from dashboard.components.auth import NAME_KEY
from dashboard.components.text import md_literal
from db.models import DetectorModel, Export, TrainingJob
from db.session import session_scope
from tests.conftest import SEEDED_MACHINES, infos, no_exception

MACHINE = SEEDED_MACHINES[1]  # the machine the user last looked at (comparison_preset would pick the first)
EXPORT = "Export balanced dataset"
LOCAL = "Train locally"
REKOGNITION = "Train with Rekognition"
NAME = "carol"  # given in the sidebar: with sign-in off, what a page saves needs a name
CNN_EPOCHS = 3  # the default 60 would also do on this tiny export, only slower


def _button(app, label: str):
    return next(b for b in app.button if b.label == label)


def _click(app, label: str):
    _button(app, label).click().run()
    no_exception(app)
    return app


def _captions(app) -> list[str]:
    return [c.value for c in app.caption]


def _rows(model) -> list:
    with session_scope() as session:
        rows = list(session.scalars(select(model).order_by(model.id)))
        session.expunge_all()
        return rows


@pytest.fixture
def few_epochs(monkeypatch):
    """The local CNN trains for a few epochs only, not raised to ``min_steps`` steps (its configuration; the
    training itself is real)."""
    from core.detection.spectrogram_cnn import SpectrogramCNN

    defaults = SpectrogramCNN.default_params()
    few = {**defaults, "epochs": CNN_EPOCHS, "min_steps": 0}
    monkeypatch.setattr(SpectrogramCNN, "default_params", classmethod(lambda cls: few))


def _fake_credentials(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def _export() -> dict:
    """An export made outside the page, as ``python -m core export`` would."""
    return export_dataset(default_export_dir(), user="test")


def test_empty_database_has_no_curated_clips_and_nothing_to_train(no_aws, open_page):
    app = open_page("supervised", name=NAME)
    assert [t.value for t in app.title] == ["Supervised training"]
    assert any(text.startswith("No curated clips yet") for text in infos(app))
    assert not app.dataframe
    labels = {b.label for b in app.button}
    assert EXPORT not in labels  # nothing to export
    assert _button(app, LOCAL).disabled and _button(app, REKOGNITION).disabled
    assert "Export a dataset first: training uses the newest export." in _captions(app)
    assert "No training jobs yet." in _captions(app)


def test_curated_clips_per_machine_and_the_balanced_export(seeded, no_aws, open_page):
    app = open_page("supervised", name=NAME)
    (table,) = app.dataframe
    assert list(table.value.index) == list(SEEDED_MACHINES)
    assert list(table.value.columns) == ["normal", "abnormal", "kept per class", "status"]
    for machine in SEEDED_MACHINES:  # 12 normal + 4 abnormal each: balanced by undersampling to 4 per class
        assert table.value.loc[machine, ["normal", "abnormal", "kept per class"]].tolist() == [12, 4, 4]
        assert table.value.loc[machine, "status"].startswith("usable, but 4 per class is few")
    assert any("2 of 2 machines can be exported" in text for text in _captions(app))
    assert _button(app, LOCAL).disabled
    assert not _rows(Export)

    app.session_state[NAME_KEY] = "maria"  # AUTH=none: the name given once for the session (on Triage)
    _click(app, EXPORT)
    (folder,) = (seeded / "exports").iterdir()
    (row,) = _rows(Export)
    assert Path(row.out_dir) == folder.resolve() and row.created_by == "maria"  # not a generic "dashboard"
    assert audit_events(1)[0]["user"] == "maria"
    summary = read_summary(folder)
    assert summary["export_id"] == row.id and summary["problems"] == []
    for subset in ("train", "test"):
        for label in ("normal", "abnormal"):
            images = sorted(p.name for p in (folder / subset / label).glob("*.png"))
            assert len(images) == summary["counts"][subset][label] > 0
        assert len((folder / f"{subset}.manifest").read_text().splitlines()) == sum(summary["counts"][subset].values())
    # 2 machines x 4 clips per class: 8 per class in all, split between train and test
    assert {label: summary["counts"]["train"][label] + summary["counts"]["test"][label] for label in
            ("normal", "abnormal")} == {"normal": 8, "abnormal": 8}  # fmt: skip
    train, test = summary["counts"]["train"], summary["counts"]["test"]
    split = (f"train {sum(train.values())} ({train['normal']} normal, {train['abnormal']} abnormal), "
             f"test {sum(test.values())} ({test['normal']} normal, {test['abnormal']} abnormal)")  # fmt: skip
    (success,) = [s.value for s in app.success]
    written = f"Export {row.id} written to {md_literal(folder.resolve())}: {split}. "
    assert success.startswith(written + "An adjudication stands above every individual verdict")
    assert any("Label quality per class: normal: 8 ground truth, 0 single-annotator" in text for text in _captions(app))
    assert f"Newest export: {md_literal(folder.resolve())} ({split})." in _captions(app)
    assert not _button(app, LOCAL).disabled


def test_local_training_completes_and_opens_the_comparison(seeded, no_aws, few_epochs, open_page):
    app = open_page("supervised", name=NAME)
    app.session_state["selected_machine"] = MACHINE  # chosen on another page before
    app = _click(app, EXPORT)
    _click(app, LOCAL)

    (job,) = _rows(TrainingJob)
    assert (job.backend, job.status, job.finished_at is not None) == ("local", "completed", True)
    (cnn,) = [m for m in _rows(DetectorModel) if m.detector == "spectrogram_cnn"]
    assert job.model_id == cnn.id and cnn.scope == "fan" and cnn.provenance["job_id"] == job.id
    assert cnn.params["detector"]["epochs"] == CNN_EPOCHS and Path(cnn.artifact_path).is_dir()
    assert f"Local training finished (job {job.id})." in [s.value for s in app.success]

    (jobs,) = [d.value for d in app.dataframe if d.value.index.name == "job"]
    assert list(jobs.index) == [job.id]
    evaluation = job.external["evaluation"]
    assert jobs.loc[job.id, ["backend", "status", "model", "F1"]].tolist() == [
        "local", "completed", cnn.id, evaluation["f1"],
    ]  # fmt: skip
    (table,) = [d for d in app.dataframe if d.value.index.name == "job"]
    figures = json.loads(table.proto.columns)
    assert [figures[c]["type_config"]["format"] for c in ("F1", "AUC")] == ["%.3f", "%.3f"]  # one precision

    active = active_model_id(MACHINE)
    compare = f"Compare job {job.id}'s model with {md_literal(MACHINE)}'s active model"
    _click(app, compare)
    assert [t.value for t in app.title] == ["Compare models"]
    assert app.sidebar.selectbox(key="machine_picker").value == MACHINE
    assert [s.value for s in app.selectbox if s.label.startswith("Model ")] == [active, cnn.id]
    assert len(app.get("plotly_chart")) == 2


def test_rekognition_needs_a_bucket(seeded, no_aws, open_page):
    _export()
    app = open_page("supervised", name=NAME)
    reason = f"Unavailable: {md_literal('no S3 bucket configured (set REKOGNITION_BUCKET)')}."
    button = _button(app, REKOGNITION)
    assert button.disabled and button.help == reason
    assert reason in _captions(app)
    assert not _button(app, LOCAL).disabled  # the export is there: only the bucket is missing


def test_rekognition_needs_credentials_then_checks_again(seeded, no_aws, open_page):
    _export()
    no_aws.setenv("REKOGNITION_BUCKET", "my-bucket")
    app = open_page("supervised", name=NAME)
    button = _button(app, REKOGNITION)
    assert button.disabled and "credentials" in button.help
    assert any(text.startswith("Unavailable: no AWS credentials found") for text in _captions(app))

    _fake_credentials(no_aws)
    app.run()  # the answer is cached per process: still unavailable until asked to look again
    assert _button(app, REKOGNITION).disabled
    _click(app, "Check AWS again")
    assert _button(app, REKOGNITION).disabled  # available now, but the training cost is not accepted yet
    app.checkbox(key="cloud_training_cost").check().run()
    button = _button(app, REKOGNITION)
    assert not button.disabled and button.help.startswith(md_literal("s3://my-bucket/machine-sound/"))
    assert "Check AWS again" not in {b.label for b in app.button}
    assert not any(text.startswith("Unavailable") for text in _captions(app))


def test_rekognition_with_bucket_and_credentials_is_enabled_once_exported(seeded, no_aws, open_page):
    no_aws.setenv("REKOGNITION_BUCKET", "my-bucket")
    _fake_credentials(no_aws)
    app = open_page("supervised", name=NAME)
    assert _button(app, REKOGNITION).disabled  # available, but nothing exported yet
    assert not any(text.startswith("Unavailable") for text in _captions(app))
    _click(app, EXPORT)
    assert _button(app, REKOGNITION).disabled  # money needs a yes
    assert any("billed per hour of training" in w.value for w in app.warning)
    app.checkbox(key="cloud_training_cost").check().run()
    assert not _button(app, REKOGNITION).disabled


def _trained_rekognition_job(no_aws, status: str = "trained") -> tuple[int, int]:
    """``(job_id, model_id)`` of a Rekognition job in ``status`` with its model registered (AWS configured, faked)."""
    no_aws.setenv("REKOGNITION_BUCKET", "my-bucket")
    no_aws.setenv("REKOGNITION_INFERENCE_UNITS", "2")
    no_aws.setenv("REKOGNITION_COST_PER_UNIT_HOUR", "2.5")
    _fake_credentials(no_aws)
    _export()
    export = resolve_export(None)
    arn = "arn:aws:rekognition:us-east-1:123456789012:project/machine-sound-anomalies/version/job-1/1"
    job_id = new_job("rekognition", export, bucket="my-bucket", prefix="machine-sound", trained_by="test")
    model_id = register_model("rekognition", export, save=None, params={"project": "machine-sound-anomalies"},
                              provenance={"job_id": job_id, "version_arn": arn})  # fmt: skip
    set_job(job_id, status=status, model_id=model_id, external={
        "key_base": "machine-sound/exports/export-1/", "version_name": "job-1", "version_arn": arn,
        "project_arn": arn.split("/version/")[0] + "/1"})  # fmt: skip
    return job_id, model_id


def test_a_trained_rekognition_model_is_evaluated_only_once_the_cost_is_accepted(seeded, no_aws, open_page):
    job_id, model_id = _trained_rekognition_job(no_aws)
    app = open_page("supervised", name=NAME)
    (jobs,) = [d.value for d in app.dataframe if d.value.index.name == "job"]
    assert jobs.loc[job_id, ["backend", "status", "model"]].tolist() == ["rekognition", "trained", model_id]
    (expander,) = [e for e in app.expander if e.label == f"Job {job_id}: evaluate the Rekognition model"]
    (notice,) = [w.value for w in expander.warning]
    assert md_literal("2 inference unit(s)") in notice
    assert md_literal("$2.50 per inference-unit hour ($5.00/h") in notice  # dollars, never LaTeX
    evaluate = app.button(key=f"evaluate_{job_id}")
    assert evaluate.label == "Evaluate on the test images" and evaluate.disabled
    assert f"Stop job {job_id}" not in {b.label for b in app.button}  # nothing is running

    app.checkbox(key=f"cost_{job_id}").check().run()
    no_exception(app)
    assert not app.button(key=f"evaluate_{job_id}").disabled
    (job,) = _rows(TrainingJob)
    assert job.status == "trained"  # ticking the box starts nothing


def test_an_export_whose_folder_is_gone_cannot_be_trained_on(seeded, no_aws, open_page):
    import shutil

    summary = _export()
    shutil.rmtree(summary["out_dir"])
    app = open_page("supervised", name=NAME)
    assert [w.value for w in app.warning] == [
        f"The newest export cannot be trained on: {md_literal('its folder is gone; export again')}."
    ]
    assert next(b for b in app.button if b.label == "Train locally").disabled


ONE_STEP = "Export and train"


@pytest.fixture
def deferred_downloads(monkeypatch) -> list:
    """Every deferred download the page registers, as ``(manager, file id)``: Streamlit's own MediaFileManager
    (AppTest's runtime has one), so a test can run the download as a click would."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    registered, original = [], MediaFileManager.add_deferred

    def spy(self, *args, **kwargs):
        file_id = original(self, *args, **kwargs)
        registered.append((self, file_id))
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return registered


def _downloaded(manager, file_id: str) -> bytes:
    """What the browser receives when the button is clicked: the deferred callable run, its result stored."""
    url = manager.execute_deferred(file_id)
    return manager.read_file(url.rsplit("/", 1)[-1].split(".")[0]).content


def test_the_newest_export_downloads_as_a_zip_of_its_files(seeded, no_aws, open_page, deferred_downloads):
    import io
    import zipfile

    summary = _export()
    app = open_page("supervised", name=NAME)
    (button,) = app.get("download_button")
    assert button.label == "Download the export (zip)" and not button.disabled
    assert button.proto.deferred_file_id  # made when clicked, not on every run of the page
    ((manager, file_id),) = [(m, f) for m, f in deferred_downloads if f == button.proto.deferred_file_id]
    content = _downloaded(manager, file_id)
    folder = Path(summary["out_dir"])
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        expected = ["summary.json", "train.manifest", "test.manifest", *(r["file"] for r in summary["images"])]
        assert sorted(archive.namelist()) == sorted(expected)
        assert all(archive.read(name) == (folder / name).read_bytes() for name in expected)
    assert (seeded / "exports" / "zips" / f"export-{summary['export_id']}.zip").read_bytes() == content


def test_no_download_without_a_usable_export(seeded, no_aws, open_page):
    app = open_page("supervised", name=NAME)
    assert not app.get("download_button")


def test_one_button_exports_and_trains_locally_and_the_job_appears(seeded, no_aws, few_epochs, open_page):
    app = open_page("supervised", name=NAME)
    assert any(text.startswith("Or in one step: export the dataset chosen above and train on it with the small CNN")
               for text in _captions(app))  # fmt: skip
    assert not _rows(Export) and not _rows(TrainingJob)
    _click(app, ONE_STEP)

    (export,) = _rows(Export)
    (job,) = _rows(TrainingJob)
    assert (job.backend, job.status, job.export_id) == ("local", "completed", export.id)
    assert Path(job.external["export_dir"]) == Path(export.out_dir)
    (cnn,) = [m for m in _rows(DetectorModel) if m.detector == "spectrogram_cnn"]
    assert job.model_id == cnn.id and cnn.params["detector"]["epochs"] == CNN_EPOCHS
    (success,) = [s.value for s in app.success]
    assert success.startswith(f"Export {export.id} written to {md_literal(export.out_dir)}: train ")
    assert success.endswith(f"Local training job {job.id} finished; its progress is under Training jobs.")
    (jobs,) = [d.value for d in app.dataframe if d.value.index.name == "job"]
    assert jobs.loc[job.id, ["backend", "status", "progress", "model"]].tolist() == ["local", "completed", 1.0, cnn.id]


def test_one_button_uses_rekognition_when_configured_only_once_its_cost_is_accepted(seeded, no_aws, open_page):
    no_aws.setenv("REKOGNITION_BUCKET", "my-bucket")
    _fake_credentials(no_aws)
    app = open_page("supervised", name=NAME)
    assert any("train on it with Rekognition Custom Labels" in text for text in _captions(app))
    assert any("billed per hour of training" in w.value for w in app.warning)
    assert _button(app, ONE_STEP).disabled  # money needs a yes
    app.checkbox(key="one_step_cost").check().run()
    no_exception(app)
    assert not _button(app, ONE_STEP).disabled
    assert not _rows(Export) and not _rows(TrainingJob)  # ticking the box starts nothing


def test_an_export_over_max_download_mb_is_named_by_its_path_not_offered(seeded, no_aws, open_page, monkeypatch):
    """Streamlit holds a download in memory while it serves it: an export larger than MAX_DOWNLOAD_MB is not
    offered as a zip; the page says where it is on the server instead."""
    from core.workflows.export import export_bytes

    summary = _export()
    size = export_bytes(summary["out_dir"])
    assert size > 0
    monkeypatch.setenv("MAX_DOWNLOAD_MB", str(size / 2e6))
    app = open_page("supervised", name=NAME)
    assert not app.get("download_button")
    assert any("over the" in text and "MAX\\_DOWNLOAD\\_MB" in text and "copy it from the server" in text
               for text in infos(app))  # fmt: skip


def test_with_sign_in_off_exports_and_trainings_wait_for_a_name_then_record_it(seeded, no_aws, open_page):
    """An export or a training was recorded (and audited) as "local user" when no name had been given."""
    _export()  # an export to train on: the name is all that is missing
    app = open_page("supervised")
    for label in (EXPORT, ONE_STEP, LOCAL):
        assert _button(app, label).disabled and _button(app, label).help == UNNAMED, label
    assert _captions(app).count(UNNAMED) == 3  # beside each button, not only in its tooltip
    app.sidebar.text_input(key="annotator_input").input("Ann").run()
    assert UNNAMED not in _captions(app)
    assert not any(_button(app, label).disabled for label in (EXPORT, ONE_STEP, LOCAL))
    _click(app, EXPORT)
    newest = _rows(Export)[-1]
    assert newest.created_by == "Ann"
    assert [(e["user"], e["action"]) for e in audit_events(1)] == [("Ann", "export")]


@pytest.mark.parametrize("status", ["trained", "evaluating"])
def test_with_sign_in_off_a_rekognition_model_is_evaluated_or_stopped_once_a_name_is_given(seeded, no_aws, open_page,
                                                                                            status):  # fmt: skip
    """Evaluating (and stopping) a cloud model is audited: it named "local user" when no name had been given."""
    job_id, _ = _trained_rekognition_job(no_aws, status)
    app = open_page("supervised")
    key = f"evaluate_{job_id}" if status == "trained" else f"stop_{job_id}"
    assert app.button(key=key).disabled and app.button(key=key).help == UNNAMED
    assert UNNAMED in _captions(app)
    if status == "trained":
        assert app.checkbox(key=f"cost_{job_id}").disabled
    app.sidebar.text_input(key="annotator_input").input("Ann").run()
    if status == "trained":
        app.checkbox(key=f"cost_{job_id}").check().run()
    assert not app.button(key=key).disabled and UNNAMED not in _captions(app)
