"""dashboard/pages/data.py through AppTest: registering a folder of recordings, each refusal with its reason."""

from __future__ import annotations

import pytest

from db.queries import count_clips, recent_rejections
from db.session import session_scope
from tests.conftest import no_exception, tone, write_wav


def _ingest_folder(app, folder: str):
    next(t for t in app.text_input if t.label == "Folder on this server").input(folder)
    next(b for b in app.form_submit_button if b.label == "Ingest folder").click().run()
    no_exception(app)
    return app


@pytest.mark.parametrize("seed", [False, True], ids=["empty", "seeded"])
def test_the_page_renders(open_page, request, seed):
    if seed:
        request.getfixturevalue("seeded")
    app = open_page("data")
    assert [t.value for t in app.title] == ["Add recordings"]
    assert [b.label for b in app.form_submit_button] == ["Ingest folder"]
    assert not app.success and not app.error


def test_ingesting_a_folder_reports_clips_and_each_refused_file(open_page, tmp_path):
    folder = tmp_path / "drop"
    for k in range(2):
        write_wav(folder / f"pump_{k}.wav", tone(1.0, seed=k))
    (folder / "junk.wav").write_bytes(b"this is not audio")
    app = _ingest_folder(open_page("data"), str(folder))

    assert [s.value for s in app.success] == ["Ingested 2 clip(s); 0 already known."]
    (refused,) = [e.value for e in app.error]
    assert refused.startswith(f"{folder / 'junk.wav'}: ") and refused.endswith("(not_audio)")
    with session_scope() as session:
        assert count_clips(session) == 2
        assert [(r.path, r.reason) for r in recent_rejections(session)] == [(str(folder / "junk.wav"), "not_audio")]

    _ingest_folder(app, str(folder))  # the same content again is recognised, not duplicated
    assert [s.value for s in app.success] == ["Ingested 0 clip(s); 2 already known."]
    with session_scope() as session:
        assert count_clips(session) == 2


def test_a_missing_folder_is_an_error(open_page, tmp_path):
    missing = tmp_path / "nowhere"
    app = _ingest_folder(open_page("data"), str(missing))
    assert [e.value for e in app.error] == [f"{missing}: no such folder on this server."]
    assert not app.success
    with session_scope() as session:
        assert count_clips(session) == 0


def test_uploads_keep_the_good_files_and_name_each_refused_one(open_page, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_MB", "0.05")  # 50 kB
    app = open_page("data")
    (uploader,) = app.get("file_uploader")
    assert uploader.label == "WAV/FLAC files (up to 0.05 MB each)"

    good = [write_wav(tmp_path / f"g{k}.wav", tone(1.0, seed=k)).read_bytes() for k in range(2)]  # 32 kB each
    uploader.set_value([
        ("pump 1.wav", good[0], "audio/wav"),
        ("../../../../evil.wav", good[1], "audio/wav"),
        ("long.wav", good[0] + good[1], "audio/wav"),
        ("junk.wav", b"not audio at all" * 10, "audio/wav"),
    ]).run()  # fmt: skip
    next(b for b in app.button if b.label == "Ingest uploads").click().run()
    no_exception(app)

    assert [s.value for s in app.success] == ["Ingested 2 clip(s); 0 already known."]
    folder = data_dir / "uploads" / "uploads" / "id_00"
    assert [e.value for e in app.error] == [
        "long.wav: 0.1 MB is over the 0.05 MB limit (too_large)",
        f"junk.wav (saved as {folder / 'junk.wav'}): cannot be read as audio (Format not recognised.) (not_audio)",
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["evil.wav", "junk.wav", "pump_1.wav"]
    assert not (tmp_path.parent / "evil.wav").exists() and not (tmp_path / "evil.wav").exists()
    with session_scope() as session:
        assert count_clips(session) == 2
