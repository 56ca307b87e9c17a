"""``python -m core export-and-train``: the one-step export and supervised training, as the page's button does
(in-process through ``core.cli.main``, a short real Keras run)."""

from __future__ import annotations

import json

from core.cli import main
from core.supervised.jobs import recent_jobs
from core.workflows.export import newest_export, read_summary


def test_one_step_locally_prints_the_export_and_the_finished_job(plant, no_aws, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["export-and-train", str(out), "--epochs", "1", "--jobs", "1", "--seed", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    summary = read_summary(out)
    assert (printed["export_id"], printed["out_dir"], printed["counts"]) == (
        summary["export_id"], summary["out_dir"], summary["counts"],
    )  # fmt: skip
    assert summary["options"]["seed"] == 2 and printed["backend"] == "local"
    job = printed["job"]
    assert (job["backend"], job["status"], job["export_id"]) == ("local", "completed", summary["export_id"])
    assert [j.job_id for j in recent_jobs()] == [job["job_id"]]


def test_rekognition_needs_a_bucket_and_the_cost_accepted_before_anything_is_exported(plant, no_aws, tmp_path,
                                                                                       capsys):  # fmt: skip
    assert main(["export-and-train", str(tmp_path / "a"), "--backend", "rekognition"]) == 2
    assert "cannot train with Rekognition: no S3 bucket configured" in capsys.readouterr().err
    no_aws.setenv("REKOGNITION_BUCKET", "my-bucket")
    no_aws.setenv("AWS_ACCESS_KEY_ID", "testing")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    no_aws.setenv("AWS_REGION", "us-east-1")
    assert main(["export-and-train", str(tmp_path / "b")]) == 1  # auto picks Rekognition; no terminal, no --yes
    assert "Not started: add --yes to accept the cost." in capsys.readouterr().err
    assert newest_export() is None and recent_jobs() == [] and not (tmp_path / "b").exists()
