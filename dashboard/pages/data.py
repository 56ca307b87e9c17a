"""Data: register a folder of recordings, or upload WAV/FLAC files, and see each refusal and why."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from core.access import Action, why_not
from core.errors import MachineSoundError
from core.workflows.ingest import IngestReport, ingest_folder, ingest_roots
from core.workflows.training import MIN_TRAINING_CLIPS
from core.workflows.uploads import (
    NewClipsScored,
    StoredUploads,
    ingest_uploads,
    max_upload_bytes,
    score_new_clips,
    store_uploads,
)
from dashboard.components.annotator import action_button, unnamed
from dashboard.components.auth import current_actor
from dashboard.components.format import MISSING, count, number
from dashboard.components.limits import apply_upload_limit
from dashboard.components.progress import progress_bar
from dashboard.components.text import md_literal
from dashboard.registry import page_script

KNOWN_SHOWN = 10  # files named in the "already known" line; a folder re-ingested says how many more
UPLOAD_BOX = "upload_box"  # session key: the upload box's generation (a new key empties the box)
UPLOAD_DONE = "upload_done"  # session key: the batch just ingested, shown once above the emptied box


@dataclass(frozen=True)
class _Batch:
    """What became of one batch of uploads: stored (or refused), ingested, its new clips scored."""

    stored: StoredUploads
    report: IngestReport | None = None  # None: nothing was stored to ingest
    scored: NewClipsScored | None = None  # None: no new clip to score


def _show(report, stored: StoredUploads | None = None) -> None:
    """The ingest report.  An upload is named as it was uploaded, then where it was saved (``stored.names``), or
    that it was not kept (``stored.removed``: deleted again, refused, or a copy of the clip ``stored.known_as``
    names)."""
    uploaded_as, removed = (stored.names, stored.removed) if stored else ({}, [])
    said = f"Ingested {count(report.ingested, 'clip')}; {report.already_known} already known."
    (st.success if report.ingested else st.info)(said)  # nothing new is no success
    kept = [path for path in report.known_paths if path not in removed]
    if kept:
        known = stored.known_as if stored else {}
        st.caption("Already known (the same recording is stored, perhaps under another name): " + _listed(
            [f"{md_literal(uploaded_as[p])} ({_clip(known[p])})" if p in known else _named(p, uploaded_as)
             for p in kept]))  # fmt: skip
    copies = [path for path in report.known_paths if path in removed]
    if copies:
        st.warning("Not kept, as the same recording is already a clip: " + _listed(
            [f"{md_literal(uploaded_as[p])} ({_clip(stored.known_as[p])})" for p in copies]))  # fmt: skip
    for item in report.rejected:
        if item["path"] in removed:
            st.error(f"{md_literal(uploaded_as[item['path']])}: {md_literal(item['detail'])}; the file was not kept.")
        else:
            st.error(f"{_named(item['path'], uploaded_as)}: {md_literal(item['detail'])}")


def _listed(shown: list[str]) -> str:
    """Up to ``KNOWN_SHOWN`` of ``shown`` (Markdown) in one sentence, then how many more."""
    more = len(shown) - KNOWN_SHOWN
    return ", ".join(shown[:KNOWN_SHOWN]) + (f" and {more} more." if more > 0 else ".")


def _clip(known) -> str:
    """The clip an upload already is, as Markdown: ``clip #12 of fan/id_00``."""
    return f"clip #{known.clip_id} of {md_literal(known.machine)}"


def _named(path: str, uploaded_as: dict[str, str] | None) -> str:
    """A file as Markdown, shown as typed: its upload name (and where it was saved), else its path."""
    shown = f"{uploaded_as[path]} (saved as {path})" if uploaded_as and path in uploaded_as else path
    return md_literal(shown)


