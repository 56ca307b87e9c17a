"""Supervised training: export the curated, balanced dataset and train on it, locally or in AWS."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action, why_not
from core.errors import BadInputError
from core.supervised import get_trainer
from core.supervised.cloud import CloudError
from core.supervised.cloud.config import CloudConfig, forget_credentials_check
from core.supervised.jobs import recent_jobs
from core.supervised.pipeline import default_trainer, export_and_train
from core.vocabulary import JobState
from core.workflows.comparison import comparison_preset
from core.workflows.curation import RECOMMENDED_PER_CLASS
from core.workflows.export import (
    ExportOptions,
    default_export_dir,
    describe_counts,
    export_bytes,
    export_dataset,
    export_zip,
    max_download_bytes,
    newest_export,
    preview,
)
from dashboard.components.annotator import action_button, refusal, unnamed
from dashboard.components.auth import current_actor
from dashboard.components.format import count
from dashboard.components.progress import progress_bar
from dashboard.components.text import md_literal
from dashboard.registry import page_script


def _options() -> ExportOptions:
    left, middle, right = st.columns(3)
    prefer = left.radio("When a verdict and the ground truth disagree", ["verdicts", "ground-truth"],
                        format_func={"verdicts": "the team's word wins (adjudication, else verdicts)",
                                     "ground-truth": "the dataset's label wins"}.get)  # fmt: skip
    test_fraction = middle.slider("Test share", 0.1, 0.5, 0.25, 0.05, help="Share of each class held out for testing")
    cap = right.number_input("Cap per class and machine (0 = none)", min_value=0, value=0, step=10)
    seed = right.number_input("Seed", min_value=0, value=0, step=1)
    trusted = left.checkbox("Trusted labels only", key="trusted_only",
                            help="Leave out labels a single annotator gives alone: keep ground truth, double-"
                            "confirmed and adjudicated labels, and verdicts by engineers or higher")  # fmt: skip
    return ExportOptions(prefer=prefer, seed=int(seed), test_fraction=float(test_fraction), cap=int(cap) or None,
                         trusted_only=trusted)  # fmt: skip


def _curation(options: ExportOptions) -> bool:
    counts = preview(options)
    if not counts:
        st.info("No curated clips yet: confirm or reject flagged clips on the Triage page, or ingest a labelled "
                "dataset (MIMII or DCASE layout).")  # fmt: skip
        return False
    table = pd.DataFrame(
        [
            {
                "machine": c.machine,
                "normal": c.available["normal"],
                "abnormal": c.available["abnormal"],
                "kept per class": c.kept["normal"],
                "status": c.advice,
            }
            for c in counts
        ]  # fmt: skip
    ).set_index("machine")
    st.dataframe(table)
    usable = [c for c in counts if c.sufficient]
    st.caption(f"Balanced by undersampling the larger class; {RECOMMENDED_PER_CLASS}+ clips per class and machine "
               f"are recommended. {len(usable)} of {count(len(counts), 'machine')} can be exported.")  # fmt: skip
    return bool(usable)


def _export(options: ExportOptions) -> None:
    actor = current_actor()
    refused = refusal(actor, Action.EXPORT)  # with sign-in off, a name first: the export names its author
    if action_button("Export balanced dataset", refused, type="primary"):
        out = default_export_dir()
        summary = export_dataset(out, options, user=actor.name, progress=progress_bar("spectrograms"), actor=actor)
        st.session_state["last_export"] = summary["out_dir"]
        st.success(f"Export {summary['export_id']} written to {md_literal(summary['out_dir'])}: "
                   f"{describe_counts(summary['counts'])}. {summary['label_source'].capitalize()}.")  # fmt: skip
        st.caption(
            "Label quality per class: "
            + "; ".join(
                f"{label}: {q['ground_truth']} ground truth, {q['single']} single-annotator, {q['double']} "
                f"double-confirmed, {q['adjudicated']} adjudicated"
                for label, q in summary["label_quality"].items()
            )
        )
        for item in summary["unreadable"]:
            st.warning(f"Skipped {md_literal(item['path'])}: {md_literal(item['detail'])}")


@st.cache_data(max_entries=8, show_spinner=False)
def _export_bytes(out_dir: str, export_id) -> int:
    """What the zip of an export will about weigh, worked out once per export (``export_id``)."""
    return export_bytes(out_dir)


def _download(newest) -> None:
    """The newest export as a zip: made from its files on disk when the button is clicked (not on every run),
    once per export (``core.workflows.export.export_zip``)."""
    actor = current_actor()
    refused = why_not(actor.role, Action.EXPORT)
    size, limit = _export_bytes(newest.out_dir, newest.export_id), max_download_bytes()
    if size > limit:  # Streamlit holds a download in memory while it serves it
        st.info(f"The export is {size / 1e6:.0f} MB, over the {limit / 1e6:g} MB a download may hold "
                f"(MAX\\_DOWNLOAD\\_MB): copy it from the server, {md_literal(str(newest.out_dir))}.")  # fmt: skip
        return
    st.download_button("Download the export (zip)", data=lambda: export_zip(newest.out_dir, actor=actor).read_bytes(),
                       file_name=f"export-{newest.export_id}.zip", mime="application/zip", on_click="ignore",
                       disabled=bool(refused), help=refused or "images, manifests and summary.json",
                       key="download_export")  # fmt: skip


def _one_step(options: ExportOptions) -> None:
    """One button: export the dataset chosen above and train on it (``export_and_train``), with Rekognition
    when it is configured (after its cost notice is accepted), else the local CNN; progress on the page."""
    actor = current_actor()
    trainer = default_trainer()
    paid = trainer.name == "rekognition"
    refused = refusal(actor, Action.EXPORT, Action.CLOUD_TRAIN if paid else Action.TRAIN_SUPERVISED)
    where = "with Rekognition Custom Labels" if paid else "with the small CNN on this machine's CPU"
    st.caption(f"Or in one step: export the dataset chosen above and train on it {where}.")
    accepted = True
    if paid:
        st.warning(md_literal(trainer.config.training_cost_notice()))  # its $ signs are no LaTeX
        accepted = st.checkbox("I accept the cost of training", key="one_step_cost", disabled=bool(refused))
    if not action_button("Export and train", refused, disabled=not accepted,
                         help="tick the cost notice first" if not accepted else where):  # fmt: skip
        return
    result = export_and_train(options, trainer=trainer, confirm_cost=paid, user=actor.name, actor=actor,
                              export_progress=progress_bar("spectrograms"),
                              train_progress=progress_bar("uploading to S3" if paid else "epochs"))  # fmt: skip
    summary = result.summary
    st.session_state["last_export"] = summary["out_dir"]
    done = "started; it usually takes about an hour" if paid else "finished"
    st.success(f"Export {summary['export_id']} written to {md_literal(summary['out_dir'])}: "
               f"{describe_counts(summary['counts'])}. {result.backend.capitalize()} training job {result.job_id} "
               f"{done}; its progress is under Training jobs.")  # fmt: skip


def _train_buttons() -> None:
    newest = newest_export()
    if newest is None:
        st.caption("Export a dataset first: training uses the newest export.")
    else:
        st.caption(f"Newest export: {md_literal(newest.out_dir)} ({describe_counts(newest.counts)}).")
        if newest.unusable:
            st.warning(f"The newest export cannot be trained on: {md_literal(newest.unusable)}.")
        else:
            _download(newest)
    no_export = newest is None or newest.unusable is not None
    rekognition = get_trainer("rekognition", config=CloudConfig.from_env())
    availability = rekognition.availability()
    actor = current_actor()
    refused = refusal(actor, Action.TRAIN_SUPERVISED)  # with sign-in off, a name first: the job names who ran it
    left, right = st.columns(2)
    if action_button("Train locally", refused, where=left, disabled=no_export,
                     help="A small CNN on this machine's CPU"):  # fmt: skip
        with st.spinner("Training the local CNN…"):
            job_id = get_trainer("local").train(user=actor.name, progress=progress_bar("epochs"), actor=actor)
        st.success(f"Local training finished (job {job_id}).")
    reason = None if availability.ok else f"Unavailable: {md_literal(availability.reason)}."  # may quote AWS
    reason = why_not(actor.role, Action.CLOUD_TRAIN) or reason
    blocked = reason or unnamed(actor)  # with sign-in off, a name first, once Rekognition could train at all
    if availability.ok and not no_export:
        right.warning(md_literal(rekognition.config.training_cost_notice()))  # its $ signs are no LaTeX
    accepted = right.checkbox("I accept the cost of training", key="cloud_training_cost",
                              disabled=no_export or bool(blocked))  # fmt: skip
    if right.button("Train with Rekognition", disabled=no_export or bool(blocked) or not accepted,
                    help=blocked or md_literal(availability.reason) or "tick the cost notice first"):  # fmt: skip
        job_id = rekognition.train(user=actor.name, progress=progress_bar("uploading to S3"), actor=actor,
                                   confirm_cost=True)  # fmt: skip
        st.success(f"Rekognition training started (job {job_id}); it usually takes about an hour.")
    if blocked:
        right.caption(blocked)
    if reason and rekognition.config.bucket and right.button("Check AWS again"):  # credentials may have been set up
        forget_credentials_check()
        st.rerun()


@st.fragment(run_every=15)
def _jobs() -> None:
    jobs = recent_jobs()
    if not jobs:
        st.caption("No training jobs yet.")
        return
    rekognition = get_trainer("rekognition", config=CloudConfig.from_env())
    if rekognition.availability().ok:
        jobs = [_refreshed(j, rekognition) for j in jobs]
    rows = []
    for j in jobs:
        evaluation = j.external.get("evaluation", {})
        rows.append({"job": j.job_id, "backend": j.backend, "status": j.status, "progress": j.progress,
                     "model": j.model_id, "F1": evaluation.get("f1"), "AUC": evaluation.get("auc"),
                     "message": j.message, "started": j.created_at, "finished": j.finished_at})  # fmt: skip
    figures = {name: st.column_config.NumberColumn(name, format="%.3f", help=f"{name} on the export's test images")
               for name in ("F1", "AUC")}  # fmt: skip
    progress = st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)
    st.dataframe(pd.DataFrame(rows).set_index("job"), column_config={"progress": progress, **figures})
    for j in jobs:
        _job_actions(j, rekognition)


def _refreshed(job, rekognition):
    """The job after asking Rekognition, or as stored with a warning when that fails (this runs every
    15 s in a fragment, outside the app's error guard: one broken job must not hide the table)."""
    if job.backend != "rekognition" or job.status != JobState.TRAINING:
        return job
    try:
        return rekognition.refresh(job.job_id)
    except (BadInputError, CloudError) as exc:
        st.warning(f"Job {job.job_id}: could not ask Rekognition for news: {md_literal(exc)}")
        return job


def _stop_button(job, rekognition) -> None:
    """Stop an interrupted evaluation's model (audited: with sign-in off, a name first, as for every action here)."""
    refused = refusal(current_actor(), Action.CLOUD_EVALUATE)
    if action_button(f"Stop job {job.job_id}'s model", refused, key=f"stop_{job.job_id}"):
        rekognition.stop(job.job_id, actor=current_actor())
        st.rerun()


def _job_actions(job, rekognition) -> None:
    if job.backend == "rekognition" and job.status == JobState.TRAINED:
        with st.expander(f"Job {job.job_id}: evaluate the Rekognition model"):
            st.warning(md_literal(rekognition.config.cost_notice()))
            refused = refusal(current_actor(), Action.CLOUD_EVALUATE)  # sign-in off: a name first (it is audited)
            accepted = st.checkbox("I accept this cost", key=f"cost_{job.job_id}", disabled=bool(refused))
            if action_button("Evaluate on the test images", refused, key=f"evaluate_{job.job_id}",
                             disabled=not accepted):  # fmt: skip
                rekognition.evaluate(job.job_id, confirm_cost=True, progress=progress_bar("test images"),
                                     actor=current_actor())  # fmt: skip
                st.rerun()
    interrupted = job.backend == "rekognition" and job.status == JobState.EVALUATING  # the model may still be billing
    if interrupted:
        _stop_button(job, rekognition)
    if job.status == JobState.COMPLETED and job.model_id:
        preset = comparison_preset(job.model_id, prefer=st.session_state.get("selected_machine"))
        if preset and st.button(f"Compare job {job.job_id}'s model with {md_literal(preset[0])}'s active model",
                                key=f"compare_{job.job_id}"):  # fmt: skip
            st.session_state["selected_machine"], st.session_state["compare_models"] = preset
            st.switch_page(page_script("compare"))


def render() -> None:
    st.title("Supervised training")
    st.write("The pilots' verdicts curate a balanced dataset of spectrogram images; a supervised model learns from "
             "it, here with a small CNN or in AWS with Rekognition Custom Labels, and the Compare page sets it "
             "against a machine's anomaly detector (its active model).")  # fmt: skip
    st.subheader("1. Curated clips")
    options = _options()
    if _curation(options):
        _export(options)
        _one_step(options)
    st.subheader("2. Train")
    _train_buttons()
    st.subheader("3. Training jobs")
    _jobs()


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
