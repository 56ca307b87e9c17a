"""Data: register a folder of recordings, or upload WAV/FLAC files, and see each refusal and why."""

from __future__ import annotations

import os
import re

import streamlit as st

from core.ingest import ingest
from db.session import data_dir

MAX_UPLOAD_MB = float(os.environ.get("MAX_UPLOAD_MB", 200))


def _show(report) -> None:
    st.success(f"Ingested {report.ingested} clip(s); {report.already_known} already known.")
    for item in report.rejected:
        st.error(f"{item['path']}: {item['detail']} ({item['reason']})")


def _progress_bar(label: str):
    bar = st.progress(0.0, text=label)
    return lambda done, total: bar.progress(done / max(total, 1), text=f"{label}: {done}/{total}")


def render() -> None:
    st.title("Add recordings")
    st.write("Folders in the MIMII or DCASE layouts keep their machine, label and split; other files are "
             "registered as unlabelled clips of the folder's machine. Run `python -m core score` (or restart "
             "the first-start flow) to score new clips.")  # fmt: skip
    with st.form("folder_form"):
        folder = st.text_input("Folder on this server", placeholder="/data/mimii/6_dB_fan")
        if st.form_submit_button("Ingest folder") and folder.strip():
            if not os.path.isdir(folder.strip()):
                st.error(f"{folder}: no such folder on this server.")
            else:
                _show(ingest([folder.strip()], progress=_progress_bar("ingesting")))
    st.subheader("Upload")
    machine = st.text_input("Machine for the uploads (type/id)", value="uploads/id_00")
    uploads = st.file_uploader(f"WAV/FLAC files (up to {MAX_UPLOAD_MB:g} MB each)", type=["wav", "flac"],
                               accept_multiple_files=True)  # fmt: skip
    if uploads and st.button("Ingest uploads"):
        machine_type, _, machine_id = machine.strip().partition("/")
        safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", part) or "unknown" for part in (machine_type, machine_id or "id_00")]
        target = data_dir() / "uploads" / safe[0] / safe[1]
        target.mkdir(parents=True, exist_ok=True)
        saved, too_big = [], []
        for upload in uploads:
            if upload.size > MAX_UPLOAD_MB * 1e6:
                too_big.append(f"{upload.name}: {upload.size / 1e6:.0f} MB is over the {MAX_UPLOAD_MB:g} MB limit")
                continue
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(upload.name)) or "upload.wav"
            path = target / name
            path.write_bytes(upload.getbuffer())
            saved.append(str(path))
        for message in too_big:
            st.error(message)
        if saved:
            _show(ingest(saved, progress=_progress_bar("ingesting")))


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