def _scored(result, uploaded_as: dict[str, str] | None = None, *, per_clip: bool = False) -> None:
    """What scoring the new clips found: with ``per_clip``, each clip's score and whether it is flagged;
    these clips' failures only; how to get a model for a machine without one."""
    report = result.report
    if result.scored:  # these clips only: earlier clips of their machines scored on the way are said apart
        earlier = report.scored - result.scored
        machines = md_literal(", ".join(sorted({c.machine for c in result.clips if c.machine})))
        st.info(f"Scored {count(result.scored, 'clip')}; {result.flagged} flagged, now in the triage queue."
                + (f" Also scored: {count(earlier, 'earlier clip')} of {machines}, not scored until now."
                   if earlier > 0 else ""))  # fmt: skip
    if per_clip and any(c.clip_id is not None for c in result.clips):
        st.dataframe(pd.DataFrame([_row(c, uploaded_as) for c in result.clips if c.clip_id is not None]),
                     hide_index=True)  # fmt: skip
    for item in report.failed:
        st.warning(f"{_named(item['path'], uploaded_as)}: not scored: {md_literal(item['detail'])}")
    if report.machines_without_model:
        _no_model(result)


def _no_model(result) -> None:
    """How to get a model for the machines of these clips that have none: **Train detector** on Compare models
    (linked), or the command; first some clips labelled normal where a machine has too few to learn from."""
    machines = md_literal(", ".join(result.report.machines_without_model))
    said = (f"No model yet for {machines}, so these clips are stored but not scored, and none reaches the triage "
            "queue until a model scores it.")  # fmt: skip
    few = result.too_few_to_train()
    if few:
        counts = ", ".join(f"{md_literal(machine)} has {n}" for machine, n in few.items())
        said += (f" A model learns the machine's normal sound from clips labelled normal, at least "
                 f"{MIN_TRAINING_CLIPS} ({counts}; uploads, as any file outside the MIMII and DCASE layouts, are "
                 "unlabelled): first ingest a folder of its normal recordings above, in the MIMII layout "
                 f"({md_literal(f'…/{next(iter(few))}/normal/')}), then train one")  # fmt: skip
    else:
        said += " Train one"
    st.info(said + " with **Train detector** on Compare models (pick the machine there), or with the command below.")
    st.page_link(page_script("compare"), label="**Train detector** on Compare models", icon=":material/model_training:")
    st.code("\n".join(result.train_commands()), language="bash")  # quoted for the shell


def _row(clip, uploaded_as: dict[str, str] | None) -> dict[str, object]:
    """One scored clip as a table row: names shown as typed (cells are never Markdown)."""
    if clip.model is None:
        verdict = "not scored: no model yet"
    elif clip.flagged is None:
        verdict = "not scored"
    else:
        verdict = "flagged: in the triage queue" if clip.flagged else "not flagged"
    return {"file": (uploaded_as or {}).get(clip.path, clip.path), "clip": clip.clip_id, "machine": clip.machine,
            "score": number(clip.score), "threshold": number(clip.threshold, missing=MISSING), "result": verdict,
            "model": clip.model or MISSING}  # fmt: skip


def _ingest_folder(folder: str, actor) -> None:
    """Ingest the folder typed, and score its new clips; an empty field or a refused folder is said as a sentence,
    with no progress bar left behind."""
    if not folder.strip():
        st.warning("Type the folder to ingest: a path on this server, inside the ingest roots.")
        return
    slot = st.empty()  # the bar goes when the folder is refused: nothing was ingested
    with slot:
        progress = progress_bar("ingesting")
    try:
        report = ingest_folder(folder, actor=actor, progress=progress)
    except MachineSoundError as exc:
        slot.empty()
        st.error(md_literal(_sentence(exc.detail)))
        return
    _show(report)
    if report.ingested:
        _scored(score_new_clips(report.new_paths, actor=actor, progress=progress_bar("scoring")))


