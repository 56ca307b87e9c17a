"""Data: register a folder of recordings, or upload WAV/FLAC files, and see each refusal and why."""

from __future__ import annotations

import streamlit as st

from core.access import Action, why_not
from core.errors import MachineSoundError
from core.workflows.ingest import ingest, ingest_folder, ingest_roots
from core.workflows.scoring import score
from core.workflows.uploads import max_upload_bytes, store_uploads
from dashboard.components.auth import current_actor
from dashboard.components.progress import progress_bar
from dashboard.components.text import md_literal


def _show(report, uploaded_as: dict[str, str] | None = None) -> None:
    """The ingest report, then the new clips scored by their machines' active models.  A refused upload
    is named as it was uploaded, then where it was saved (``uploaded_as``: stored path -> upload name)."""

    def named(path: str) -> str:  # Markdown: file names shown as typed
        shown = f"{uploaded_as[path]} (saved as {path})" if uploaded_as and path in uploaded_as else path
        return md_literal(shown)

    st.success(f"Ingested {report.ingested} clip(s); {report.already_known} already known.")
    for item in report.rejected:
        st.error(f"{named(item['path'])}: {md_literal(item['detail'])} ({item['reason']})")
    if report.ingested:
        scored = score(progress=progress_bar("scoring"))
        if scored.scored:
            st.info(f"Scored {scored.scored} clip(s); flagged ones are now in the triage queue.")
        for item in scored.failed:
            st.warning(f"{named(item['path'])}: not scored: {md_literal(item['detail'])} ({item['reason']})")
        if scored.machines_without_model:
            machines = md_literal(", ".join(scored.machines_without_model))
            st.caption(f"No model yet for {machines}: train one to score them.")


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
        if st.form_submit_button("Ingest folder") and folder.strip():
            try:
                report = ingest_folder(folder, actor=actor, progress=progress_bar("ingesting"))
            except MachineSoundError as exc:
                st.error(md_literal(exc.detail))
            else:
                _show(report)
    st.subheader("Upload")
    machine = st.text_input("Machine for the uploads (type/id)", value="uploads/id_00")
    limit = max_upload_bytes()  # MAX_UPLOAD_MB; store_uploads applies the same limit
    uploads = st.file_uploader(f"WAV/FLAC files (up to {limit / 1e6:g} MB each)", type=["wav", "flac"],
                               accept_multiple_files=True)  # fmt: skip
    if uploads and st.button("Ingest uploads"):
        stored = store_uploads([(u.name, u.getvalue()) for u in uploads], machine, max_bytes=limit, actor=actor)
        for item in stored.refused:
            st.error(f"{md_literal(item['path'])}: {md_literal(item['detail'])} ({item['reason']})")
        if stored.paths:
            _show(ingest(stored.paths, progress=progress_bar("ingesting"), actor=actor), stored.names)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
