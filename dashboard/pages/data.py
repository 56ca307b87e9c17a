"""Data: register a folder of recordings, or upload WAV/FLAC files, and see each refusal and why."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action, why_not
from core.errors import MachineSoundError
from core.workflows.ingest import ingest_folder, ingest_roots
from core.workflows.uploads import ingest_uploads, max_upload_bytes, score_new_clips, store_uploads
from dashboard.components.auth import current_actor
from dashboard.components.format import MISSING, number
from dashboard.components.limits import apply_upload_limit
from dashboard.components.progress import progress_bar
from dashboard.components.text import md_literal

KNOWN_SHOWN = 10  # files named in the "already known" line; a folder re-ingested says how many more


def _show(report, uploaded_as: dict[str, str] | None = None, removed: list[str] | tuple = ()) -> None:
    """The ingest report.  A refused upload is named as it was uploaded, then where it was saved
    (``uploaded_as``: stored path -> upload name), or that it was not kept (``removed``: deleted again)."""
    st.success(f"Ingested {report.ingested} clip(s); {report.already_known} already known.")
    if report.known_paths:
        shown = [_named(path, uploaded_as) for path in report.known_paths[:KNOWN_SHOWN]]
        more = len(report.known_paths) - len(shown)
        st.caption("Already known (the same recording is stored, perhaps under another name): " + ", ".join(shown)
                   + (f" and {more} more." if more else "."))  # fmt: skip
    for item in report.rejected:
        if item["path"] in removed:
            st.error(f"{md_literal(uploaded_as[item['path']])}: {md_literal(item['detail'])}; the file was not kept.")
        else:
            st.error(f"{_named(item['path'], uploaded_as)}: {md_literal(item['detail'])}")


def _named(path: str, uploaded_as: dict[str, str] | None) -> str:
    """A file as Markdown, shown as typed: its upload name (and where it was saved), else its path."""
    shown = f"{uploaded_as[path]} (saved as {path})" if uploaded_as and path in uploaded_as else path
    return md_literal(shown)


def _scored(result, uploaded_as: dict[str, str] | None = None, *, per_clip: bool = False) -> None:
    """What scoring the new clips found: with ``per_clip``, each clip's score and whether it is flagged;
    these clips' failures only; how to get a model for a machine without one."""
    report = result.report
    if report.scored:
        flagged = sum(bool(c.flagged) for c in result.clips)
        st.info(f"Scored {report.scored} clip(s); {flagged} flagged, now in the triage queue.")
    if per_clip and any(c.clip_id is not None for c in result.clips):
        st.dataframe(pd.DataFrame([_row(c, uploaded_as) for c in result.clips if c.clip_id is not None]),
                     hide_index=True)  # fmt: skip
    for item in report.failed:
        st.warning(f"{_named(item['path'], uploaded_as)}: not scored: {md_literal(item['detail'])}")
    if report.machines_without_model:
        machines = md_literal(", ".join(report.machines_without_model))
        st.info(f"No model yet for {machines}, so these clips are stored but not scored. Train one on the machine's "
                "normal clips (ingest a labelled folder, e.g. MIMII's normal/, or confirm field clips as normal), "
                "with the command below or `python -m core train --help`.")  # fmt: skip
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
    with st.form("folder_form"):
        folder = st.text_input("Folder on this server", placeholder="/data/mimii/6_dB_fan",
                               help=f"inside {md_literal(roots)} (INGEST\\_ROOTS)")  # fmt: skip
        if st.form_submit_button("Ingest folder"):
            _ingest_folder(folder, actor)
    _upload_section(actor)


def _upload_section(actor) -> None:
    """**Upload**: files for one machine, which must be named (the machine picked in the sidebar is offered)."""
    st.subheader("Upload")
    machine = st.text_input("Machine for the uploads (type/id)", value=st.session_state.get("selected_machine", ""),
                            placeholder="fan/id_00", help="the machine the files were recorded on; a type/id not "
                            "known yet adds that machine")  # fmt: skip
    limit = max_upload_bytes()  # MAX_UPLOAD_MB; store_uploads applies the same limit
    # the box's own "… per file" text says the same limit, whatever server.maxUploadSize was started with
    uploads = st.file_uploader(f"WAV/FLAC files (up to {limit / 1e6:g} MB each)", type=["wav", "flac"],
                               accept_multiple_files=True, max_upload_size=apply_upload_limit())  # fmt: skip
    megabytes = limit / 1e6
    if megabytes != int(megabytes) or megabytes >= 500:  # Streamlit writes whole MB, and "1GB" from 512 MB on
        st.caption(f"Files over {megabytes:g} MB are refused; the box's own size note rounds this limit.")
    if uploads and st.button("Ingest uploads"):
        try:  # core refuses a machine without a type or an id: no made-up machine
            stored = store_uploads([(u.name, u.getvalue()) for u in uploads], machine, max_bytes=limit, actor=actor)
        except MachineSoundError as exc:
            st.warning(f"Nothing was stored: {md_literal(exc.detail)}.")
            return
        for item in stored.refused:
            st.error(f"{md_literal(item['path'])}: {md_literal(item['detail'])}")
        if stored.paths:
            _show(ingest_uploads(stored, progress=progress_bar("ingesting"), actor=actor), stored.names, stored.removed)
        if stored.paths:  # what ingest refused was deleted: nothing to score then
            scored = score_new_clips(stored.paths, actor=actor, progress=progress_bar("scoring"))
            _scored(scored, stored.names, per_clip=True)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