def _sentence(text: str) -> str:
    """``text`` as a sentence: a capital first letter and a full stop (core's details are clauses)."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def render() -> None:
    st.title("Add recordings")
    st.write("Folders in the MIMII or DCASE layouts keep their machine, label and split; other files are "
             "registered as unlabelled clips of the folder's machine. New clips are scored at once by their "
             "machine's active model.")  # fmt: skip
    actor = current_actor()
    refused = why_not(actor.role, Action.INGEST)
    if refused:
        st.info(f"Adding recordings is for engineers: {refused}.")
        return
    roots = ", ".join(str(r) for r in ingest_roots())
    missing = unnamed(actor)  # with sign-in off, a name first: what is ingested records who added it
    with st.form("folder_form"):
        folder = st.text_input("Folder on this server", placeholder="/data/mimii/6_dB_fan",
                               help=f"inside {md_literal(roots)} (INGEST\\_ROOTS)")  # fmt: skip
        if action_button("Ingest folder", missing, form=True):
            _ingest_folder(folder, actor)
    _upload_section(actor, missing)


def _upload_section(actor, missing: str | None) -> None:
    """**Upload**: files for one machine, which must be named (the machine picked in the sidebar is offered).  After
    a batch the box is emptied (a new key), so its files are never sent again with the next one.  ``missing``: why
    nothing may be ingested yet (:func:`~dashboard.components.annotator.unnamed`), said beside the button."""
    st.subheader("Upload")
    machine = st.text_input("Machine for the uploads (type/id)", value=st.session_state.get("selected_machine", ""),
                            placeholder="type/id, e.g. fan/id_00", help="the machine the files were recorded on; a "
                            "type/id not known yet adds that machine")  # fmt: skip
    limit = max_upload_bytes()  # MAX_UPLOAD_MB; store_uploads applies the same limit
    generation = st.session_state.get(UPLOAD_BOX, 0)
    # the box's own "… per file" text says the same limit, whatever server.maxUploadSize was started with
    uploads = st.file_uploader(f"WAV/FLAC files (up to {limit / 1e6:g} MB each)", type=["wav", "flac"],
                               accept_multiple_files=True, max_upload_size=apply_upload_limit(),
                               key=f"uploads_{generation}")  # fmt: skip
    megabytes = limit / 1e6
    if megabytes != int(megabytes) or megabytes >= 500:  # Streamlit writes whole MB, and "1GB" from 512 MB on
        st.caption(f"Files over {megabytes:g} MB are refused; the box's own size note rounds this limit.")
    done = st.session_state.pop(UPLOAD_DONE, None)
    if done is not None:
        _show_batch(done)
    if not uploads:
        return
    if action_button("Ingest uploads", missing):
        batch = _ingest_batch(uploads, machine, limit, actor)
        if batch is not None:
            st.session_state[UPLOAD_DONE] = batch
            st.session_state[UPLOAD_BOX] = generation + 1
            st.rerun()


def _ingest_batch(uploads, machine: str, limit: int, actor) -> _Batch | None:
    """Store the files in the box for ``machine``, ingest them and score the new clips; None when nothing was
    stored because the machine is missing or refused (said here; the box keeps its files)."""
    if not machine.strip():
        st.warning("Name the machine the uploads belong to, as type/id, e.g. fan/id_00.")
        return None
    try:  # core refuses a machine without a type or an id: no made-up machine
        stored = store_uploads([(u.name, u.getvalue()) for u in uploads], machine, max_bytes=limit, actor=actor)
    except MachineSoundError as exc:
        st.warning(f"Nothing was stored: {md_literal(exc.detail)}.")
        return None
    if not stored.paths:
        return _Batch(stored)
    report = ingest_uploads(stored, progress=progress_bar("ingesting"), actor=actor)
    if not report.new_paths:  # refused, or already clips: nothing new to score
        return _Batch(stored, report)
    return _Batch(stored, report, score_new_clips(report.new_paths, actor=actor, progress=progress_bar("scoring")))


def _show_batch(batch: _Batch) -> None:
    """A batch's outcome: each refused upload, the ingest report, and each new clip's score."""
    for item in batch.stored.refused:
        st.error(f"{md_literal(item['path'])}: {md_literal(item['detail'])}")
    if batch.report is not None:
        _show(batch.report, batch.stored)
    if batch.scored is not None:
        _scored(batch.scored, batch.stored.names, per_clip=True)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
